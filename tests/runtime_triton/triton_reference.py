"""References for the Triton kernel tests: snnc.core.dynamics in a torch autograd loop.

`autograd_multi_step` builds the network the torch backend trains: charge and
reset from `snnc.core.dynamics`, and a spike function that is the Heaviside step
forward and the surrogate derivative backward.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from snnc.core import dynamics
from snnc.core.dynamics import FireCompare, NeuronParams


def surrogate_derivative(name: str, alpha: float, x: Tensor) -> Tensor:
    if name == "sigmoid":
        s = torch.sigmoid(alpha * x)
        return alpha * s * (1.0 - s)
    if name == "atan":
        return alpha / 2 / (1.0 + (math.pi / 2 * alpha * x) ** 2)
    raise ValueError(f"no reference surrogate {name!r}")


class SpikeFunction(torch.autograd.Function):
    """Theta(x) forward (Theta(0) = 1 for ge, 0 for gt); g'(x) backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, name: str, alpha: float, gt: bool) -> Tensor:
        ctx.save_for_backward(x)
        ctx.surrogate = (name, alpha)
        return ((x > 0) if gt else (x >= 0)).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor):
        (x,) = ctx.saved_tensors
        return grad * surrogate_derivative(*ctx.surrogate, x), None, None, None


def autograd_multi_step(
    p: NeuronParams,
    x_seq: Tensor,
    v0: Tensor | float | None = None,
    *,
    tau: Tensor | None = None,
    decay: Tensor | None = None,
    surrogate: tuple[str, float] = ("sigmoid", 4.0),
    detach_reset: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """(spikes, v_final, v_seq) in fp32, differentiable w.r.t. x_seq, v0, tau and decay."""
    x_seq = x_seq.float()
    v = p.initial_v if v0 is None else v0
    v = v.float().expand_as(x_seq[0]) if isinstance(v, Tensor) else torch.full_like(x_seq[0], float(v))
    gt = p.compare is FireCompare.GT
    spikes, v_seq = [], []
    for t in range(x_seq.shape[0]):
        if decay is not None:
            h = dynamics.charge(p, v, x_seq[t], decay=decay.reshape(()))
        else:
            h = dynamics.charge(p, v, x_seq[t], None if tau is None else tau.reshape(()))
        s = SpikeFunction.apply(h - p.v_threshold, surrogate[0], surrogate[1], gt)
        v = dynamics.reset(p, h, s.detach() if detach_reset else s)
        spikes.append(s)
        v_seq.append(v)
    return torch.stack(spikes), v, torch.stack(v_seq)
