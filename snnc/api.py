"""The Python API: trace, convert, compile, load."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from snnc.core import spelling
from snnc.core.errors import InputError
from snnc.ir.graph import Graph
from snnc.ir.verify import verify
from snnc.core.userdata import from_numpy


def trace(model: torch.nn.Module, input_shape: Sequence[int] | Sequence[Sequence[int]], **kwargs: Any) -> Graph:
    """Trace a PyTorch module into an IR graph (see snnc.frontends.torch_fx.trace)."""
    from snnc.frontends.torch_fx import trace as fx_trace

    return fx_trace(model, input_shape, **kwargs)


def _sample_shape(data) -> tuple[tuple[int, ...], Any]:
    """The per-sample shape of calibration data, and the data (re-chained if peeked)."""
    if isinstance(data, np.ndarray):
        data = from_numpy(data, "calibration data")
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
    try:
        shape = tuple(torch.as_tensor(x).shape[1:])
    except (TypeError, ValueError, RuntimeError) as e:  # strings, ragged lists, objects
        raise InputError(f"calibration data, batch 0: a {type(x).__name__} that cannot be converted to a tensor: "
                         f"{e}", hint="give an array [num_samples, *sample_shape] or batches of tensors") from None
    return shape, itertools.chain([first], it)


def convert(model: "torch.nn.Module | Graph", calibration_data, mode: "str | float" = "99.9%", *,
            input_shape: Sequence[int] | None = None, batch_size: int = 256,
            show_progress: bool | None = None, distributed: bool | None = None, **options: Any) -> Graph:
    """Convert a ReLU ANN into an SNN graph.

    Pipeline: trace -> fuse-bn -> calibrate (activation sketches over the data)
    -> to-time-layout -> relu-to-if -> [bias correction] -> dce -> verify.

    Args:
        calibration_data: an array/tensor [M, *sample_shape], or an iterable of
            batches (tensors or (x, y) pairs), e.g. a DataLoader. Float, bool, or integers
            that are all 0 or 1; other integers (uint8 pixels) are refused: scale them to
            what the model was trained on first (x.float() / 255).
        mode: normalization: 'max', 'P%' (e.g. '99.9%'), a float scale in (0, 1],
            or 'mse' (the lambda with the least rate-code error at `time_steps`).
        **options: see `snnc.passes.ConversionOptions`: channelwise (one scale per
            channel), v_init (initial potential as a fraction of the threshold;
            0.5 rounds instead of truncating), time_steps (the T that 'mse' and
            bias_correction tune for), bias_correction.
    """
    from pydantic import ValidationError

    from snnc.passes import (ConversionOptions, calibrate, correct_biases, dce, fuse_bn, parse_norm_mode,
                             relu_to_if, to_time_layout)
    from snnc.passes import distributed as dist

    norm = parse_norm_mode(mode)  # fail on a bad mode or option before any work
    try:
        opts = ConversionOptions(**options)
    except ValidationError as e:
        raise InputError(f"bad conversion option: {e.errors()[0]['loc'][0]}: {e.errors()[0]['msg']}",
                         hint=f"options: {', '.join(ConversionOptions.model_fields)}") from None
    needs_t = str(norm) == "mse" or opts.bias_correction
    if needs_t and opts.time_steps is None:
        raise InputError(f"{'mode mse' if str(norm) == 'mse' else 'bias_correction'} tunes the SNN for a number "
                         f"of time steps: give {spelling.flag('time_steps')}",
                         hint="e.g. " + spelling.options("snnc.convert(model, data, 'mse', {})", time_steps=4))
    shape, data = _sample_shape(calibration_data)
    sharded = dist.init_from_env() if distributed is None else (distributed and dist.init_from_env())
    if sharded:
        import torch.distributed as td

        data = dist.shard(data, td.get_rank(), td.get_world_size())
    if opts.bias_correction and not isinstance(data, torch.Tensor):
        data = list(data)  # read twice: calibration, then bias correction
    graph = model if isinstance(model, Graph) else trace(model, input_shape or shape)
    g = fuse_bn(graph)
    stats = calibrate(g, data, batch_size=batch_size, channelwise=opts.channelwise, show_progress=show_progress,
                      require_data=not sharded)
    if sharded:
        dist.all_reduce_stats(stats)
        if stats.samples == 0:
            raise InputError("the calibration set is empty")
    snn = relu_to_if(to_time_layout(g), stats, norm, channelwise=opts.channelwise, v_init=opts.v_init,
                     time_steps=opts.time_steps)
    if opts.bias_correction:
        snn = correct_biases(snn, g, data, opts.time_steps, batch_size=batch_size)
        snn.meta = {**snn.meta, "conversion": {**snn.meta["conversion"], "bias_correction": True}}
    return verify(dce(snn))


def compile(graph: Graph, target: str = "cpu", output: str | os.PathLike | None = None, *, force: bool = False,
            **options: Any):
    """Lower `graph` for `target` and write the artifact folder `output`; returns the Artifact.

    `output` may be missing, an empty folder or an earlier snnc artifact (replaced
    atomically); anything else raises OutputPathError unless `force=True`.
    """
    from snnc import backends
    from snnc.backends.artifact import check_output

    backend = backends.get(target)
    if output is None:
        import tempfile

        output = Path(tempfile.mkdtemp(prefix="snnc-")) / f"{graph.name}.{target}"
    opts = target_options(target, options)  # bad options fail before any work
    check_output(output, force=force)  # before any lowering work
    return backend.lower(graph, opts, output, force=force)


def target_options(target: str, given: dict[str, Any]):
    """The target's Options from keyword values; an InputError naming an unknown or invalid option."""
    from pydantic import ValidationError

    from snnc import backends

    options = backends.get(target).Options
    unknown = sorted(set(given) - set(options.model_fields))
    if unknown:
        raise InputError(f"target {target!r} has no option {', '.join(unknown)}",
                         hint=f"its options: {', '.join(options.model_fields) or 'none'}")
    try:
        return options(**given)
    except ValidationError as e:
        err = e.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else "options"
        raise InputError(f"bad option for target {target!r}: {spelling.flag(key)}: {err['msg']}") from None


def load(path: "str | os.PathLike | Artifact", **kwargs: Any):
    """Open a compiled artifact (a folder, a .snnir file, or what `compile` returned) as a runnable session.

    The session is the runtime registered for the artifact's target (snnc.runtime.protocol):
    the bit-exact Loihi emulation for 'lava', the CPU reference runtime for the others.
    """
    from snnc.ir.formats.artifact import Artifact
    from snnc.runtime.protocol import open_session

    return open_session(path if isinstance(path, Artifact) else Artifact.open(Path(path)), **kwargs)
