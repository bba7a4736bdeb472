"""Stateful ops that are not spiking neurons, run a window of time steps at a time (the CPU reference runtime).

Registered in kernels.STATEFUL_KERNELS (beside RunningMaxPool2d). Here: SigmaDelta, in float, with the equations of snnc.core.sigma_delta. Its
state (sigma, act, residue) is stored stacked under the op's name, so that run,
step() and chunked runs agree.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

from snnc.core.sigma_delta import SigmaDeltaState, sigma_delta_step
from snnc.ir import ops
from snnc.runtime.kernels import stateful_kernel


def _bias(op: ops.SigmaDelta, params: Mapping[str, Tensor], step_shape: torch.Size) -> Tensor | float:
    if op.bias is None:
        return 0.0
    b = params[op.bias]
    feats = tuple(step_shape[1:])
    return b if tuple(b.shape) == feats else b.reshape(-1, *([1] * (len(feats) - 1)))


@stateful_kernel(ops.SigmaDelta)
def sigma_delta(op: ops.SigmaDelta, x: Tensor, state: Tensor | None,
                params: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
    """x: [c, N, *] -> (y [c, N, *], the new stacked state)."""
    sd = SigmaDeltaState.zeros(x[0]) if state is None else SigmaDeltaState.unstacked(state)
    bias = _bias(op, params, x.shape[1:])
    ys = []
    for t in range(x.shape[0]):
        y, sd = sigma_delta_step(sd, x[t], mode=op.mode, threshold=op.threshold, bias=bias, activation=op.activation,
                                 spike_exp=op.spike_exp, state_exp=op.state_exp, fixed=False)
        ys.append(y)
    return torch.stack(ys), sd.stacked()
