"""Session: the user-facing way to run a compiled graph."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import torch
from torch import Tensor

from snnc.errors import InputError
from snnc.ir.graph import Graph
from snnc.runtime.interpreter import Interpreter


class Session:
    """Runs a graph (or a compiled artifact) on the CPU reference runtime.

        s = Session(artifact)            # or Session(graph), or snnc.load(path)
        out = s.run(x, T=32)             # [T, N, *] per output
        s.predict(x, T=32)               # argmax of the output averaged over T
    """

    def __init__(self, source: "Graph | os.PathLike | str | object", *, device: str = "cpu",
                 dtype: torch.dtype = torch.float32):
        from snnc.backends.artifact import Artifact

        if isinstance(source, (str, os.PathLike)):
            source = Artifact.open(Path(source))
        if isinstance(source, Artifact):
            self.artifact: Artifact | None = source
            graph = source.graph()
        elif isinstance(source, Graph):
            self.artifact, graph = None, source
        else:
            raise TypeError(f"Session needs a Graph, an Artifact or a path, got {type(source).__name__}")
        self.graph = graph
        self._interp = Interpreter(graph, device=device, dtype=dtype)
        self.input_names = [op.name for op in graph.inputs]
        self.output_names = [op.name for op in graph.outputs]

    def reset(self) -> None:
        """Forget all neuron state (membrane potentials)."""
        self._interp.reset()

    def _feeds(self, inputs) -> dict[str, object]:
        if isinstance(inputs, Mapping):
            unknown = set(inputs) - set(self.input_names)
            if unknown:
                raise InputError(f"unknown input(s) {sorted(unknown)}; this graph takes {self.input_names}")
            return dict(inputs)
        if isinstance(inputs, (tuple, list)) and len(self.input_names) > 1:
            if len(inputs) != len(self.input_names):
                raise InputError(f"got {len(inputs)} inputs, the graph takes {len(self.input_names)}: {self.input_names}")
            return dict(zip(self.input_names, inputs))
        if len(self.input_names) != 1:
            raise InputError(f"the graph takes {len(self.input_names)} inputs {self.input_names}: pass a dict")
        return {self.input_names[0]: inputs}

    @torch.no_grad()
    def run(self, inputs, T: int | None = None, *, reset: bool = True) -> Tensor | dict[str, Tensor]:
        """Run T steps (layer by layer) and return the output sequence(s) [T, N, *].

        `inputs` is a tensor (one input) or a dict name -> tensor. A [N, *] input is
        held constant over T steps (the ANN-to-SNN default); a [T, N, *] input is a
        sequence. Neuron state is reset first unless reset=False. With one output
        the tensor is returned, otherwise a dict name -> tensor.
        """
        if reset:
            self.reset()
        out = self._interp.run(self._feeds(inputs), T)
        if len(self.output_names) == 1:
            return out[self.output_names[0]]
        return {k: out[k] for k in self.output_names}

    def predict(self, inputs, T: int | None = None) -> Tensor:
        """Class labels: argmax over the last dim of the (first) output averaged over time."""
        out = self.run(inputs, T)
        if isinstance(out, dict):
            out = out[self.output_names[0]]
        return rate(out).argmax(-1) if self._interp.has_time else out.argmax(-1)


def spike_count(seq: Tensor) -> Tensor:
    """Sum over the time dim of a [T, N, *] sequence."""
    return seq.sum(0)


def rate(seq: Tensor) -> Tensor:
    """Mean over the time dim of a [T, N, *] sequence (a firing rate, or an averaged readout)."""
    return seq.mean(0)
