"""The Python API: trace, convert, compile, load."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch

from snnc import backends
from snnc.backends.artifact import check_output
from snnc.core import spelling
from snnc.core.errors import InputError
from snnc.frontends.torch_fx import trace as fx_trace
from snnc.ir.formats.artifact import Artifact
from snnc.ir.graph import Graph
from snnc.passes import PIPELINES, PassManager, conversion_context, convert_graph, parse_pipeline
from snnc.runtime.protocol import open_session

if TYPE_CHECKING:
    from snnc.passes.norm_modes import NormMode


def trace(model: torch.nn.Module, input_shape: Sequence[int] | Sequence[Sequence[int]], **kwargs: Any) -> Graph:
    """Trace a PyTorch module into an IR graph (see snnc.frontends.torch_fx.trace)."""
    return fx_trace(model, input_shape, **kwargs)


def convert(model: "torch.nn.Module | Graph", calibration_data, mode: "str | float | NormMode" = "99.9%", *,
            input_shape: Sequence[int] | None = None, batch_size: int = 256,
            show_progress: bool | None = None, distributed: bool | None = None, **options: Any) -> Graph:
    """Convert a ReLU ANN into an SNN graph.

    Pipeline (PIPELINES["convert"], `snnc passes`): trace -> fuse-bn -> calibrate (activation
    sketches over the data) -> normalize -> to-time-layout -> relu-to-if -> bias-correction
    (when asked for) -> dce -> verify. `snnc compile --calib` runs the same passes.

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
            bias_correction tune for), bias_correction, signed (SignedIF neurons,
            whose -1 spikes take back early spikes: closer to the ANN at every T, on the
            cpu, triton and lynxi targets; docs/conversion.md), analog (the hybrid mode: op kinds
            with no rate code, 'silu,sigmoid' or a list or 'all', that run on the decoded rate
            of their spiking input; graph.meta['analog'] then reports the analog share of the
            MACs, see snnc.passes.analog.AnalogReport and docs/conversion.md).
    """
    # a bad mode, option or data set fails before any work
    context = conversion_context(calibration_data, mode, batch_size=batch_size, show_progress=show_progress,
                                 distributed=distributed, **options)
    graph = model if isinstance(model, Graph) else trace(model, input_shape or context.sample_shape)
    return convert_graph(graph, context)


def compile(graph: Graph, target: str = "cpu", output: str | os.PathLike | None = None, *, force: bool = False,
            passes: str | None = None, **options: Any):
    """Run the target's pass pipeline on `graph` (as `snnc compile` does: `snnc passes` lists it), lower
    the result for `target` and write the artifact folder `output`; returns the Artifact.

    `passes` replaces the pipeline (a comma-separated list, as `--passes`; "" runs none). `graph`
    itself is not changed. `output` may be missing, an empty folder or an earlier snnc artifact
    (replaced atomically); anything else raises OutputPathError unless `force=True`.
    """
    backend = backends.get(target)
    if output is None:
        import tempfile

        output = Path(tempfile.mkdtemp(prefix="snnc-")) / f"{graph.name}.{target}"
    opts = target_options(target, options)  # bad options fail before any work
    check_output(output, force=force)  # before any lowering work
    spec = PIPELINES.get(target, "") if passes is None else passes
    if spec:
        backends.register_passes()  # a target's own passes (quantize-loihi) may be named too
        graph = PassManager(parse_pipeline(spec)).run(graph)
    return backend.lower(graph, opts, output, force=force)


def target_options(target: str, given: dict[str, Any]):
    """The target's Options from keyword values; an InputError naming an unknown or invalid option."""
    from pydantic import ValidationError

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
    return open_session(path if isinstance(path, Artifact) else Artifact.open(Path(path)), **kwargs)
