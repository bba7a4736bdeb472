"""The one definition of spiking-neuron dynamics in snnc.

Every implementation (the CPU reference runtime, the `snnc.nn` modules, the
Triton kernels, the Loihi emulation) is tested against the functions here.
A neuron step is three equations, as in the seed documents:

    charge:  H[t] = f(V[t-1], X[t])
    fire:    S[t] = Theta(H[t] - V_th)      (Theta(0) = 1 for `ge`, 0 for `gt`)
    reset:   V[t] = H[t] (1 - S[t]) + V_reset S[t]     hard reset
             V[t] = H[t] - V_th S[t]                     soft reset (subtract)
             V[t] = H[t]                                  no reset

with the charge function

    IF:                  H = V + X
    LIF, decay_input:    H = V + (X - (V - V_reset)) / tau
    LIF, no decay_input: H = V - (V - V_reset) / tau + X

where V_reset is 0 for soft reset and no reset (the leak pulls towards 0).
The floating-point evaluation order matches SpikingJelly's torch backend, so
spikes agree bit for bit on the same inputs.

Each semantic field has one enumeration here, used by every layer from
`snnc.nn` to the kernels: `Charge` (the decay: IF, LIF with or without
decay_input), `FireCompare` and `ResetMode`. Their `.code` is the integer the
kernels take: the Triton kernels as constexprs, the C kernels as arguments
checked against the header `snnc.runtime.clib` generates from these enums.
`snnc.nn`'s `v_reset: float | None` becomes a ResetMode once, in
`reset_from_v_reset`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch
from torch import Tensor


class _Coded(str, enum.Enum):
    """A semantic field's values: a name for the IR and the printer, an integer `code` for the kernels."""

    @property
    def code(self) -> int:
        """The integer the C and Triton kernels take: the position in the declaration."""
        return list(type(self)).index(self)


class NeuronKind(_Coded):
    IF = "if"
    LIF = "lif"


class ResetMode(_Coded):
    HARD = "hard"  # V <- v_reset after a spike
    SOFT = "soft"  # V <- V - v_threshold after a spike (reset by subtraction)
    NONE = "none"  # V is left as charged


class FireCompare(_Coded):
    GE = "ge"  # fire when H >= threshold (SpikingJelly)
    GT = "gt"  # fire when H > threshold (NIR, snnTorch, Lava/Loihi)


class Charge(_Coded):
    """The charge equation (the decay field): NeuronKind and, for LIF, decay_input together."""

    IF = "if"  # H = V + X
    LIF = "lif"  # H = V + (X - (V - V_reset)) / tau  (decay_input)
    LIF_NO_DECAY_INPUT = "lif_no_decay_input"  # H = V - (V - V_reset) / tau + X


def reset_from_v_reset(v_reset: float | None) -> tuple[ResetMode, float]:
    """SpikingJelly's `v_reset: float | None` as (mode, v_reset): None means soft reset (and 0)."""
    return (ResetMode.SOFT, 0.0) if v_reset is None else (ResetMode.HARD, float(v_reset))


@dataclass(frozen=True)
class NeuronParams:
    """Everything that defines a neuron's discrete-time dynamics."""

    kind: NeuronKind = NeuronKind.IF
    v_threshold: float = 1.0
    reset: ResetMode = ResetMode.HARD
    v_reset: float = 0.0  # used by HARD reset and by the LIF leak; ignored otherwise
    compare: FireCompare = FireCompare.GE
    tau: float = 2.0  # LIF only
    decay_input: bool = True  # LIF only

    @property
    def charge(self) -> Charge:
        """The charge equation: IF, or LIF with or without decay_input."""
        if self.kind is NeuronKind.IF:
            return Charge.IF
        return Charge.LIF if self.decay_input else Charge.LIF_NO_DECAY_INPUT

    @property
    def leak_target(self) -> float:
        """The potential the LIF leak pulls towards (V_reset for hard reset, else 0)."""
        return self.v_reset if self.reset is ResetMode.HARD else 0.0

    @property
    def initial_v(self) -> float:
        """The membrane potential after `reset()` (SpikingJelly: v_reset, or 0 for soft reset)."""
        return self.v_reset if self.reset is ResetMode.HARD else 0.0


def charge(
    p: NeuronParams,
    v: Tensor,
    x: Tensor,
    tau: Tensor | float | None = None,
    *,
    decay: Tensor | float | None = None,
) -> Tensor:
    """H[t] from V[t-1] and X[t].

    `tau` overrides p.tau (the leak divides by it). `decay` = 1/tau overrides both
    and is multiplied instead: SpikingJelly's ParametricLIF computes
    (X - (V - V_reset)) * sigmoid(w), which is not bit-identical to dividing by
    1/sigmoid(w).
    """
    form = p.charge
    if form is Charge.IF:
        return v + x
    vr = p.leak_target
    if decay is not None:
        if form is Charge.LIF:
            return v + (x - v) * decay if vr == 0.0 else v + (x - (v - vr)) * decay
        return v - v * decay + x if vr == 0.0 else v - (v - vr) * decay + x
    t = p.tau if tau is None else tau
    if form is Charge.LIF:
        if vr == 0.0:
            return v + (x - v) / t
        return v + (x - (v - vr)) / t
    if vr == 0.0:
        return v - v / t + x
    return v - (v - vr) / t + x


def fire(p: NeuronParams, h: Tensor) -> Tensor:
    """S[t] = Theta(H[t] - V_th) as 0/1 in h's dtype."""
    if p.compare is FireCompare.GE:
        return (h >= p.v_threshold).to(h.dtype)
    return (h > p.v_threshold).to(h.dtype)


def reset(p: NeuronParams, h: Tensor, s: Tensor) -> Tensor:
    """V[t] from H[t] and S[t]."""
    if p.reset is ResetMode.HARD:
        return h * (1.0 - s) + p.v_reset * s
    if p.reset is ResetMode.SOFT:
        return h - s * p.v_threshold
    return h


def step(p: NeuronParams, v: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """One time step: returns (spike, new membrane potential)."""
    h = charge(p, v, x)
    s = fire(p, h)
    return s, reset(p, h, s)


def multi_step(
    p: NeuronParams, x_seq: Tensor, v: Tensor | float | None = None, *, return_v_seq: bool = False
) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, Tensor]:
    """Run T steps over x_seq [T, ...]; returns (spike_seq, v_final[, v_seq]).

    `v` is the membrane potential before the first step: a tensor broadcastable
    to x_seq[0], a float, or None for p.initial_v.
    """
    if x_seq.dim() < 1 or x_seq.shape[0] == 0:
        raise ValueError(f"multi_step needs an input [T, ...] with T >= 1, got shape {tuple(x_seq.shape)}")
    if v is None:
        v = p.initial_v
    if not isinstance(v, Tensor):
        v = torch.full_like(x_seq[0], float(v))
    else:
        v = v.to(x_seq.dtype).expand_as(x_seq[0]).clone()
    spikes = torch.empty_like(x_seq)
    v_seq = torch.empty_like(x_seq) if return_v_seq else None
    for t in range(x_seq.shape[0]):
        s, v = step(p, v, x_seq[t])
        spikes[t] = s
        if v_seq is not None:
            v_seq[t] = v
    if v_seq is not None:
        return spikes, v, v_seq
    return spikes, v
