"""ANN-to-SNN conversion: normalization modes, ReLU -> IF, and the time layout.

With activation scale lambda (from calibration) a ReLU becomes

    Scale(1/lambda) -> IF(v_threshold=1, soft reset, fire on >=) -> Scale(lambda)

so with a constant input the IF's firing rate approximates relu(x)/lambda
(clipped to 1) and the output scale restores the magnitude.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Union

from pydantic import BaseModel, ConfigDict, Field

from snnc.errors import InputError, PassError
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.ops import SoftReset
from snnc.ir.types import Layout
from snnc.passes.calibrate import ActivationStats
from snnc.passes.manager import register_pass


class MaxNorm(BaseModel):
    """lambda = the maximum activation."""

    model_config = ConfigDict(frozen=True)

    def scale(self, sketch) -> float:
        return sketch.max

    def __str__(self) -> str:
        return "max"


class Percentile(BaseModel):
    """lambda = the p-th percentile of the activations (robust normalization)."""

    model_config = ConfigDict(frozen=True)
    p: float = Field(gt=0, le=100)

    def scale(self, sketch) -> float:
        return sketch.quantile(self.p / 100.0)

    def __str__(self) -> str:
        return f"{self.p:g}%"


class FixedScale(BaseModel):
    """lambda = s * the maximum activation, 0 < s <= 1."""

    model_config = ConfigDict(frozen=True)
    s: float = Field(gt=0, le=1)

    def scale(self, sketch) -> float:
        return self.s * sketch.max

    def __str__(self) -> str:
        return f"{self.s:g}"


NormMode = Union[MaxNorm, Percentile, FixedScale]
_PCT = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*%\s*$")


def parse_norm_mode(mode: "str | float | NormMode") -> NormMode:
    """'max' | 'P%' (0 < P <= 100) | a float in (0, 1] -> the normalization mode."""
    if isinstance(mode, (MaxNorm, Percentile, FixedScale)):
        return mode
    err = (f"normalization mode {mode!r} is invalid: expected 'max', 'P%' with 0 < P <= 100 (e.g. '99.9%'), "
           "or a float scale in (0, 1]")
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


def relu_to_if(graph: Graph, stats: ActivationStats, mode: "str | float | NormMode") -> Graph:
    """Replace each calibrated ReLU by Scale(1/lambda) -> IF(1.0, soft) -> Scale(lambda)."""
    norm = parse_norm_mode(mode)
    g = graph.copy()
    for op in list(g):
        if not isinstance(op, ops.ReLU):
            continue
        sketch = stats.sketches.get(op.name)
        if sketch is None:
            raise PassError(f"{op.where()} has no calibration statistics", hint="calibrate the same graph first")
        lam = norm.scale(sketch)
        if not (lam > 0 and math.isfinite(lam)):
            warnings.warn(f"{op.where()}: calibrated activation scale is {lam} (a dead layer: it never fired "
                          "on the calibration data); using 1.0", stacklevel=2)
            lam = 1.0
        pre = g.fresh_name(f"{op.name}_in")
        neuron = g.fresh_name(f"{op.name}_if")
        g.insert_after(op.name, ops.Scale(name=pre, inputs=op.inputs, factor=1.0 / lam, loc=op.loc))
        g.insert_after(pre, ops.IF(name=neuron, inputs=(pre,), v_threshold=1.0, reset=SoftReset(), loc=op.loc))
        # the ReLU node becomes the output scale, so its users need no rewiring
        g.replace_op(ops.Scale(name=op.name, inputs=(neuron,), factor=lam, loc=op.loc))
        g.sort()
    meta = dict(g.meta)
    meta["conversion"] = {"mode": str(norm), "scales": {k: v for k, v in _scales(stats, norm).items()}}
    g.meta = meta
    return g


def _scales(stats: ActivationStats, norm: NormMode) -> dict[str, float]:
    return {k: float(norm.scale(s)) for k, s in sorted(stats.sketches.items())}
