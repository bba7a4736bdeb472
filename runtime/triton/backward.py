"""The multi-step backward kernel: BPTT over T in reverse, one program per BLOCK neurons.

With S[t] = Theta(H[t] - V_th) in the forward pass and sg = g'(H[t] - V_th)
in the backward pass, the chain rule per step (gv: dL/dV[t], carried back):

    gv    += dL/dV_seq[t]
    dV/dH  = 1 - S + (V_reset - H) sg      hard reset   (1 - S        with detach_reset)
           = 1 - V_th sg                    soft reset   (1            with detach_reset)
           = 1                              no reset
    gh     = gv dV/dH + dL/dS[t] sg

and through the charge, with the leak factor k = 1/tau (or decay) and
D = X - (V[t-1] - V_leak) with decay_input, D = -(V[t-1] - V_leak) without:

    dL/dX[t] = gh k (LIF with decay_input)   gh (otherwise)
    gv       = gh - gh k (LIF)                gh (IF)
    dL/dtau   += -(gh / tau) (D / tau)       dL/ddecay += gh D

The kernel reads H[t] (fp32, saved by the forward kernel) and recomputes
S[t]; V[t-1], needed only for the leak gradient, is recomputed from H[t-1]
with reset(). gv after step 0 is dL/dV0. The leak gradient is summed per
program into a buffer that the launcher adds up (deterministic order).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from . import launch
from .dynamics import CHARGE_IF, CHARGE_LIF, RESET_HARD, RESET_SOFT, fire, reset
from .spec import NeuronSpec
from .surrogate import Surrogate, surrogate_grad


@triton.jit(do_not_specialize=["T"])  # one compiled kernel for every T
def neuron_backward_kernel(
    grad_spike_ptr, grad_v_seq_ptr, grad_v_final_ptr, h_seq_ptr, x_ptr, v0_ptr, leak_ptr,
    grad_x_ptr, grad_v0_ptr, grad_leak_ptr,
    T, N, LAST_ROW,
    v0_value, v_threshold, v_reset, v_leak, tau_value, sg_a, sg_b,
    CHARGE: tl.constexpr, RESET: tl.constexpr, COMPARE: tl.constexpr,
    LEAK_FROM_PTR: tl.constexpr, LEAK_MULTIPLY: tl.constexpr, V0_FROM_PTR: tl.constexpr,
    SURROGATE: tl.constexpr, DETACH_RESET: tl.constexpr,
    HAS_GRAD_SPIKE: tl.constexpr, HAS_GRAD_V_SEQ: tl.constexpr, HAS_GRAD_V_FINAL: tl.constexpr,
    STORE_GRAD_V0: tl.constexpr, STORE_GRAD_LEAK: tl.constexpr,
    BLOCK: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    zero = tl.zeros([BLOCK], tl.float32)

    if LEAK_FROM_PTR:
        k = tl.load(leak_ptr).to(tl.float32)
    else:
        k = tau_value
    if LEAK_MULTIPLY:
        rate = k  # the leak factor: decay, or 1/tau
    else:
        rate = 1.0 / k
    if HAS_GRAD_V_FINAL:
        gv = tl.load(grad_v_final_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    else:
        gv = zero
    if STORE_GRAD_LEAK:
        grad_leak = zero
        if V0_FROM_PTR:
            v_init = tl.load(v0_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        else:
            v_init = zero + v0_value

    # Every [T, N] buffer is walked from row T-1 down to row 0.
    h_row = h_seq_ptr + LAST_ROW
    grad_x_row = grad_x_ptr + LAST_ROW
    if HAS_GRAD_SPIKE:
        grad_spike_row = grad_spike_ptr + LAST_ROW
        gs = tl.load(grad_spike_row + offs, mask=mask, other=0.0)
    if HAS_GRAD_V_SEQ:
        grad_v_seq_row = grad_v_seq_ptr + LAST_ROW
    if STORE_GRAD_LEAK and CHARGE == CHARGE_LIF:  # LIF with decay_input
        x_row = x_ptr + LAST_ROW
    h = tl.load(h_row + offs, mask=mask, other=0.0)
    for i in range(T):
        # Row t-1 of H and dL/dS is loaded one step ahead, to be in flight during step t.
        has_prev = i + 1 < T
        n_prev = tl.where(has_prev, N, 0)  # an int limit, as `mask & has_prev` trips the interpreter
        h_row -= N
        h_prev = tl.load(h_row + offs, mask=offs < n_prev, other=0.0)
        if HAS_GRAD_SPIKE:
            grad_spike_row -= N
            gs_prev = tl.load(grad_spike_row + offs, mask=offs < n_prev, other=0.0)

        sg = surrogate_grad(h - v_threshold, sg_a, sg_b, SURROGATE)
        if HAS_GRAD_V_SEQ:
            gv += tl.load(grad_v_seq_row + offs, mask=mask, other=0.0).to(tl.float32)
            grad_v_seq_row -= N
        if RESET == RESET_HARD:
            s = fire(h, v_threshold, COMPARE)
            if DETACH_RESET:
                gh = gv * (1.0 - s)
            else:
                gh = gv * (1.0 - s + (v_reset - h) * sg)
        elif RESET == RESET_SOFT and not DETACH_RESET:
            gh = gv * (1.0 - v_threshold * sg)
        else:
            gh = gv
        if HAS_GRAD_SPIKE:
            gh += gs.to(tl.float32) * sg
            gs = gs_prev

        if CHARGE == CHARGE_IF:
            gx = gh
            gv = gh
        else:
            gh_k = gh * rate
            gv = gh - gh_k
            if CHARGE == CHARGE_LIF:
                gx = gh_k
            else:
                gx = gh
            if STORE_GRAD_LEAK:
                s_prev = fire(h_prev, v_threshold, COMPARE)
                v_prev = tl.where(has_prev, reset(h_prev, s_prev, v_threshold, v_reset, RESET), v_init)
                if CHARGE == CHARGE_LIF:
                    d = tl.load(x_row + offs, mask=mask, other=0.0).to(tl.float32) - (v_prev - v_leak)
                    x_row -= N
                else:
                    d = v_leak - v_prev
                if LEAK_MULTIPLY:
                    grad_leak += gh * d
                else:
                    grad_leak -= gh_k * (d * rate)
        tl.store(grad_x_row + offs, gx.to(grad_x_ptr.dtype.element_ty), mask=mask)
        grad_x_row -= N
        h = h_prev

    if STORE_GRAD_V0:
        tl.store(grad_v0_ptr + offs, gv, mask=mask)
    if STORE_GRAD_LEAK:
        tl.store(grad_leak_ptr + pid, tl.sum(tl.where(mask, grad_leak, 0.0), axis=0))


@dataclass
class BackwardOutputs:
    grad_x: Tensor  # [T, N], dtype of x
    grad_v0: Tensor | None = None  # [N] fp32
    grad_leak: Tensor | None = None  # [1] fp32, w.r.t. the tau or decay tensor


def run_backward(
    spec: NeuronSpec,
    surrogate: Surrogate,
    detach_reset: bool,
    h_seq: Tensor,
    x2d: Tensor,
    v0: Tensor | float,
    leak: Tensor | None,
    grad_spikes: Tensor | None,
    grad_v_final: Tensor | None,
    grad_v_seq: Tensor | None,
    *,
    want_grad_v0: bool,
    want_grad_leak: bool,
) -> BackwardOutputs:
    """Launch the backward kernel; incoming gradients may be None (no gradient flows there).

    x2d is read only for the leak gradient with decay_input; grad_x gets its dtype.
    """
    T, N = h_seq.shape
    dev = h_seq.device
    want_grad_leak = want_grad_leak and leak is not None and spec.is_lif
    out = BackwardOutputs(grad_x=torch.empty((T, N), dtype=x2d.dtype, device=dev))
    if want_grad_v0:
        out.grad_v0 = torch.empty(N, dtype=torch.float32, device=dev)
    cfg = launch.choose_launch(N, dev)
    grid = launch.grid(N, cfg)
    partial = torch.zeros(grid[0], dtype=torch.float32, device=dev) if want_grad_leak else None
    if N > 0:
        v0_tensor = v0 if isinstance(v0, Tensor) else None
        neuron_backward_kernel[grid](
            _contiguous(grad_spikes), _contiguous(grad_v_seq), _contiguous(grad_v_final), h_seq,
            x2d if want_grad_leak and spec.params.decay_input else None,
            v0_tensor if want_grad_leak else None, leak,
            out.grad_x, out.grad_v0, partial,
            T, N, (T - 1) * N,
            0.0 if v0_tensor is not None else float(v0),
            **spec.scalars(),
            **surrogate.kernel_args(),
            **spec.constexprs(),
            V0_FROM_PTR=v0_tensor is not None,
            SURROGATE=surrogate.code,
            DETACH_RESET=detach_reset,
            HAS_GRAD_SPIKE=grad_spikes is not None,
            HAS_GRAD_V_SEQ=grad_v_seq is not None,
            HAS_GRAD_V_FINAL=grad_v_final is not None,
            STORE_GRAD_V0=want_grad_v0,
            STORE_GRAD_LEAK=want_grad_leak,
            BLOCK=cfg.block,
            num_warps=cfg.num_warps,
            enable_fp_fusion=True,  # gradients need no bit-exactness; FMA is as accurate or more
        )  # fmt: skip
    if want_grad_leak:
        out.grad_leak = partial.sum().reshape(1)
    return out


def _contiguous(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.contiguous()
