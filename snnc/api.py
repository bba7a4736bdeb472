"""The Python API: trace, convert, compile, load."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from snnc.errors import InputError
from snnc.ir.graph import Graph
from snnc.ir.verify import verify


def trace(model: torch.nn.Module, input_shape: Sequence[int] | Sequence[Sequence[int]], **kwargs: Any) -> Graph:
    """Trace a PyTorch module into an IR graph (see snnc.frontends.torch_fx.trace)."""
    from snnc.frontends.torch_fx import trace as fx_trace

    return fx_trace(model, input_shape, **kwargs)


def _sample_shape(data) -> tuple[tuple[int, ...], Any]:
    """The per-sample shape of calibration data, and the data (re-chained if peeked)."""
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(data)
    if isinstance(data, torch.Tensor):
        if data.dim() < 2 or data.shape[0] == 0:
            raise InputError(f"the calibration set is empty or has no batch dim (shape {list(data.shape)})",
                             hint="pass an array [num_samples, *sample_shape]")
        return tuple(data.shape[1:]), data
    it = iter(data)
    try:
        first = next(it)
    except StopIteration:
        raise InputError("the calibration set is empty") from None
    x = first[0] if isinstance(first, (tuple, list)) else first
    return tuple(torch.as_tensor(x).shape[1:]), itertools.chain([first], it)


def convert(model: "torch.nn.Module | Graph", calibration_data, mode: "str | float" = "99.9%", *,
            input_shape: Sequence[int] | None = None, batch_size: int = 256,
            show_progress: bool | None = None) -> Graph:
    """Convert a ReLU ANN into an SNN graph.

    Pipeline: trace -> fuse-bn -> calibrate (activation sketches over the data)
    -> to-time-layout -> relu-to-if (normalization `mode`: 'max', 'P%' or a float
    scale in (0, 1]) -> dce -> verify.

    Args:
        calibration_data: an array/tensor [M, *sample_shape], or an iterable of
            batches (tensors or (x, y) pairs), e.g. a DataLoader.
    """
    from snnc.passes import calibrate, dce, fuse_bn, parse_norm_mode, relu_to_if, to_time_layout

    norm = parse_norm_mode(mode)  # fail on a bad mode before any work
    shape, data = _sample_shape(calibration_data)
    graph = model if isinstance(model, Graph) else trace(model, input_shape or shape)
    g = fuse_bn(graph)
    stats = calibrate(g, data, batch_size=batch_size, show_progress=show_progress)
    g = relu_to_if(to_time_layout(g), stats, norm)
    return verify(dce(g))


def compile(graph: Graph, target: str = "cpu", output: str | os.PathLike | None = None, **options: Any):
    """Lower `graph` for `target` and write the artifact folder `output`; returns the Artifact."""
    from snnc import backends

    backend = backends.get(target)
    if output is None:
        import tempfile

        output = Path(tempfile.mkdtemp(prefix="snnc-")) / f"{graph.name}.{target}"
    return backend.lower(graph, backend.Options(**options), output)


def load(path: str | os.PathLike, **kwargs: Any):
    """Open a compiled artifact folder (or a .snnir file) as a runnable Session."""
    from snnc.runtime.session import Session

    return Session(Path(path), **kwargs)
