"""Non-ReLU activations and the rate decoder of the hybrid (`--analog`) conversion: Activation, RateDecode.

No rate code exists for SiLU, sigmoid, hardswish, hardsigmoid or GELU. After an
ANN-to-SNN conversion with `analog=` naming them, such an op reads the decoded
rate of its spiking input (a RateDecode: the running mean of that input so far)
and its output enters the next layer as an analog current (docs/conversion.md).
"""

from __future__ import annotations

from enum import Enum
from typing import Literal, Mapping

from snnc.ir.ops.base import OpBase, ParamInfo, StateSpec, need, register
from snnc.ir.types import DType, TensorType


class ActivationFn(str, Enum):
    """The elementwise activations an Activation computes (torch's definitions)."""

    SILU = "silu"  # x * sigmoid(x)
    SIGMOID = "sigmoid"  # 1 / (1 + exp(-x))
    HARDSWISH = "hardswish"  # x * clamp(x + 3, 0, 6) / 6
    HARDSIGMOID = "hardsigmoid"  # clamp(x / 6 + 1/2, 0, 1)
    GELU = "gelu"  # x * Phi(x), Phi the normal CDF (erf)
    GELU_TANH = "gelu_tanh"  # GELU's tanh approximation (approximate='tanh')
    TANH = "tanh"

    @property
    def analog_name(self) -> str:
        """The name `--analog` knows it by (both GELU forms are 'gelu')."""
        return "gelu" if self is ActivationFn.GELU_TANH else self.value


@register
class Activation(OpBase):
    """y = fn(x), elementwise, for a non-ReLU activation `fn` (ActivationFn). Not linear: no rate code."""

    kind: Literal["activation"] = "activation"
    fn: ActivationFn
    rate_preserving = False

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        x = ins[0]
        return x.with_dtype(DType.F32) if x.dtype in (DType.SPIKE, DType.I8, DType.I16, DType.I32) else x


@register
class RateDecode(OpBase):
    """The decoded rate of a rate-coded input: its running mean over the steps so far.

        S[t] = S[t-1] + x[t]          S[-1] = 0 (state `sum`, stacked with the step count)
        y[t] = S[t] / (t + 1)

    With spikes scaled by the layer's lambda, y[t] is the activation the ANN's next op
    would see, estimated from t + 1 steps; it converges to it as the input rates do.
    """

    kind: Literal["rate_decode"] = "rate_decode"
    state = (StateSpec("sum", "the input summed over the steps so far, stacked with the number of steps", stacked=2),)
    stateful = True

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        need(ins[0].layout.has_time, f"rate_decode averages over time: it needs a layout with time "
             f"(TNX, NXT or TN), got {ins[0].layout.value}")
        x = ins[0]
        return x.with_dtype(DType.F32) if x.dtype in (DType.SPIKE, DType.I8, DType.I16, DType.I32) else x
