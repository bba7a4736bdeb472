"""ANN-to-SNN conversion: normalization modes, ReLU -> IF, and the time layout.

With activation scale lambda (from calibration) a ReLU becomes

    Scale(1/lambda) -> IF(v_threshold=1, soft reset, fire on >=, v_init) -> Scale(lambda)

so with a constant input a the IF fires floor(T a / lambda + v_init) times in T
steps (clipped to [0, T]), and the output scale restores the magnitude:

    relu(a)  ~  lambda / T * clip(floor(T a / lambda + v_init), 0, T)

v_init = 0 truncates (the textbook conversion: every activation loses up to
lambda / T); v_init = 0.5 rounds to the nearest level (Bu et al. 2022, "optimal
potential initialization"). lambda is one number per layer, or one per channel
(`channelwise`, Kim et al. 2020), chosen by the normalization mode:

    max     the largest activation on the calibration data (Diehl et al. 2015)
    P%      the P-th percentile (Rueckauer et al. 2017)
    s       s times the maximum, 0 < s <= 1
    mse     the lambda minimizing E[(relu(a) - code_T(a))^2] over the calibration
            histogram for the target T: clipping error against rounding error
            (a threshold search in the spirit of Li et al. 2021, "A free lunch from ANN")
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Union

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from snnc.core import spelling
from snnc.core.errors import InputError, PassError
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.ops import SoftReset
from snnc.ir.types import Layout
from snnc.passes.calibrate import ActivationStats, ChannelSketch
from snnc.passes.manager import register_pass


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


@register_pass("to-time-layout")
def to_time_layout(graph: Graph) -> Graph:
    """Make every NX graph input TNX ([T, N, *]); types downstream follow."""
    g = graph.copy()
    for op in g.inputs:
        if op.type.layout is Layout.NX:
            g.replace_op(op.replace(type=op.type.with_layout(Layout.TNX)))
    return g


def relu_to_if(graph: Graph, stats: ActivationStats, mode: "str | float | NormMode", *,
               channelwise: bool = False, v_init: float = 0.0, time_steps: int | None = None) -> Graph:
    """Replace each calibrated ReLU by Scale(1/lambda) -> IF(1.0, soft, v_init) -> Scale(lambda).

    channelwise: one lambda per channel (feature dim 0) from `stats.channel_sketches`.
    v_init: the IF's initial potential as a fraction of its threshold (0.5 rounds).
    time_steps: the T that mode 'mse' optimizes for.
    """
    norm = parse_norm_mode(mode)
    if not 0.0 <= v_init < 1.0:
        raise PassError(f"v_init={v_init} is outside [0, 1): it is a fraction of the threshold")
    g = graph.copy()
    scales: dict[str, float | list[float]] = {}
    for op in list(g):
        if not isinstance(op, ops.ReLU):
            continue
        sketch = (stats.channel_sketches if channelwise else stats.sketches).get(op.name)
        if sketch is None:
            what = "per-channel " if channelwise else ""
            raise PassError(f"{op.where()} has no {what}calibration statistics",
                            hint="calibrate the same graph first" + (" with channelwise=True" if channelwise else ""))
        lam = norm.scale(sketch, time_steps, v_init).double()
        dead = ~((lam > 0) & torch.isfinite(lam))
        if bool(dead.all()):
            warnings.warn(f"{op.where()}: calibrated activation scale is {float(lam[0])} (a dead layer: it never "
                          "fired on the calibration data); using 1.0", stacklevel=2)
        if bool(dead.any()):  # a dead channel never fires: any lambda will do; take the layer's
            layer = stats.sketches.get(op.name)
            fill = float(norm.scale(layer, time_steps, v_init)[0]) if layer is not None and layer.n else 1.0
            lam = torch.where(dead, torch.full_like(lam, fill if fill > 0 and math.isfinite(fill) else 1.0), lam)
        pre = g.fresh_name(f"{op.name}_in")
        neuron = g.fresh_name(f"{op.name}_if")
        if lam.numel() == 1:
            scales[op.name] = float(lam[0])
            inv = ops.Scale(name=pre, inputs=op.inputs, factor=1.0 / float(lam[0]), loc=op.loc)
            out = ops.Scale(name=op.name, inputs=(neuron,), factor=float(lam[0]), loc=op.loc)
        else:
            scales[op.name] = [float(v) for v in lam]
            inv = ops.Scale(name=pre, inputs=op.inputs, weight=g.add_param(f"{op.name}.inv_scale", (1.0 / lam).float()),
                            loc=op.loc)
            out = ops.Scale(name=op.name, inputs=(neuron,), weight=g.add_param(f"{op.name}.scale", lam.float()),
                            loc=op.loc)
        g.insert_after(op.name, inv)
        g.insert_after(pre, ops.IF(name=neuron, inputs=(pre,), v_threshold=1.0, reset=SoftReset(),
                                   v_init=v_init if v_init else None, loc=op.loc))
        # the ReLU node becomes the output scale, so its users need no rewiring
        g.replace_op(out)
        g.sort()
    meta = dict(g.meta)
    meta["conversion"] = {"mode": str(norm), "channelwise": channelwise, "v_init": v_init,
                          "time_steps": time_steps, "scales": dict(sorted(scales.items()))}
    g.meta = meta
    return g


class ConversionOptions(BaseModel):
    """Options of the ANN-to-SNN conversion pipeline (`snnc.convert`, `snnc convert`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channelwise: bool = False  # one lambda per channel instead of per layer
    v_init: float = Field(default=0.5, ge=0.0, lt=1.0)  # initial potential / threshold
    time_steps: int | None = Field(default=None, ge=1)  # the T that 'mse' and bias_correction tune for
    bias_correction: bool = False  # shift biases by the mean rate-code error at time_steps
