"""The conversion context: what the conversion passes read beyond the graph, built once at the boundary.

`conversion_context(data, mode, **options)` is called by `snnc.convert` and `snnc compile
--calib`: it parses the normalization mode, validates the options, finds the sample shape
and shards the data across ranks, all before any work. The PassManager then hands the
context to every pass registered with `context=True`; calibrate leaves its statistics in
it for normalize, and the ANN it ran for bias correction (and a target's own passes).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from torch import Tensor

from snnc.core import spelling
from snnc.core.errors import InputError, PassError
from snnc.core.userdata import from_numpy
from snnc.ir.graph import Graph
from snnc.passes import distributed as dist
from snnc.passes.analog_kinds import parse_analog
from snnc.passes.calibrate import ActivationStats
from snnc.passes.norm_modes import MinError, NormMode, parse_norm_mode


class ConversionOptions(BaseModel):
    """Options of the ANN-to-SNN conversion pipeline (`snnc.convert`, `snnc convert`, `snnc compile --calib`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channelwise: bool = False  # one lambda per channel instead of per layer
    v_init: float = Field(default=0.5, ge=0.0, lt=1.0)  # initial potential / threshold
    time_steps: int | None = Field(default=None, ge=1)  # the T that 'mse' and bias_correction tune for
    bias_correction: bool = False  # shift biases by the mean rate-code error at time_steps
    signed: bool = False  # SignedIF neurons (spikes of +1 and -1: early spikes are taken back) instead of IF
    # op kinds with no rate code that run on the decoded rate (passes/analog.py): 'silu,sigmoid', a list, 'all'
    analog: frozenset[str] = frozenset()

    @field_validator("analog", mode="before")
    @classmethod
    def _analog(cls, v):
        return parse_analog(v)


@dataclass
class ConversionContext:
    """The calibration data and typed options of one conversion, and what its passes hand on."""

    data: Any  # a tensor [M, *sample_shape] or an iterable of batches (a list when it is read twice)
    mode: NormMode
    options: ConversionOptions
    sample_shape: tuple[int, ...]
    batch_size: int = 256
    show_progress: bool | None = None
    distributed: bool = False  # data is this rank's shard; statistics are all-reduced
    first: Any = None  # the first batch of an iterable `data`, kept for `head` (an iterator is read once)
    # set while the pipeline runs
    model: Graph | None = None  # the graph the PassManager started from (the ANN as given)
    ann: Graph | None = None  # the ANN that calibrate ran (after fuse-bn): bias correction's reference
    stats: ActivationStats | None = None  # calibrate's sketches, which normalize reads

    def head(self, n: int) -> Tensor:
        """The first `n` calibration samples (of the first batch for iterable data) as a float tensor."""
        x = self.data if isinstance(self.data, Tensor) else self.first
        if isinstance(x, (tuple, list)):
            x = x[0]
        return torch.as_tensor(x)[:n].float()


def require(context: ConversionContext | None, pass_name: str) -> ConversionContext:
    """The context a conversion pass needs; a PassError when the pipeline runs without one."""
    if context is None:
        raise PassError(f"pass {pass_name!r} converts an ANN with calibration data, but this pipeline has none",
                        hint="give --calib DATA to snnc compile, or call snnc.convert(model, data)")
    return context


def calibrated(context: ConversionContext | None, pass_name: str) -> ConversionContext:
    """The context after the calibrate pass; a PassError naming the missing pass otherwise."""
    ctx = require(context, pass_name)
    if ctx.stats is None or ctx.ann is None:
        raise PassError(f"pass {pass_name!r} needs calibration statistics: run 'calibrate' before it",
                        hint="the conversion pipeline: snnc passes shows 'pipeline convert'")
    return ctx


def sample_shape(data) -> tuple[tuple[int, ...], Any, Any]:
    """The per-sample shape of calibration data, the data (re-chained if peeked), and its first batch."""
    if isinstance(data, np.ndarray):
        data = from_numpy(data, "calibration data")
    if isinstance(data, Tensor):
        if data.dim() < 2 or data.shape[0] == 0:
            raise InputError(f"the calibration set is empty or has no batch dim (shape {list(data.shape)})",
                             hint="pass an array [num_samples, *sample_shape]")
        return tuple(data.shape[1:]), data, None
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
    return shape, itertools.chain([first], it), first


def conversion_context(data, mode: "str | float | NormMode" = "99.9%", *, batch_size: int = 256,
                       show_progress: bool | None = None, distributed: bool | None = None,
                       **options: Any) -> ConversionContext:
    """The context of one conversion; a bad mode, option or data set fails here, before any work.

    distributed: shard the data over torch.distributed ranks (None: when torchrun started
    this process with WORLD_SIZE > 1 or a process group is running).
    """
    norm = parse_norm_mode(mode)
    try:
        opts = ConversionOptions(**options)
    except ValidationError as e:
        raise InputError(f"bad conversion option: {e.errors()[0]['loc'][0]}: {e.errors()[0]['msg']}",
                         hint=f"options: {', '.join(ConversionOptions.model_fields)}") from None
    if opts.signed and opts.bias_correction:
        raise InputError(f"{spelling.flag('bias_correction')} corrects the rate-code error of IF neurons; "
                         f"{spelling.flag('signed')} neurons take their early spikes back, and the correction "
                         "does not model them: choose one",
                         hint="signed neurons alone usually come closer to the ANN (benchmarks/RESULTS.md)")
    if (isinstance(norm, MinError) or opts.bias_correction) and opts.time_steps is None:
        raise InputError(f"{'mode mse' if isinstance(norm, MinError) else 'bias_correction'} tunes the SNN for a "
                         f"number of time steps: give {spelling.flag('time_steps')}",
                         hint="e.g. " + spelling.options("snnc.convert(model, data, 'mse', {})", time_steps=4))
    shape, data, first = sample_shape(data)
    sharded = dist.init_from_env() if distributed is None else (distributed and dist.init_from_env())
    if sharded:
        import torch.distributed as td

        data = dist.shard(data, td.get_rank(), td.get_world_size())
    if opts.bias_correction and not isinstance(data, Tensor):
        data = list(data)  # read twice: calibration, then bias correction
    return ConversionContext(data=data, mode=norm, options=opts, sample_shape=shape, batch_size=batch_size,
                             show_progress=show_progress, distributed=bool(sharded), first=first)
