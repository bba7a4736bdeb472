"""The lava target: NetX hdf5 networks for Intel Loihi, and lava-dl slayer blocks when lava-dl is installed.

    artifact = snnc.compile(snn, target="lava", output="out/digits_lava")   # net.net + graph.snnir
    LoihiSession(artifact).run(x, T=32)        # bit-exact Loihi emulation (snnc.runtime.loihi)
    graph = read_netx("net.net")               # a NetX file (snnc's or slayer's) as an IR graph

lava-dl itself needs Python 3.10 and torch 2.3: scripts/lava_env.sh builds that
environment; docs/lava.md explains the semantics and the measured costs.
"""

from snnc.passes import quantize_loihi as _quantize_loihi  # noqa: F401 - registers 'quantize-loihi'
from snnc.backends.lava.backend import NETX_FILE, Options, legalize, lower
from snnc.backends.lava.blocks import to_blocks
from snnc.backends.lava.convert import convert
from snnc.backends.lava.netx import NetxLayer, NetxNetwork, NetxNeuron, network_from_graph, read_netx, write_netx

__all__ = ["NETX_FILE", "Options", "legalize", "lower", "to_blocks", "convert", "NetxLayer",
           "NetxNetwork", "NetxNeuron", "network_from_graph", "read_netx", "write_netx"]
