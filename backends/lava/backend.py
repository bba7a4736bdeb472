"""lower(graph) for the lava target: a folder with the NetX hdf5 file Lava runs on Loihi; emulate(graph) runs it."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from snnc.backends.artifact import write_artifact
from snnc.backends.lava.quantize import QuantizeLoihi
from snnc.core.errors import LoweringError
from snnc.ir.formats.artifact import Artifact
from snnc.ir.formats.netx import network_from_graph, write_netx
from snnc.ir.graph import Graph
from snnc.ir.ops import LoihiInfo
from snnc.runtime.loihi import LoihiSession

NETX_FILE = "net.net"


class Options(BaseModel):
    """lava target options (the quantization ones are those of the quantize-loihi pass)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    time_steps: int | None = Field(default=None, gt=0)  # recorded as /simulation/tSample and in the manifest
    soft_reset: Literal["convert", "refuse"] = "convert"
    readout_threshold: float | None = Field(default=None, gt=0)
    input_bits: int = Field(default=7, ge=1, le=15)
    input_max: float | None = Field(default=None, gt=0)

    def quantizer(self) -> QuantizeLoihi:
        return QuantizeLoihi(soft_reset=self.soft_reset, readout_threshold=self.readout_threshold,
                             input_bits=self.input_bits, input_max=self.input_max)


def legalize(graph: Graph, options: Options | None = None) -> Graph:
    """The graph as a quantized NetX chain (a copy); raises LoweringError naming what Loihi cannot hold."""
    return (options or Options()).quantizer()(graph)


def lower(graph: Graph, options: Options | None = None, output: str | os.PathLike | None = None, *,
          force: bool = False) -> Artifact:
    """Write `output`/net.net (NetX hdf5), graph.snnir (the quantized graph) and manifest.json."""
    options = options or Options()
    if output is None:
        raise LoweringError("the lava target needs an output folder")
    g = legalize(graph, options)
    net = network_from_graph(g)
    info = LoihiInfo.of(g)
    return write_artifact(g, "lava", output, {
        "netx": NETX_FILE, "time_steps": options.time_steps, "latency_steps": net.synaptic_layers,
        "input": info.input, "input_scale": info.input_scale, "input_message_bits": info.input_message_bits,
        # a graph read from a NetX file is on the integer grid already: snnc quantized no layer
        "quantization": [r.model_dump(mode="json", exclude_defaults=True) for r in info.layers or ()],
    }, lambda folder: write_netx(net, folder / NETX_FILE, options.time_steps), force=force)


def emulate(graph: Graph, **quantize_options) -> LoihiSession:
    """The bit-exact Loihi emulation of `graph`: quantized first (the quantize-loihi pass, with its options),
    unless it already is; `session.graph` is the quantized graph."""
    return LoihiSession(QuantizeLoihi(**quantize_options)(graph))
