"""The sigma-delta neuron (lava-dl NetX `SDNN`, lava-nc `proc/sdn`): graded messages of activation changes.

    sigma[t] = sigma[t-1] + X[t]                        (mode sigma_delta, sigma)
    act[t]   = relu(sigma[t] + bias)                    (delta: act[t] = X[t] 2^(spike_exp + state_exp))
    delta    = act[t] - act[t-1] + residue[t-1]
    S[t]     = delta / 2^state_exp where |delta| >= threshold else 0;  residue keeps what was not sent
    S[t]     = sigma[t]                                 (mode sigma: the decoded value)

The equations are defined once, in snnc.core.sigma_delta (float here and in the
CPU reference runtime; Loihi's fixed point in snnc.runtime.loihi). Threshold
and bias are in state units (Lava's vThMant << 12 and bias << 12 for a NetX
file), X and S in message units.
"""

from __future__ import annotations

from typing import Literal, Mapping

from pydantic import Field

from snnc.core.sigma_delta import Activation
from snnc.ir.ops.base import OpBase, ParamInfo, StateSpec, need, register
from snnc.ir.types import DType, TensorType


@register
class SigmaDelta(OpBase):
    """A sigma-delta neuron layer; `bias` names a per-channel (or per-neuron) parameter in state units."""

    kind: Literal["sigma_delta"] = "sigma_delta"
    mode: Literal["sigma_delta", "delta", "sigma"] = "sigma_delta"
    threshold: float = Field(default=0.0, ge=0.0)
    activation: Activation = "relu"
    bias: str | None = None
    spike_exp: int = Field(default=6, ge=0, le=16)
    state_exp: int = Field(default=6, ge=0, le=16)

    param_fields = ("bias",)
    state = (StateSpec("sigma", "decoded input sum"), StateSpec("act", "last activation"),
             StateSpec("residue", "change not yet sent"))
    stateful = True

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        x = ins[0]
        need(x.layout.has_time, f"a sigma-delta neuron needs a layout with time (TNX, NXT or TN), got "
             f"{x.layout.value}")
        if self.bias is not None:
            feats = tuple(x.features)
            shape = params[self.bias].shape
            need(shape in ((feats[0],), feats) if feats else False,
                 f"bias {self.bias} has shape {list(shape)}; it needs one value per channel ({feats[:1]}) or per "
                 f"neuron ({list(feats)})")
        return x.with_dtype(DType.F32)
