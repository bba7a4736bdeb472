"""The lava target: NetX hdf5 networks for Intel Loihi, and lava-dl slayer blocks when lava-dl is installed.

    artifact = snnc.compile(snn, target="lava", output="out/digits_lava")   # net.net + graph.snnir
    LoihiSession(artifact).run(x, T=32)        # bit-exact Loihi emulation (snnc.runtime.loihi)
    emulate(snn).run(x, T=32)                  # the same for a float graph, quantized first
    graph = read_netx("net.net")               # a NetX file (snnc's or slayer's) as an IR graph

The target is this package: its options and lowering (backend.py), the NetX
legalization (legalize.py, compose.py), its own pass quantize-loihi (quantize.py,
registered in the pass registry when this package is imported), the conversion
for Loihi (convert.py) and slayer blocks (blocks.py). The NetX file format is
snnc.ir.formats.netx (re-exported here: read_netx and friends are the documented
API); what the stages record about a graph is snnc.ir.ops.LoihiInfo.

lava-dl itself needs Python 3.10 and torch 2.3: scripts/lava_env.sh builds that
environment; docs/lava.md explains the semantics and the measured costs.
"""

from snnc.backends.lava.backend import NETX_FILE, Options, emulate, legalize, lower
from snnc.backends.lava.blocks import to_blocks
from snnc.backends.lava.convert import convert
from snnc.backends.lava.quantize import QuantizeLoihi, quantization_report
from snnc.ir.formats.netx import NetxLayer, NetxNetwork, NetxNeuron, network_from_graph, read_netx, write_netx

__all__ = ["NETX_FILE", "Options", "emulate", "legalize", "lower", "to_blocks", "convert",
           "QuantizeLoihi", "quantization_report", "NetxLayer", "NetxNetwork", "NetxNeuron", "network_from_graph",
           "read_netx", "write_netx"]
