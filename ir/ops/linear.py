"""Synaptic ops with weights: Conv2d, Linear, and BatchNorm."""

from __future__ import annotations

from typing import Annotated, Literal, Mapping

from pydantic import Field

from snnc.ir.ops.base import OpBase, ParamInfo, need, register
from snnc.ir.types import DType, TensorType

Pair = tuple[int, int]
Positive = Annotated[int, Field(ge=1)]
NonNegative = Annotated[int, Field(ge=0)]
PositivePair = tuple[Positive, Positive]  # strides, dilations, kernel and output sizes
NonNegativePair = tuple[NonNegative, NonNegative]  # paddings


def _float_out(x: TensorType) -> DType:
    return DType.F32 if x.dtype in (DType.SPIKE, DType.I8, DType.I16, DType.I32) else x.dtype


def conv_out(size: int, k: int, s: int, p: int, d: int = 1, ceil: bool = False) -> int:
    span = size + 2 * p - d * (k - 1) - 1
    if ceil:
        out = -(-span // s) + 1
        if (out - 1) * s >= size + p:  # last window must start inside the input or left padding
            out -= 1
        return out
    return span // s + 1


@register
class Conv2d(OpBase):
    """y = conv2d(x, W) + b over the feature dims [C, H, W]."""

    kind: Literal["conv2d"] = "conv2d"
    weight: str
    bias: str | None = None
    stride: PositivePair = (1, 1)
    padding: NonNegativePair = (0, 0)
    dilation: PositivePair = (1, 1)
    groups: int = Field(default=1, ge=1)
    param_fields = ("weight", "bias")

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        x, w = ins[0], params[self.weight].shape
        need(len(x.features) == 3, f"conv2d needs input features [C, H, W], got {list(x.features)}")
        need(len(w) == 4, f"conv2d weight must be 4-D [Cout, Cin/groups, kH, kW], got {list(w)}")
        c, h, wd = x.features
        need(c == w[1] * self.groups, f"input has {c} channels but weight expects {w[1] * self.groups} "
             f"(weight {list(w)}, groups={self.groups})")
        need(w[0] % self.groups == 0, f"out channels {w[0]} not divisible by groups={self.groups}")
        if self.bias is not None:
            need(params[self.bias].shape == (w[0],), f"bias shape {list(params[self.bias].shape)} != [{w[0]}]")
        ho = conv_out(h, w[2], self.stride[0], self.padding[0], self.dilation[0])
        wo = conv_out(wd, w[3], self.stride[1], self.padding[1], self.dilation[1])
        need(ho > 0 and wo > 0, f"output size {ho}x{wo} is empty for input {h}x{wd} and kernel {w[2]}x{w[3]}")
        return x.with_features((w[0], ho, wo), _float_out(x))


@register
class Linear(OpBase):
    """y = x W^T + b over the last feature dim."""

    kind: Literal["linear"] = "linear"
    weight: str
    bias: str | None = None
    param_fields = ("weight", "bias")

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        x, w = ins[0], params[self.weight].shape
        need(len(w) == 2, f"linear weight must be 2-D [out, in], got {list(w)}")
        need(len(x.features) >= 1 and x.features[-1] == w[1],
             f"input features {list(x.features)} do not end in {w[1]} (weight {list(w)})")
        if self.bias is not None:
            need(params[self.bias].shape == (w[0],), f"bias shape {list(params[self.bias].shape)} != [{w[0]}]")
        return x.with_features((*x.features[:-1], w[0]), _float_out(x))


@register
class BatchNorm(OpBase):
    """Inference batch norm over feature dim 0: y = (x - mean) / sqrt(var + eps) * weight + bias."""

    kind: Literal["batch_norm"] = "batch_norm"
    running_mean: str
    running_var: str
    weight: str | None = None
    bias: str | None = None
    eps: float = Field(default=1e-5, gt=0)
    param_fields = ("running_mean", "running_var", "weight", "bias")

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        x = ins[0]
        need(len(x.features) in (1, 2, 3), f"batch_norm needs [C], [C, L] or [C, H, W] features, got {list(x.features)}")
        c = x.features[0]
        for f, p in self.param_refs().items():
            need(params[p].shape == (c,), f"{f} has shape {list(params[p].shape)}, expected [{c}]")
        return x.with_dtype(_float_out(x))


@register
class Conv1d(OpBase):
    """y = conv1d(x, W) + b over the feature dims [C, L]."""

    kind: Literal["conv1d"] = "conv1d"
    weight: str
    bias: str | None = None
    stride: int = Field(default=1, ge=1)
    padding: int = Field(default=0, ge=0)
    dilation: int = Field(default=1, ge=1)
    groups: int = Field(default=1, ge=1)
    param_fields = ("weight", "bias")

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        x, w = ins[0], params[self.weight].shape
        need(len(x.features) == 2, f"conv1d needs input features [C, L], got {list(x.features)}")
        need(len(w) == 3, f"conv1d weight must be 3-D [out, in/groups, k], got {list(w)}")
        c, length = x.features
        need(c == w[1] * self.groups, f"input channels {c} != {w[1]} * groups {self.groups} (weight {list(w)})")
        need(w[0] % self.groups == 0, f"out channels {w[0]} not divisible by groups={self.groups}")
        if self.bias is not None:
            need(params[self.bias].shape == (w[0],), f"bias shape {list(params[self.bias].shape)} != [{w[0]}]")
        lo = conv_out(length, w[2], self.stride, self.padding, self.dilation)
        need(lo > 0, f"output length {lo} is empty for input length {length} and kernel {w[2]}")
        return x.with_features((w[0], lo), _float_out(x))


@register
class LayerNorm(OpBase):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last len(normalized_shape) feature dims.

    Not linear in x (it divides by the input's own deviation): conversion refuses it.
    """

    kind: Literal["layer_norm"] = "layer_norm"
    normalized_shape: tuple[int, ...]
    weight: str | None = None
    bias: str | None = None
    eps: float = Field(default=1e-5, gt=0)
    param_fields = ("weight", "bias")
    rate_preserving = False

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        x, n = ins[0], self.normalized_shape
        need(len(n) >= 1 and tuple(x.features[-len(n):]) == n,
             f"layer_norm over {list(n)} does not match the trailing features of {list(x.features)}")
        for f, p in self.param_refs().items():
            need(params[p].shape == n, f"{f} has shape {list(params[p].shape)}, expected {list(n)}")
        return x.with_dtype(_float_out(x))
