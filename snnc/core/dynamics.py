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

where V_reset is 0 for soft reset and no reset (the leak pulls towards 0),
or `v_leak` when the leak pulls towards another value than the reset (NIR).
The floating-point evaluation order matches SpikingJelly's torch backend, so
spikes agree bit for bit on the same inputs.

A current-based (CUBA) neuron first filters its input through a synaptic
current with a decay, and charges with that current instead of X:

    synapse: I[t] = (1 - current_decay) I[t-1] + X[t]      (current_decay = 1: I = X, no memory)

This is Loihi's CUBA neuron (in float; `snnc.runtime.loihi` computes the same
equations on Loihi's fixed-point grid) and the forward-Euler form of NIR's
CubaLIF/CubaLI (current_decay = dt / tau_syn, see snnc.ir.formats.nir).

A leaky integrator (NIR's LI and I) charges like a LIF or IF neuron but never
fires or resets: its output is the potential V[t] (`output=POTENTIAL`).

Every float field of NeuronParams may also be a tensor that broadcasts
against one step [N, *features] (per-neuron parameters, as NIR files carry).

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


class NeuronOutput(_Coded):
    """What a neuron emits at each step."""

    SPIKES = "spikes"  # S[t], 0/1
    POTENTIAL = "potential"  # V[t]: a leaky integrator (never fires, never resets)


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
    current_decay: float = 1.0  # the synaptic current's decay (CUBA); 1 = no synaptic current
    v_leak: float | None = None  # LIF: the potential the leak pulls towards; None = leak_target's rule
    output: NeuronOutput = NeuronOutput.SPIKES

    @property
    def has_current(self) -> bool:
        """True when the neuron keeps a synaptic current (a state besides V)."""
        return isinstance(self.current_decay, Tensor) or self.current_decay != 1.0

    @property
    def per_neuron(self) -> bool:
        """True when a parameter is a tensor (one value per neuron)."""
        return any(isinstance(getattr(self, f), Tensor)
                   for f in ("v_threshold", "v_reset", "tau", "current_decay", "v_leak"))

    @property
    def charge(self) -> Charge:
        """The charge equation: IF, or LIF with or without decay_input."""
        if self.kind is NeuronKind.IF:
            return Charge.IF
        return Charge.LIF if self.decay_input else Charge.LIF_NO_DECAY_INPUT

    @property
    def leak_target(self) -> float:
        """The potential the LIF leak pulls towards: v_leak when given, else V_reset for hard reset, else 0."""
        if self.v_leak is not None:
            return self.v_leak
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
    zero = _is_zero(vr)
    if decay is not None:
        if form is Charge.LIF:
            return v + (x - v) * decay if zero else v + (x - (v - vr)) * decay
        return v - v * decay + x if zero else v - (v - vr) * decay + x
    t = p.tau if tau is None else tau
    if form is Charge.LIF:
        if zero:
            return v + (x - v) / t
        return v + (x - (v - vr)) / t
    if zero:
        return v - v / t + x
    return v - (v - vr) / t + x


def _is_zero(x: Tensor | float) -> bool:
    """A scalar 0 (a tensor of per-neuron values takes the general formula, which gives the same bits)."""
    return not isinstance(x, Tensor) and x == 0.0


def synapse(p: NeuronParams, i: Tensor, x: Tensor) -> Tensor:
    """I[t] = (1 - current_decay) I[t-1] + X[t]; X itself when the neuron has no synaptic current."""
    if not p.has_current:
        return x
    return i * (1.0 - p.current_decay) + x


def fire(p: NeuronParams, h: Tensor) -> Tensor:
    """S[t] = Theta(H[t] - V_th) as 0/1 in h's dtype."""
    if p.output is NeuronOutput.POTENTIAL:
        return torch.zeros_like(h)
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
    """One time step of a neuron without synaptic current: returns (output, new membrane potential).

    The output is the spike, or the potential for output=POTENTIAL.
    """
    if p.has_current:
        raise ValueError("step() has no synaptic current state; use step_current(p, v, i, x)")
    out, v, _ = step_current(p, v, None, x)
    return out, v


def step_current(p: NeuronParams, v: Tensor, i: Tensor | None, x: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
    """One time step with the synaptic current: returns (output, V[t], I[t]) (I is None without current)."""
    if p.has_current:
        i = synapse(p, i, x)
        x = i
    h = charge(p, v, x)
    if p.output is NeuronOutput.POTENTIAL:
        return h, h, i
    s = fire(p, h)
    return s, reset(p, h, s), i


def multi_step(
    p: NeuronParams, x_seq: Tensor, v: Tensor | float | None = None, *, return_v_seq: bool = False
) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, Tensor]:
    """Run T steps over x_seq [T, ...]; returns (spike_seq, v_final[, v_seq]).

    `v` is the membrane potential before the first step: a tensor broadcastable
    to x_seq[0], a float, or None for p.initial_v.
    """
    if x_seq.dim() < 1 or x_seq.shape[0] == 0:
        raise ValueError(f"multi_step needs an input [T, ...] with T >= 1, got shape {tuple(x_seq.shape)}")
    spikes, v, _, v_seq = run_steps(p, x_seq, v, return_v_seq=return_v_seq)
    if v_seq is not None:
        return spikes, v, v_seq
    return spikes, v


def _state(value: Tensor | float | None, like: Tensor, default: float) -> Tensor:
    if value is None:
        value = default
    if not isinstance(value, Tensor):
        return torch.full_like(like, float(value))
    return value.to(like.dtype).expand_as(like).clone()


def run_steps(p: NeuronParams, x_seq: Tensor, v: Tensor | float | None = None, i: Tensor | float | None = None,
              *, return_v_seq: bool = False) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """Run T steps over x_seq [T, ...]; returns (output_seq, v_final, i_final, v_seq).

    `v` (None: p.initial_v) and `i` (None: 0) are the states before the first step;
    i_final is None for a neuron without synaptic current, v_seq None unless asked for.
    """
    if x_seq.dim() < 1 or x_seq.shape[0] == 0:
        raise ValueError(f"multi_step needs an input [T, ...] with T >= 1, got shape {tuple(x_seq.shape)}")
    v = _state(v, x_seq[0], p.initial_v)
    i = _state(i, x_seq[0], 0.0) if p.has_current else None
    out = torch.empty_like(x_seq)
    v_seq = torch.empty_like(x_seq) if return_v_seq else None
    for t in range(x_seq.shape[0]):
        o, v, i = step_current(p, v, i, x_seq[t])
        out[t] = o
        if v_seq is not None:
            v_seq[t] = v
    return out, v, i, v_seq


def signed_if_step(v: Tensor, count: Tensor, x: Tensor, v_threshold: float = 1.0) -> tuple[Tensor, Tensor, Tensor]:
    """One step of the signed IF neuron (the conversion's `signed_if`): returns (spike, V[t], count[t]).

        H[t] = V[t-1] + X[t]
        S[t] = +1 if H[t] >= V_th;  -1 if H[t] < 0 and count[t-1] > 0;  else 0
        V[t] = H[t] - V_th S[t]          count[t] = count[t-1] + S[t]

    A -1 spike takes back one of the neuron's earlier spikes when its input has since
    fallen below what they stand for, so the spikes never sum below 0, and while the
    sum is positive V stays in [0, V_th): after any t steps the spikes sum to
    max(0, floor((V[-1] + X[0] + ... + X[t]) / V_th)) whenever one spike per step
    keeps up, whatever order the input came in. A plain IF neuron never takes a spike
    back, so input that arrives early and is cancelled later leaves its spikes in the
    rate for good.
    """
    h = v + x
    s = (h >= v_threshold).to(h.dtype) - ((h < 0) & (count > 0)).to(h.dtype)
    return s, h - s * v_threshold, count + s
