"""Spiking neurons. Every semantic choice is an explicit field (see snnc.core.dynamics).

    IF:  H[t] = V[t-1] + X[t]
    LIF: H[t] = V[t-1] + (X[t] - (V[t-1] - V_leak)) / tau      decay_input=True
         H[t] = V[t-1] - (V[t-1] - V_leak) / tau + X[t]        decay_input=False
    S[t] = H[t] >= V_th  (fire=ge)   or   H[t] > V_th  (fire=gt)
    V[t] = V_reset where S else H (hard) | H - V_th S (soft) | H (none)

V[-1] is v_init, or, with `state_from=%a`, the V of neuron %a after its last step:
one stateful module called twice on whole sequences (SpikingJelly's multi-step
mode) shares one membrane potential, so its second call starts where the first
ended. The verifier checks the link (ir/verify.py); a run holds all T steps in
one window, and streaming is refused (%a's last step is not known yet).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Mapping, Union

from pydantic import BaseModel, ConfigDict, Field, model_serializer

from snnc.core.dynamics import FireCompare, NeuronKind, NeuronParams, ResetMode
from snnc.ir.ops.base import OpBase, ParamInfo, StateSpec, need, register
from snnc.ir.types import DType, TensorType


# The reset field of an op: a ResetMode of snnc.core.dynamics (`mode`, whose value is the `kind` written
# to .snnir files) with its parameter. `reset_of` and `NeuronOp.to_params` convert to and from NeuronParams.


class HardReset(BaseModel):
    """After a spike, V <- v_reset."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    mode: ClassVar[ResetMode] = ResetMode.HARD
    kind: Literal["hard"] = "hard"
    v_reset: float = 0.0

    def __str__(self) -> str:
        return f"hard({self.v_reset!r})"


class SoftReset(BaseModel):
    """After a spike, V <- V - v_threshold (reset by subtraction)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    mode: ClassVar[ResetMode] = ResetMode.SOFT
    kind: Literal["soft"] = "soft"

    @property
    def v_reset(self) -> float:
        """NeuronParams.v_reset: 0 (the LIF leak's target without a hard reset)."""
        return 0.0

    def __str__(self) -> str:
        return "soft"


class NoReset(BaseModel):
    """V is not reset after a spike."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    mode: ClassVar[ResetMode] = ResetMode.NONE
    kind: Literal["none"] = "none"

    @property
    def v_reset(self) -> float:
        """NeuronParams.v_reset: 0 (the LIF leak's target without a hard reset)."""
        return 0.0

    def __str__(self) -> str:
        return "none"


Reset = Annotated[Union[HardReset, SoftReset, NoReset], Field(discriminator="kind")]
RESETS: dict[ResetMode, type[HardReset | SoftReset | NoReset]] = {c.mode: c for c in (HardReset, SoftReset, NoReset)}


def reset_of(mode: ResetMode, v_reset: float = 0.0) -> HardReset | SoftReset | NoReset:
    """The op's reset field for NeuronParams' (reset, v_reset); v_reset is kept for a hard reset only."""
    return HardReset(v_reset=float(v_reset)) if mode is ResetMode.HARD else RESETS[mode]()


class NeuronOp(OpBase):
    """Common fields of spiking neurons: a time-major input, spikes out, state `v`."""

    v_threshold: float = 1.0
    reset: Reset = HardReset()
    fire: FireCompare = FireCompare.GE
    v_init: float | None = None  # V before the first step; None = the reset value (0 for soft/none)
    state_from: str | None = None  # V before the first step is neuron %state_from's V after its last step

    state = (StateSpec("v", "membrane potential"),)
    stateful = True

    @model_serializer(mode="wrap")
    def _without_unset_link(self, handler):
        """Leave state_from out when unset: .snnir nodes of unlinked neurons keep their earlier form."""
        data = handler(self)
        if self.state_from is None and isinstance(data, dict):
            data.pop("state_from", None)
        return data

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        x = ins[0]
        need(x.layout.has_time, f"a neuron needs a layout with time (TNX, NXT or TN), got {x.layout.value}; "
             "run the layout pass (or convert the ANN) first")
        return x.with_dtype(DType.SPIKE)

    def _params(self, kind: NeuronKind, **extra) -> NeuronParams:
        return NeuronParams(kind=kind, v_threshold=self.v_threshold, reset=self.reset.mode,
                            v_reset=self.reset.v_reset, compare=self.fire, **extra)

    def initial_v(self) -> float:
        return self.v_init if self.v_init is not None else self.to_params().initial_v

    def to_params(self) -> NeuronParams:
        raise NotImplementedError


@register
class IF(NeuronOp):
    """Integrate-and-fire neuron."""

    kind: Literal["if"] = "if"

    def to_params(self) -> NeuronParams:
        return self._params(NeuronKind.IF)


@register
class LIF(NeuronOp):
    """Leaky integrate-and-fire neuron with time constant tau (in steps)."""

    kind: Literal["lif"] = "lif"
    tau: float = Field(default=2.0, ge=1.0)
    decay_input: bool = True

    def to_params(self) -> NeuronParams:
        return self._params(NeuronKind.LIF, tau=self.tau, decay_input=self.decay_input)
