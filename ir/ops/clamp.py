"""Clamp: an elementwise bound from below and/or above (ReLU6, hardtanh, clamp, ONNX Clip)."""

from __future__ import annotations

import math
from typing import Literal, Mapping

from pydantic import field_validator

from snnc.ir.ops.base import OpBase, ParamInfo, need, register
from snnc.ir.types import DType, TensorType


@register
class Clamp(OpBase):
    """y = min(max(x, min), max); a bound that is None is absent. ReLU6 is Clamp(0, 6)."""

    kind: Literal["clamp"] = "clamp"
    min: float | None = None
    max: float | None = None

    @field_validator("min", "max")
    @classmethod
    def _not_nan(cls, v: float | None) -> float | None:
        if v is not None and math.isnan(v):
            raise ValueError("a clamp bound must not be NaN")
        return v

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        need(self.min is not None or self.max is not None, "clamp needs a min or a max bound")
        need(self.min is None or self.max is None or self.min <= self.max,
             f"clamp bounds min={self.min} > max={self.max}")
        x = ins[0]
        return x.with_dtype(DType.F32) if x.dtype is DType.SPIKE else x
