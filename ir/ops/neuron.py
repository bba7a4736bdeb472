"""Spiking neurons. Every semantic choice is an explicit field (see snnc.core.dynamics).

    IF:  H[t] = V[t-1] + X[t]
    LIF: H[t] = V[t-1] + (X[t] - (V[t-1] - V_leak)) / tau      decay_input=True
         H[t] = V[t-1] - (V[t-1] - V_leak) / tau + X[t]        decay_input=False
    S[t] = H[t] >= V_th  (fire=ge)   or   H[t] > V_th  (fire=gt)
    V[t] = V_reset where S else H (hard) | H - V_th S (soft) | H (none)

With current_decay < 1 the neuron is current-based (CUBA): X is first filtered
by a synaptic current I[t] = (1 - current_decay) I[t-1] + X[t], and the charge
uses I[t] instead of X[t]. `LI` and `Integrator` (NIR's LI and I) charge like
LIF and IF but never fire or reset: their output is the potential V[t].

Per-neuron parameters: `v_threshold_param`, `v_reset_param`, `current_decay_param`
(and `tau_param` for LIF/LI) name a parameter of the graph that broadcasts against
one step's features; it replaces the scalar field for every neuron.

V[-1] is v_init, or, with `state_from=%a`, the V of neuron %a after its last step:
one stateful module called twice on whole sequences (SpikingJelly's multi-step
mode) shares one membrane potential, so its second call starts where the first
ended. The verifier checks the link (ir/verify.py); a run holds all T steps in
one window, and streaming is refused (%a's last step is not known yet).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Mapping, Union

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

from snnc.core.dynamics import FireCompare, NeuronKind, NeuronOutput, NeuronParams, ResetMode
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
    current_decay: float = Field(default=1.0, ge=0.0, le=1.0)  # synaptic current (CUBA); 1 = none
    v_leak: float | None = None  # LIF/LI: where the leak pulls; None = the reset value (hard) or 0
    # per-neuron values (a parameter broadcasting against one step's features) replacing a scalar field
    v_threshold_param: str | None = None
    v_reset_param: str | None = None
    current_decay_param: str | None = None
    v_leak_param: str | None = None

    state = (StateSpec("v", "membrane potential"),)
    stateful = True
    param_fields = ("v_threshold_param", "v_reset_param", "current_decay_param", "v_leak_param")
    output: ClassVar[NeuronOutput] = NeuronOutput.SPIKES

    @model_validator(mode="after")
    def _per_neuron_reset(self) -> "NeuronOp":
        if self.v_reset_param is not None and not isinstance(self.reset, HardReset):
            raise ValueError(f"v_reset_param needs a hard reset, got reset={self.reset}")
        if (self.v_leak is not None or self.v_leak_param is not None) and self.to_params().kind is NeuronKind.IF:
            raise ValueError(f"{self.kind} does not leak, so it has no v_leak")
        return self

    # fields added after .snnir files existed: left out of the file and the printout at their default value,
    # so that every neuron written before them reads and writes unchanged
    _OPTIONAL: ClassVar[tuple[str, ...]] = ("state_from", "current_decay", "v_leak", "v_threshold_param", "v_reset_param",
                                            "current_decay_param", "v_leak_param", "tau_param")

    def _defaulted(self) -> set[str]:
        fields = type(self).model_fields
        return {f for f in self._OPTIONAL if f in fields and getattr(self, f) == fields[f].default}

    @model_serializer(mode="wrap")
    def _serialize(self, handler):
        data = handler(self)
        for f in self._defaulted():
            data.pop(f, None)
        return data

    def attributes(self) -> dict:
        skip = self._defaulted()
        return {k: v for k, v in super().attributes().items() if k not in skip}

    def extensions(self) -> list[str]:
        """What this neuron uses beyond one scalar IF/LIF neuron, in words (targets without it refuse it)."""
        out = []
        if self.has_current:
            out.append(f"a synaptic current (current_decay={self.current_decay})")
        if self.v_leak is not None or self.v_leak_param is not None:
            out.append("a leak towards v_leak, not its reset value")
        if self.output is NeuronOutput.POTENTIAL:
            out.append("no spikes (it outputs its potential)")
        refs = [f.removesuffix("_param") for f in self.param_refs()]
        if refs:
            out.append(f"per-neuron {', '.join(refs)}")
        return out

    @property
    def has_current(self) -> bool:
        """True when the neuron keeps a synaptic current (a second state, `i`)."""
        return self.current_decay != 1.0 or self.current_decay_param is not None

    def state_names(self) -> tuple[str, ...]:
        return ("v", "i") if self.has_current else ("v",)

    def per_neuron(self) -> dict[str, str]:
        """NeuronParams field -> the parameter holding its per-neuron values."""
        return {f.removesuffix("_param"): p for f, p in self.param_refs().items()}

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        x = ins[0]
        need(x.layout.has_time, f"a neuron needs a layout with time (TNX, NXT or TN), got {x.layout.value}; "
             "run the layout pass (or convert the ANN) first")
        feats = tuple(x.features)
        for field, p in self.param_refs().items():
            shape = tuple(params[p].shape)
            need(len(shape) <= len(feats) and all(a in (1, b) for a, b in zip(shape[::-1], feats[::-1])),
                 f"{field} {p} of shape {list(shape)} does not broadcast against the features {list(feats)}")
        if self.output is NeuronOutput.POTENTIAL:
            return x.with_dtype(DType.F32) if x.dtype is DType.SPIKE else x
        return x.with_dtype(DType.SPIKE)

    def _params(self, kind: NeuronKind, **extra) -> NeuronParams:
        return NeuronParams(kind=kind, v_threshold=self.v_threshold, reset=self.reset.mode,
                            v_reset=self.reset.v_reset, compare=self.fire, current_decay=self.current_decay,
                            v_leak=self.v_leak, output=self.output, **extra)

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
    tau_param: str | None = None
    param_fields = (*NeuronOp.param_fields, "tau_param")

    def to_params(self) -> NeuronParams:
        return self._params(NeuronKind.LIF, tau=self.tau, decay_input=self.decay_input)


class _Integrator(NeuronOp):
    """A neuron that never fires or resets: its output is the potential V[t] (NIR's LI and I)."""

    reset: Reset = NoReset()
    output: ClassVar[NeuronOutput] = NeuronOutput.POTENTIAL

    @model_validator(mode="after")
    def _no_reset(self) -> "_Integrator":
        if not isinstance(self.reset, NoReset):
            raise ValueError(f"{self.kind} never fires, so it never resets; got reset={self.reset}")
        if self.v_threshold_param is not None:
            raise ValueError(f"{self.kind} has no threshold")
        return self


@register
class Integrator(_Integrator):
    """Integrator without leak or spikes (NIR I): V[t] = V[t-1] + X[t] (or the synaptic current); outputs V."""

    kind: Literal["integrator"] = "integrator"

    def to_params(self) -> NeuronParams:
        return self._params(NeuronKind.IF)


@register
class LI(_Integrator):
    """Leaky integrator without spikes (NIR LI, CubaLI): charges like LIF with time constant tau; outputs V."""

    kind: Literal["li"] = "li"
    tau: float = Field(default=2.0, ge=1.0)
    decay_input: bool = True
    tau_param: str | None = None
    param_fields = (*NeuronOp.param_fields, "tau_param")

    def to_params(self) -> NeuronParams:
        return self._params(NeuronKind.LIF, tau=self.tau, decay_input=self.decay_input)


@register
class SignedIF(OpBase):
    """Signed integrate-and-fire neuron (the conversion's `signed=True`): spikes of +1 and -1.

        H[t] = V[t-1] + X[t]
        S[t] = +1 if H[t] >= V_th;  -1 if H[t] < 0 and count[t-1] > 0;  else 0
        V[t] = H[t] - V_th S[t]          count[t] = count[t-1] + S[t]

    A -1 spike takes back an earlier spike (snnc.core.dynamics.signed_if_step), so the
    spike count follows the ReLU of the summed input whatever order it arrived in. Its
    output is F32 (-1, 0, 1), not SPIKE: the ops downstream read it as values. Not a
    NeuronOp on purpose: code written for one-sign spikes never takes it for one, and a
    target without a kernel for it refuses it by name. State: V and the count, stacked.
    """

    kind: Literal["signed_if"] = "signed_if"
    v_threshold: float = Field(default=1.0, gt=0.0)
    v_init: float = 0.0  # V before the first step
    state = (StateSpec("v", "membrane potential, stacked with the net spike count", stacked=2),)
    stateful = True

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        x = ins[0]
        need(x.layout.has_time, f"a neuron needs a layout with time (TNX, NXT or TN), got {x.layout.value}; "
             "run the layout pass (or convert the ANN) first")
        return x.with_dtype(DType.F32)


def is_neuron(op: OpBase) -> bool:
    """A spiking neuron: a NeuronOp or a SignedIF (what makes a graph an SNN rather than an ANN)."""
    return isinstance(op, (NeuronOp, SignedIF))
