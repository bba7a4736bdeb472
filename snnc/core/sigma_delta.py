"""The one definition of sigma-delta (SDNN) neuron dynamics in snnc, float and Loihi fixed point.

A sigma-delta neuron (lava-nc `proc/sdn`, lava-dl NetX neuron type `SDNN`)
sends graded messages that carry the *change* of its activation. One step:

    sigma[t]   = sigma[t-1] + a[t]                       sigma decoder (a: the synaptic input)
    act[t]     = relu(sigma[t] + bias)                   activation (identity without relu)
    delta      = act[t] - act[t-1] + residue[t-1]        delta encoder
    s_scaled   = delta where |delta| >= threshold else 0
    residue[t] = delta - s_scaled
    s[t]       = s_scaled / 2^state_exp                  the message sent

Three modes (what netx builds from a NetX `SDNN` neuron):

    sigma_delta  every SDNN layer but the first and the last one
    delta        the input layer: act[t] = a[t] 2^(spike_exp + state_exp) (no sigma, no bias, no activation)
    sigma        a layer whose neuron has `sigma_output`: s[t] = sigma[t] (the decoded value)

State, threshold and bias are in units of 2^-(spike_exp + state_exp) of the
activation, messages in units of 2^-spike_exp, as Lava's fixed-point models
keep them (netx: spike_exp = state_exp = 6; threshold = vThMant << 12,
bias = bias << 12).

`fixed=True` is Lava's fixed-point model (`PySigmaDeltaModelFixed`,
`PyDeltaModelFixed`, `PySigmaModelFixed`): integers, and the message is the
arithmetic shift right (rounds toward minus infinity). `fixed=False` is the
float form: the same equations with an exact division. With the same integer
inputs the two agree exactly whenever every sent s_scaled is a multiple of
2^state_exp; otherwise the fixed-point message drops the low bits (never more
than 1 unit per message).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

Mode = Literal["sigma_delta", "delta", "sigma"]
Activation = Literal["relu", "identity"]
MODES: tuple[str, ...] = ("sigma_delta", "delta", "sigma")
ACTIVATIONS: tuple[str, ...] = ("relu", "identity")


@dataclass(frozen=True)
class SigmaDeltaState:
    """sigma, the last activation and the residue, each shaped like one step's input."""

    sigma: Tensor
    act: Tensor
    residue: Tensor

    @classmethod
    def zeros(cls, like: Tensor) -> "SigmaDeltaState":
        return cls(torch.zeros_like(like), torch.zeros_like(like), torch.zeros_like(like))

    def stacked(self) -> Tensor:
        return torch.stack((self.sigma, self.act, self.residue))

    @classmethod
    def unstacked(cls, t: Tensor) -> "SigmaDeltaState":
        return cls(t[0], t[1], t[2])


def sigma_delta_step(state: SigmaDeltaState, a: Tensor, *, mode: Mode, threshold: float | int,
                     bias: Tensor | float | int = 0, activation: Activation = "relu", spike_exp: int = 6,
                     state_exp: int = 6, fixed: bool) -> tuple[Tensor, SigmaDeltaState]:
    """One step; returns (the message s[t], the new state). Integer tensors with fixed=True."""
    if mode == "sigma":
        sigma = state.sigma + a
        return sigma, SigmaDeltaState(sigma, state.act, state.residue)
    if mode == "delta":
        sigma = state.sigma
        act = a * (1 << (spike_exp + state_exp))
    else:
        sigma = state.sigma + a
        act = sigma + bias
        if activation == "relu":
            act = act.clamp_min(0)
    delta = act - state.act + state.residue
    s_scaled = torch.where(delta.abs() >= threshold, delta, torch.zeros_like(delta))
    residue = delta - s_scaled
    s = (s_scaled >> state_exp) if fixed else s_scaled / float(1 << state_exp)
    return s, SigmaDeltaState(sigma, act, residue)
