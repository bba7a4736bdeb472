"""Stateless elementwise and shape ops: ReLU, Scale, Threshold, Add, Concat, Flatten, Identity."""

from __future__ import annotations

import math
from typing import Literal, Mapping

from pydantic import field_validator

from snnc.core.dynamics import FireCompare
from snnc.ir.ops.base import OpBase, ParamInfo, need, register
from snnc.ir.types import DType, TensorType


@register
class ReLU(OpBase):
    """y = max(x, 0)."""

    kind: Literal["relu"] = "relu"

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        return ins[0]


@register
class Identity(OpBase):
    """y = x."""

    kind: Literal["identity"] = "identity"

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        return ins[0]


@register
class Scale(OpBase):
    """y = factor * x, times `weight` when given: per channel [C] over feature dim 0, or per element
    (a weight of the full per-sample shape, as NIR's Scale and per-neuron gains carry)."""

    kind: Literal["scale"] = "scale"
    factor: float = 1.0
    weight: str | None = None
    param_fields = ("weight",)

    @field_validator("factor")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError(f"scale factor must be finite, got {v}")
        return v

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        x = ins[0]
        if self.weight is not None:
            shape = tuple(params[self.weight].shape)
            need(len(x.features) >= 1 and shape in ((x.features[0],), tuple(x.features)),
                 f"weight {list(shape)} is neither per channel nor per element of the features {list(x.features)}")
        return x.with_dtype(DType.F32) if x.dtype is DType.SPIKE else x

    def per_element(self, params: Mapping[str, ParamInfo]) -> bool:
        """True when the weight has the full per-sample shape (and more than one dim): not per channel."""
        return self.weight is not None and len(params[self.weight].shape) > 1


@register
class Threshold(OpBase):
    """Heaviside step (NIR Threshold): y = 1 where x > threshold (fire=gt) or x >= threshold (ge), else 0.

    `threshold_param` names per-element thresholds (broadcasting against the features) replacing `threshold`.
    """

    kind: Literal["threshold"] = "threshold"
    threshold: float = 0.0
    fire: FireCompare = FireCompare.GT
    threshold_param: str | None = None
    param_fields = ("threshold_param",)

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        x = ins[0]
        if self.threshold_param is not None:
            shape, feats = tuple(params[self.threshold_param].shape), tuple(x.features)
            need(len(shape) <= len(feats) and all(a in (1, b) for a, b in zip(shape[::-1], feats[::-1])),
                 f"thresholds of shape {list(shape)} do not broadcast against the features {list(feats)}")
        return x.with_dtype(DType.SPIKE)


@register
class Add(OpBase):
    """y = x0 + x1 (same feature shape)."""

    kind: Literal["add"] = "add"
    arity = 2

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        a, b = ins
        need(a.features == b.features, f"add of features {list(a.features)} and {list(b.features)}")
        need(a.layout == b.layout, f"add of layouts {a.layout.value} and {b.layout.value}")
        dtype = a.dtype if a.dtype == b.dtype and a.dtype is not DType.SPIKE else DType.F32
        return a.with_dtype(dtype)


@register
class Concat(OpBase):
    """Concatenation along feature dim `dim` (0 = channels)."""

    kind: Literal["concat"] = "concat"
    dim: int = 0
    arity = None

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        first = ins[0]
        rank = len(first.features)
        need(0 <= self.dim < rank, f"concat dim {self.dim} out of range for features {list(first.features)}")
        total = 0
        for t in ins:
            need(t.layout == first.layout, f"concat of layouts {first.layout.value} and {t.layout.value}")
            need(len(t.features) == rank and all(a == b for i, (a, b) in enumerate(zip(t.features, first.features))
                                                   if i != self.dim),
                 f"concat of features {list(first.features)} and {list(t.features)} along dim {self.dim}")
            total += t.features[self.dim]
        feats = list(first.features)
        feats[self.dim] = total
        dtypes = {t.dtype for t in ins}
        return first.with_features(tuple(feats), dtypes.pop() if len(dtypes) == 1 else DType.F32)


@register
class Flatten(OpBase):
    """Flatten feature dims start_dim..end_dim (indices into the per-sample features)."""

    kind: Literal["flatten"] = "flatten"
    start_dim: int = 0
    end_dim: int = -1

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        f = ins[0].features
        s, e = self.start_dim % max(len(f), 1), self.end_dim % max(len(f), 1)
        need(len(f) >= 1 and s <= e, f"flatten dims {self.start_dim}..{self.end_dim} invalid for {list(f)}")
        return ins[0].with_features((*f[:s], math.prod(f[s:e + 1]), *f[e + 1:]))
