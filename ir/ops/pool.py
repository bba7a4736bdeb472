"""Pooling ops over [C, H, W] features."""

from __future__ import annotations

from typing import Literal, Mapping

from pydantic import Field

from snnc.ir.ops.base import OpBase, ParamInfo, StateSpec, need, register
from snnc.ir.ops.linear import NonNegativePair, Pair, PositivePair, conv_out
from snnc.ir.types import DType, TensorType


def _pool_infer(op, x: TensorType, dilation: Pair = (1, 1)) -> tuple[int, int, int]:
    need(len(x.features) == 3, f"{op.kind} needs input features [C, H, W], got {list(x.features)}")
    c, h, w = x.features
    for i in range(2):
        need(op.padding[i] <= op.kernel_size[i] // 2,
             f"padding {op.padding} must be at most half the kernel size {op.kernel_size}")
    ho = conv_out(h, op.kernel_size[0], op.stride[0], op.padding[0], dilation[0], op.ceil_mode)
    wo = conv_out(w, op.kernel_size[1], op.stride[1], op.padding[1], dilation[1], op.ceil_mode)
    need(ho > 0 and wo > 0, f"output size {ho}x{wo} is empty for input {h}x{w}")
    return c, ho, wo


@register
class AvgPool2d(OpBase):
    """Average over kernel windows (zero padding counted unless count_include_pad=False)."""

    kind: Literal["avg_pool2d"] = "avg_pool2d"
    kernel_size: PositivePair
    stride: PositivePair
    padding: NonNegativePair = (0, 0)
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: int | None = Field(default=None, ge=1)

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        out = ins[0].with_features(_pool_infer(self, ins[0]))
        return out.with_dtype(DType.F32) if ins[0].dtype is DType.SPIKE else out


@register
class MaxPool2d(OpBase):
    """Maximum over kernel windows. On spikes the output is again a spike."""

    kind: Literal["max_pool2d"] = "max_pool2d"
    kernel_size: PositivePair
    stride: PositivePair
    padding: NonNegativePair = (0, 0)
    dilation: PositivePair = (1, 1)
    ceil_mode: bool = False

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        return ins[0].with_features(_pool_infer(self, ins[0], self.dilation))


@register
class RunningMaxPool2d(OpBase):
    """Max pooling of a rate code that converges to the max of the rates (the ANN-to-SNN conversion's).

        A[t] = A[t-1] + x[t]                        A[-1] = 0: the input summed per position (state `acc`)
        y[t] = maxpool(A[t]) - maxpool(A[t-1])

    so y[0] + ... + y[t] = maxpool(A[t]) exactly: after every step the output has carried the
    largest accumulated input of each window, and its mean over t steps is the max of the
    inputs' means (MaxPool2d on spikes takes the max at each step instead, whose mean
    overestimates the max of the rates however long it runs). On spikes (0/1) the sums are
    integers, so y is 0/1 again (exact up to 2^24 steps in float32); on an analog input
    (a current) y is analog and may be negative. Fields as MaxPool2d's (padding is -inf).
    """

    kind: Literal["running_max_pool2d"] = "running_max_pool2d"
    kernel_size: PositivePair
    stride: PositivePair
    padding: NonNegativePair = (0, 0)
    dilation: PositivePair = (1, 1)
    ceil_mode: bool = False

    state = (StateSpec("acc", "the input summed over the steps so far"),)
    stateful = True

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        need(ins[0].layout.has_time, f"running_max_pool2d pools over time: it needs a layout with time "
             f"(TNX, NXT or TN), got {ins[0].layout.value}")
        return ins[0].with_features(_pool_infer(self, ins[0], self.dilation))


@register
class AdaptiveAvgPool2d(OpBase):
    """Average pooling to a fixed output size [C, oh, ow]."""

    kind: Literal["adaptive_avg_pool2d"] = "adaptive_avg_pool2d"
    output_size: PositivePair

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        x = ins[0]
        need(len(x.features) == 3, f"adaptive_avg_pool2d needs features [C, H, W], got {list(x.features)}")
        need(min(self.output_size) >= 1, f"output_size must be positive, got {self.output_size}")
        out = x.with_features((x.features[0], *self.output_size))
        return out.with_dtype(DType.F32) if x.dtype is DType.SPIKE else out


@register
class AvgPool1d(OpBase):
    """Average over kernel windows of features [C, L] (SpikingJelly's VotingLayer is one over [1, C])."""

    kind: Literal["avg_pool1d"] = "avg_pool1d"
    kernel_size: int = Field(ge=1)
    stride: int = Field(ge=1)
    padding: int = Field(default=0, ge=0)
    ceil_mode: bool = False
    count_include_pad: bool = True

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        x = ins[0]
        need(len(x.features) == 2, f"avg_pool1d needs input features [C, L], got {list(x.features)}")
        need(self.padding <= self.kernel_size // 2,
             f"padding {self.padding} must be at most half the kernel size {self.kernel_size}")
        c, length = x.features
        lo = conv_out(length, self.kernel_size, self.stride, self.padding, 1, self.ceil_mode)
        need(lo > 0, f"output length {lo} is empty for input length {length}")
        out = x.with_features((c, lo))
        return out.with_dtype(DType.F32) if x.dtype is DType.SPIKE else out
