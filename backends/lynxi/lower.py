"""lower(graph, options, output): legalize, build the flattened network, export it, write the artifact."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from snnc.backends.artifact import write_artifact
from snnc.backends.lynxi.build import DTYPE_NAMES, Interface, build
from snnc.backends.lynxi.export import export_onnx, export_program
from snnc.backends.lynxi.legalize import legalize, resolve_sizes
from snnc.backends.lynxi.modules import initial_state
from snnc.backends.lynxi.options import Options
from snnc.core.errors import LoweringError
from snnc.ir.formats.artifact import Artifact
from snnc.ir.graph import Graph
from snnc.ir.verify import verify

PROGRAM_FILE = "model.pt2"
ONNX_FILE = "model.onnx"


def example_inputs(iface: Interface) -> tuple[torch.Tensor, ...]:
    """Zeros of the interface's static input shapes and dtypes (state inputs at their initial value)."""
    return tuple(initial_state(s.shape, s.init, s.dtype) for s in iface.inputs)


def manifest_extra(options: Options, T: int, N: int, iface: Interface) -> dict:
    return {
        "time_steps": T,
        "batch_size": N,
        "dtype": DTYPE_NAMES[options.torch_dtype],  # the spiking core; each tensor below names its own
        "state_dtype": DTYPE_NAMES[options.state_torch_dtype],
        "analog_dtype": DTYPE_NAMES[options.analog_dtype.torch],
        "layout": "TN",
        "input_kind": options.input_kind,
        "readout": options.readout,
        "state_io": options.state_io,
        "files": {"torch_export": PROGRAM_FILE, "onnx": ONNX_FILE},
        "onnx_opset": options.opset,
        # positional interface of both files; state tensors come after the graph's own inputs/outputs
        "interface": {"inputs": [s.to_json() for s in iface.inputs],
                      "outputs": [s.to_json() for s in iface.outputs]},
        "state": [{"node": i.value, "input": i.name if options.state_io else None,
                   "output": o.name if options.state_io else None, "shape": list(i.shape),
                   "dtype": i.dtype_name, "init": i.init}
                  for i, o in iface.states],
    }


def lower(graph: Graph, options: Options | None = None, output: str | os.PathLike | None = None, *,
          force: bool = False) -> Artifact:
    """Write a Lynxi-style artifact folder: graph.snnir, model.pt2, model.onnx and manifest.json."""
    options = options or Options()
    if output is None:
        raise LoweringError("the lynxi target needs an output folder")
    g = legalize(verify(graph.copy()), options)
    T, N = resolve_sizes(g, options)
    net, iface = build(g, options, T, N)
    example = example_inputs(iface)
    in_names, out_names = [s.name for s in iface.inputs], [s.name for s in iface.outputs]

    def write(folder: Path) -> None:
        export_program(net, example, folder / PROGRAM_FILE)
        export_onnx(net, example, folder / ONNX_FILE, in_names, out_names, options.opset)

    return write_artifact(g, "lynxi", output, manifest_extra(options, T, N, iface), write, force=force)
