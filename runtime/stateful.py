"""Stateful ops that are not spiking neurons, run a window of time steps at a time (the CPU reference runtime).

Registered in kernels.STATEFUL_KERNELS (beside RunningMaxPool2d). Here: SigmaDelta, in
float, with the equations of snnc.core.sigma_delta, RateDecode (the running mean
that the hybrid conversion's analog ops read) and SignedIF (the conversion's signed
neuron, snnc.core.dynamics.signed_if_step). Their state (sigma, act, residue; sum,
steps) is stored stacked under the op's name, so that run, step() and chunked runs agree.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

from snnc.core.dynamics import signed_if_step
from snnc.core.sigma_delta import SigmaDeltaState, sigma_delta_step
from snnc.ir import ops
from snnc.runtime import native
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


@stateful_kernel(ops.RateDecode)
def rate_decode(op: ops.RateDecode, x: Tensor, state: Tensor | None,
                params: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
    """x: [c, N, *] -> (y [c, N, *], [sum, steps] stacked): y[t] = (x[0] + ... + x[t]) / (t + 1).

    One step at a time, in float32 (float64 for float64 runs), so any split of T into
    windows (run, chunks, step()) gives the same bits. The step count is a tensor
    like the sum so that the state is one stacked tensor of per-step shape.
    """
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    if state is None:
        total, steps = x.new_zeros(x.shape[1:], dtype=dtype), x.new_zeros(x.shape[1:], dtype=dtype)
    else:
        total, steps = state.to(dtype).unbind(0)
    out = []
    for k in range(x.shape[0]):
        total = total + x[k].to(dtype)
        steps = steps + 1
        out.append((total / steps).to(x.dtype))
    return torch.stack(out), torch.stack((total, steps))


@stateful_kernel(ops.SignedIF)
def signed_if(op: ops.SignedIF, x: Tensor, state: Tensor | None,
              params: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
    """x: [c, N, *] -> (spikes in {-1, 0, 1} [c, N, *], [V, count] stacked), one step at a time (the native
    kernel for float32 on the CPU, bit-identical)."""
    if state is None:
        state = torch.stack((torch.full_like(x[0], op.v_init), torch.zeros_like(x[0])))
    state = state.to(x.dtype)
    if x.dtype == torch.float32 and x.device.type == "cpu" and native.available():
        static = x.shape[0] > 1 and x.stride(0) == 0
        xc = x[0].contiguous() if static else x.contiguous()
        state = state.contiguous().clone()
        out = torch.empty(x.shape, dtype=x.dtype)
        E = x[0].numel()
        native.signed_if_f32(xc, 0 if static else E, out, state[0], state[1], x.shape[0], E, op.v_threshold)
        return out, state
    v, count = state.unbind(0)
    out = torch.empty_like(x)
    for t in range(x.shape[0]):
        out[t], v, count = signed_if_step(v, count, x[t], op.v_threshold)
    return out, torch.stack((v, count))
