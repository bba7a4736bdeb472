"""Normalization modes: how conversion picks each ReLU's activation scale lambda from calibration.

    max     the largest activation on the calibration data (Diehl et al. 2015)
    P%      the P-th percentile (Rueckauer et al. 2017)
    s       s times the maximum, 0 < s <= 1
    mse     the lambda minimizing E[(relu(a) - code_T(a))^2] over the calibration
            histogram for the target T: clipping error against rounding error
            (a threshold search in the spirit of Li et al. 2021, "A free lunch from ANN")

`parse_norm_mode` reads the user's spelling ('99.9%', 'max', 0.5, 'mse') once, at the
boundary (CLI, `snnc.convert`); past it the code matches on these types, and `str(mode)`
is the one spelling written to outputs (graph.meta["conversion"]["mode"]).
"""

from __future__ import annotations

import math
import re
from typing import Union

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from snnc.core import spelling
from snnc.core.errors import InputError, PassError
from snnc.passes.calibrate import ChannelSketch


class MaxNorm(BaseModel):
    """lambda = the maximum activation."""

    model_config = ConfigDict(frozen=True)

    def scale(self, sketch: ChannelSketch, time_steps: int | None = None, v_init: float = 0.0) -> Tensor:
        return sketch.channel_quantile(1.0)

    def __str__(self) -> str:
        return "max"


class Percentile(BaseModel):
    """lambda = the p-th percentile of the activations (robust normalization)."""

    model_config = ConfigDict(frozen=True)
    p: float = Field(gt=0, le=100)

    def scale(self, sketch: ChannelSketch, time_steps: int | None = None, v_init: float = 0.0) -> Tensor:
        return sketch.channel_quantile(self.p / 100.0)

    def __str__(self) -> str:
        return f"{self.p:g}%"


class FixedScale(BaseModel):
    """lambda = s * the maximum activation, 0 < s <= 1."""

    model_config = ConfigDict(frozen=True)
    s: float = Field(gt=0, le=1)

    def scale(self, sketch: ChannelSketch, time_steps: int | None = None, v_init: float = 0.0) -> Tensor:
        return self.s * sketch.channel_quantile(1.0)

    def __str__(self) -> str:
        return f"{self.s:g}"


class MinError(BaseModel):
    """lambda = argmin E[(a - code_T(a))^2] over the calibration histogram, for T time steps."""

    model_config = ConfigDict(frozen=True)

    def scale(self, sketch: ChannelSketch, time_steps: int | None = None, v_init: float = 0.0) -> Tensor:
        if time_steps is None:
            raise PassError("normalization mode 'mse' optimizes lambda for a number of time steps",
                            hint=f"give {spelling.option('time_steps', '<int>')}")
        return min_error_scale(sketch, time_steps, v_init)

    def __str__(self) -> str:
        return "mse"


NormMode = Union[MaxNorm, Percentile, FixedScale, MinError]


def rate_code(a: Tensor, lam: Tensor, time_steps: int, v_init: float) -> Tensor:
    """What T IF steps make of a constant activation a >= 0: lambda/T * clip(floor(T a/lambda + v_init), 0, T)."""
    return lam / time_steps * torch.clamp(torch.floor(a * time_steps / lam + v_init), 0, time_steps)


def min_error_scale(sketch: ChannelSketch, time_steps: int, v_init: float, grid: int = 128) -> Tensor:
    """Per channel, the lambda in a geometric grid (0.02..1) x max minimizing the rate-code error."""
    values = sketch.bucket_values()
    counts = sketch.counts.reshape(sketch.channels, -1)
    used = counts.sum(0) > 0
    vmax = sketch.channel_quantile(1.0)
    if not bool(used.any()):
        return vmax
    v, c = values[used], counts[:, used].double()  # [B], [C, B]; zeros cost nothing (code(0) = 0)
    fractions = torch.logspace(math.log10(0.02), 0.0, grid, dtype=torch.float64)
    lam = vmax.clamp(min=1e-12).unsqueeze(1) * fractions  # [C, K]
    err = torch.stack([(c * (v - rate_code(v, lam[:, k:k + 1], time_steps, v_init)) ** 2).sum(1)
                       for k in range(grid)], 1)
    best = lam.gather(1, err.argmin(1, keepdim=True)).squeeze(1)
    return torch.where(vmax > 0, best, vmax)


_PCT = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*%\s*$")


def parse_norm_mode(mode: "str | float | NormMode") -> NormMode:
    """'max' | 'P%' (0 < P <= 100) | 'mse' | a float in (0, 1] -> the normalization mode."""
    if isinstance(mode, (MaxNorm, Percentile, FixedScale, MinError)):
        return mode
    err = (f"normalization mode {mode!r} is invalid: expected 'max', 'P%' with 0 < P <= 100 (e.g. '99.9%'), "
           "'mse', or a float scale in (0, 1]")
    if isinstance(mode, bool):
        raise InputError(err)
    if isinstance(mode, (int, float)):
        if not (0 < float(mode) <= 1) or not math.isfinite(float(mode)):
            raise InputError(err)
        return FixedScale(s=float(mode))
    if not isinstance(mode, str):
        raise InputError(err)
    if mode.strip().lower() == "max":
        return MaxNorm()
    if mode.strip().lower() == "mse":
        return MinError()
    m = _PCT.match(mode)
    if m:
        p = float(m.group(1))
        if not 0 < p <= 100:
            raise InputError(err)
        return Percentile(p=p)
    try:
        scale = float(mode)
    except ValueError:
        raise InputError(err) from None
    if not (0 < scale <= 1):
        raise InputError(err)
    return FixedScale(s=scale)
