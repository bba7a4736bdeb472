"""Tensor and layout ops over the per-sample features: Reshape, Permute, Slice, Mean, Sum, Mul, Sub,
AddScalar, AddConst, Constant, MatMul, Clamp and Softmax.

Every dim index is a feature dim (0 = the first dim after batch/time); batch and
time never move. Binary ops broadcast feature dims of size 1 (same rank).
"""

from __future__ import annotations

import math
from typing import Literal, Mapping

from pydantic import field_validator, model_validator

from snnc.ir.ops.base import OpBase, ParamInfo, need, register
from snnc.ir.types import DType, TensorType


def _finite(v: float | None, what: str) -> float | None:
    if v is not None and not math.isfinite(v):
        raise ValueError(f"{what} must be finite, got {v}")
    return v


def _float(x: TensorType) -> DType:
    return DType.F32 if x.dtype in (DType.SPIKE, DType.I8, DType.I16, DType.I32) else x.dtype


def broadcast(op: OpBase, a: TensorType, b: TensorType) -> tuple[int, ...]:
    """The features of a elementwise-op b: equal rank, each dim equal or 1 on one side."""
    need(a.layout == b.layout, f"{op.kind} of layouts {a.layout.value} and {b.layout.value}")
    fa, fb = a.features, b.features
    need(len(fa) == len(fb) and all(x == y or 1 in (x, y) for x, y in zip(fa, fb)),
         f"{op.kind} of features {list(fa)} and {list(fb)} (they must be equal or 1 in each dim)")
    return tuple(max(x, y) for x, y in zip(fa, fb))


@register
class Reshape(OpBase):
    """y = x viewed with features `shape` (row-major order; the batch/time dims stay)."""

    kind: Literal["reshape"] = "reshape"
    shape: tuple[int, ...]

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        f = ins[0].features
        need(all(d >= 1 for d in self.shape) and math.prod(self.shape) == math.prod(f),
             f"reshape of features {list(f)} ({math.prod(f)} elements) to {list(self.shape)}")
        return ins[0].with_features(self.shape)


@register
class Permute(OpBase):
    """y = x with its feature dims reordered: y.features[i] = x.features[perm[i]] (transpose, permute)."""

    kind: Literal["permute"] = "permute"
    perm: tuple[int, ...]

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        f = ins[0].features
        need(sorted(self.perm) == list(range(len(f))), f"perm {list(self.perm)} is no permutation of {len(f)} dims")
        return ins[0].with_features(tuple(f[p] for p in self.perm))


@register
class Slice(OpBase):
    """y = x[..., start:end, ...] along feature dim `dim` (step 1): one part of chunk/split (ONNX Split).

    Every kept element is copied unchanged, so it preserves rates and spikes.
    """

    kind: Literal["slice"] = "slice"
    dim: int
    start: int
    end: int

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        f = ins[0].features
        need(0 <= self.dim < len(f), f"slice dim {self.dim} out of range for features {list(f)}")
        need(0 <= self.start < self.end <= f[self.dim],
             f"slice [{self.start}:{self.end}] of dim {self.dim} of features {list(f)} (it must be a non-empty "
             "range inside the dim)")
        out = list(f)
        out[self.dim] = self.end - self.start
        return ins[0].with_features(tuple(out))


@register
class Mean(OpBase):
    """y = the mean of x over feature dims `dims` (kept as size 1 with keepdim)."""

    kind: Literal["mean"] = "mean"
    dims: tuple[int, ...]
    keepdim: bool = False

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        f = ins[0].features
        need(len(self.dims) >= 1 and len(set(self.dims)) == len(self.dims)
             and all(0 <= d < len(f) for d in self.dims), f"mean over dims {list(self.dims)} of features {list(f)}")
        out = tuple(1 if i in self.dims else d for i, d in enumerate(f)) if self.keepdim else \
            tuple(d for i, d in enumerate(f) if i not in self.dims)
        return ins[0].with_features(out, _float(ins[0]))


@register
class Mul(OpBase):
    """y = x0 * x1, elementwise (features broadcast). Spikes times spikes is a spike (AND)."""

    kind: Literal["mul"] = "mul"
    arity = 2
    rate_preserving = False  # the product of two rates is not the rate of the product

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        a, b = ins
        feats = broadcast(self, a, b)
        dtype = DType.SPIKE if a.dtype is b.dtype is DType.SPIKE else _float(a) if a.dtype == b.dtype else DType.F32
        return a.with_features(feats, dtype)


@register
class Sub(OpBase):
    """y = x0 - x1, elementwise (features broadcast)."""

    kind: Literal["sub"] = "sub"
    arity = 2

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        a, b = ins
        feats = broadcast(self, a, b)
        return a.with_features(feats, _float(a) if a.dtype == b.dtype else DType.F32)


