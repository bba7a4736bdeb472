"""Run a Lynxi-style artifact on the host (onnxruntime or the torch.export program), streaming state.

This is what a chip runtime does with the artifact: feed static-shape
inputs, and with `state_io` carry each neuron's membrane potential from one
chunk of T steps to the next.

    r = Runner("out/digits.lynxi", engine="onnx")
    y1 = r.run(x)          # first T steps, state starts at the manifest's init values
    y2 = r.run(x)          # the next T steps
    r.reset()
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Mapping

import numpy as np
import torch
from torch import Tensor

from snnc.backends.lynxi.build import build
from snnc.backends.lynxi.modules import initial_state
from snnc.backends.lynxi.options import Options
from snnc.core.errors import InputError
from snnc.core.userdata import as_float
from snnc.ir.formats.artifact import Artifact

Engine = Literal["onnx", "torch"]
_DTYPES = {"float32": torch.float32, "float16": torch.float16}


class Runner:
    """Runs the ONNX file (onnxruntime, CPU) or the exported program of a lynxi artifact."""

    def __init__(self, artifact: "Artifact | str | os.PathLike", engine: Engine = "onnx", *,
                 ort_optimization: bool = True):
        art = artifact if isinstance(artifact, Artifact) else Artifact.open(Path(artifact))
        if art.target != "lynxi":
            raise InputError(f"{art.path} is a '{art.target}' artifact, not a lynxi one")
        m = art.manifest
        self.artifact, self.engine = art, engine
        self.dtype = _DTYPES[m["dtype"]]  # the spiking core's; every tensor spec names its own
        self.inputs = m["interface"]["inputs"]
        self.outputs = m["interface"]["outputs"]
        # streamed state: interface input name -> neuron, neuron -> interface output name
        self._state_in = {st["input"]: st["node"] for st in m["state"] if st["input"]}
        self._state_out = {st["node"]: st["output"] for st in m["state"] if st["output"]}
        self._state_init = {st["node"]: (st["shape"], st["init"], _DTYPES[st.get("dtype", m["dtype"])])
                            for st in m["state"] if st["input"]}
        if engine == "onnx":
            import onnxruntime as ort

            so = ort.SessionOptions()
            if not ort_optimization:  # keep every node as written (no fusions that re-round floats)
                so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            self._ort = ort.InferenceSession(str(art.path / m["files"]["onnx"]), so,
                                             providers=["CPUExecutionProvider"])
        elif engine == "torch":
            self._module = torch.export.load(art.path / m["files"]["torch_export"]).module()
        else:
            raise InputError(f"unknown engine {engine!r}; use 'onnx' or 'torch'")
        self.state: dict[str, Tensor] = {}
        self.reset()

    @property
    def input_names(self) -> list[str]:
        """The graph's own inputs (the state inputs are fed from `self.state`)."""
        return [s["name"] for s in self.inputs if s["name"] not in self._state_in]

    def reset(self) -> None:
        """Every streamed membrane potential back to its initial value."""
        self.state = {node: initial_state(shape, init, dtype) for node, (shape, init, dtype) in self._state_init.items()}

    def _feeds(self, inputs) -> list[Tensor]:
        names = self.input_names
        if not isinstance(inputs, Mapping):
            if len(names) != 1:
                raise InputError(f"this artifact takes inputs {names}: pass a dict")
            inputs = {names[0]: inputs}
        feeds = []
        for spec in self.inputs:
            node = self._state_in.get(spec["name"])
            x = self.state[node] if node is not None else inputs.get(spec["name"])
            if x is None:
                raise InputError(f"missing input {spec['name']!r}", hint=f"inputs: {names}")
            # standard strides: torch's CPU conv picks its algorithm (and rounding) by memory format, and a
            # [N, 1, H, W] tensor can look channels-last; a chip has no strides, the reference copies densely
            if node is None:  # the user's data: snnc.core.userdata's dtype policy (integers other than 0/1 refused)
                x = as_float(x, f"input {spec['name']!r}")
            x = torch.as_tensor(x).to(_DTYPES[spec["dtype"]]).clone(memory_format=torch.contiguous_format)
            if list(x.shape) != spec["shape"]:
                raise InputError(f"input {spec['name']!r} must have the static shape {spec['shape']}, "
                                 f"got {list(x.shape)}", hint="pad the batch, or compile for this batch size and T")
            feeds.append(x)
        return feeds

    @torch.no_grad()
    def run(self, inputs) -> dict[str, Tensor]:
        """One call of the artifact (T steps); returns the graph's outputs and carries the state forward."""
        feeds = self._feeds(inputs)
        if self.engine == "onnx":
            res = self._ort.run(None, {s["name"]: f.numpy() for s, f in zip(self.inputs, feeds)})
            outs = [torch.from_numpy(np.asarray(r)) for r in res]
        else:
            outs = list(self._module(*feeds))
        named = {s["name"]: y for s, y in zip(self.outputs, outs)}
        for node, name in self._state_out.items():
            self.state[node] = named.pop(name)
        return named

    @torch.no_grad()
    def values(self, inputs) -> dict[str, Tensor]:
        """Every value of one call, for debugging: IR value name (of the artifact's graph) -> tensor, time
        folded into batch ([T*N, *]; [N, *] without time). Computed by the eager torch modules that the
        artifact's files were exported from, rebuilt from its graph and manifest: the torch ops that
        engine="torch" runs, in their order. Does not carry the state forward (`run` does)."""
        m = self.artifact.manifest
        keys = ("time_steps", "batch_size", "dtype", "state_dtype", "analog_dtype", "state_io", "input_kind",
                "readout")
        options = Options(**{k: m[k] for k in keys if k in m})
        net, _ = build(self.artifact.graph(), options, m["time_steps"], m["batch_size"])
        return net.values(*self._feeds(inputs))