@register
class AddScalar(OpBase):
    """y = x + value (1 - x is Scale(-1) then AddScalar(1))."""

    kind: Literal["add_scalar"] = "add_scalar"
    value: float

    @field_validator("value")
    @classmethod
    def _ok(cls, v: float) -> float:
        return _finite(v, "the added value")

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        return ins[0].with_dtype(_float(ins[0]))


@register
class AddConst(OpBase):
    """y = x + value, `value` a parameter of the features' rank that broadcasts against them (each dim equal or
    1): ViT's position embedding, a constant bias that follows no matrix product.

    Linear in x: on a rate-coded x, the constant (fed at every step) adds its own value to the rate.
    """

    kind: Literal["add_const"] = "add_const"
    value: str
    param_fields = ("value",)

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        x, shape = ins[0], tuple(params[self.value].shape)
        need(len(shape) == len(x.features) and all(s in (1, f) for s, f in zip(shape, x.features)),
             f"a constant of shape {list(shape)} does not broadcast against the features {list(x.features)} "
             "(it needs their rank, each dim equal or 1)")
        return x.with_dtype(_float(x))


@register
class Constant(OpBase):
    """y = value at every batch (and time) index: a parameter broadcast over the batch, as x.expand(N, ...) of a
    weight writes it (ViT's class token). Its one input only gives the batch/time dims and layout; none of
    its values is read.

    A constant fed at every step has that constant as its rate: concatenated with rate-coded values, it
    stays exact.
    """

    kind: Literal["constant"] = "constant"
    value: str
    param_fields = ("value",)

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        shape = tuple(params[self.value].shape)
        need(len(shape) >= 1 and all(d >= 1 for d in shape), f"a constant of shape {list(shape)} (it needs "
             "at least one feature dim, none empty)")
        return ins[0].with_features(shape, DType.F32)


@register
class MatMul(OpBase):
    """y = x0 @ x1 over the last two feature dims [.., M, K] @ [.., K, P] -> [.., M, P] (leading dims equal).

    Both operands are graph values (spike x spike, spike x value); a product by a
    weight matrix is a Linear.
    """

    kind: Literal["matmul"] = "matmul"
    arity = 2
    rate_preserving = False  # bilinear: E[a b] != E[a] E[b] for rate-coded a and b

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        a, b = ins
        fa, fb = a.features, b.features
        need(a.layout == b.layout, f"matmul of layouts {a.layout.value} and {b.layout.value}")
        need(len(fa) >= 2 and len(fa) == len(fb) and fa[:-2] == fb[:-2] and fa[-1] == fb[-2],
             f"matmul of features {list(fa)} and {list(fb)} (expected [.., M, K] and [.., K, P])")
        return a.with_features((*fa[:-1], fb[-1]), DType.F32)


@register
class Clamp(OpBase):
    """y = min(max(x, min), max) (hardtanh, relu6, ONNX Clip); a bound of None is open."""

    kind: Literal["clamp"] = "clamp"
    min: float | None = None
    max: float | None = None
    rate_preserving = False  # conversion must replace it (a bounded neuron); passed through it would be wrong

    @model_validator(mode="after")
    def _bounds(self) -> "Clamp":
        _finite(self.min, "clamp min")
        _finite(self.max, "clamp max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"clamp min {self.min} > max {self.max}")
        return self

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        return ins[0].with_dtype(_float(ins[0]))


@register
class Softmax(OpBase):
    """y = exp(x) / sum(exp(x)) along feature dim `dim`. Non-spiking: no rate code exists for it."""

    kind: Literal["softmax"] = "softmax"
    dim: int
    rate_preserving = False

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        f = ins[0].features
        need(0 <= self.dim < len(f), f"softmax dim {self.dim} out of range for features {list(f)}")
        return ins[0].with_dtype(_float(ins[0]))


@register
class Sum(OpBase):
    """y = the sum of x over feature dims `dims` (kept as size 1 with keepdim). A sum of spikes counts them."""

    kind: Literal["sum"] = "sum"
    dims: tuple[int, ...]
    keepdim: bool = False

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        f = ins[0].features
        need(len(self.dims) >= 1 and len(set(self.dims)) == len(self.dims)
             and all(0 <= d < len(f) for d in self.dims), f"sum over dims {list(self.dims)} of features {list(f)}")
        out = tuple(1 if i in self.dims else d for i, d in enumerate(f)) if self.keepdim else \
            tuple(d for i, d in enumerate(f) if i not in self.dims)
        return ins[0].with_features(out, _float(ins[0]))
