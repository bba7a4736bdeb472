"""The fusion group "linear + neuron" as one kernel, with the weight tile kept on chip across T.

    S[t] = neuron(X[t] W^T + b)        X [T, R, K], W [M, K], b [M]  ->  S [T, R, M]

A program owns a BLOCK_R x BLOCK_M tile of outputs. When K fits in one
BLOCK_K tile, it loads its [K, BLOCK_M] slice of W^T (and b) once, before
the loop over T, and keeps it in registers; each step is then one `tl.dot` of
the step's [BLOCK_R, K] rows with it, the bias, and the neuron update with V
in fp32 registers. For larger K the weight is re-read per step in BLOCK_K
chunks (from L2).

The matmul accumulates in fp32 in a different order than cuBLAS or MKL, so
results match the unfused reference within fp32 rounding, not bit for bit:
a spike can differ only where the input current lies within rounding of the
threshold. Whether this is faster than cuBLAS + the neuron kernel depends on
the shapes; `benchmarks/triton_gpu.py` measures both. The runtime uses it
only when asked (`fused_linear=on|auto`).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from snnc.core.dynamics import NeuronParams

from . import launch
from .dynamics import charge, fire, reset
from .errors import KernelInputError
from .spec import NeuronSpec

RESIDENT_MAX_K = 128  # the largest K whose weight slice stays in registers for the whole T loop


@triton.jit(do_not_specialize=["T"])  # one compiled kernel for every T
def linear_neuron_kernel(
    x_ptr, w_ptr, b_ptr, spike_ptr, v0_ptr, v_final_ptr,
    T, R, K, M,
    v0_value, v_threshold, v_reset, v_leak, tau_value,
    HAS_BIAS: tl.constexpr, V0_FROM_PTR: tl.constexpr, IEEE: tl.constexpr,
    CHARGE: tl.constexpr, RESET: tl.constexpr, COMPARE: tl.constexpr,
    LEAK_FROM_PTR: tl.constexpr, LEAK_MULTIPLY: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, K_RESIDENT: tl.constexpr,
):  # fmt: skip
    rr = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    rm = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    rk = tl.arange(0, BLOCK_K)
    out_mask = (rr[:, None] < R) & (rm[None, :] < M)
    out_offs = rr[:, None] * M + rm[None, :]
    zero = tl.zeros([BLOCK_R, BLOCK_M], tl.float32)
    if V0_FROM_PTR:
        v = tl.load(v0_ptr + out_offs, mask=out_mask, other=0.0).to(tl.float32)
    else:
        v = zero + v0_value
    k = zero + tau_value
    if HAS_BIAS:
        bias = tl.load(b_ptr + rm, mask=rm < M, other=0.0).to(tl.float32)
    if K_RESIDENT:  # W^T slice [BLOCK_K, BLOCK_M], loaded once for all T steps
        w = tl.load(w_ptr + rm[None, :] * K + rk[:, None], mask=(rk[:, None] < K) & (rm[None, :] < M), other=0.0)
    x_row = x_ptr
    for t in range(T):
        if K_RESIDENT:
            xt = tl.load(x_row + rr[:, None] * K + rk[None, :], mask=(rr[:, None] < R) & (rk[None, :] < K), other=0.0)
            if IEEE:
                acc = tl.dot(xt, w, input_precision="ieee")
            else:
                acc = tl.dot(xt, w)
        else:
            acc = zero
            for k0 in range(0, K, BLOCK_K):
                kk = k0 + rk
                xt = tl.load(x_row + rr[:, None] * K + kk[None, :], mask=(rr[:, None] < R) & (kk[None, :] < K),
                             other=0.0)  # fmt: skip
                wt = tl.load(w_ptr + rm[None, :] * K + kk[:, None], mask=(kk[:, None] < K) & (rm[None, :] < M),
                             other=0.0)  # fmt: skip
                if IEEE:
                    acc = tl.dot(xt, wt, acc, input_precision="ieee")
                else:
                    acc = tl.dot(xt, wt, acc)
        x_row += R * K
        if HAS_BIAS:
            acc = acc + bias[None, :]
        h = charge(v, acc, k, v_leak, CHARGE, LEAK_MULTIPLY)
        s = fire(h, v_threshold, COMPARE)
        v = reset(h, s, v_threshold, v_reset, RESET)
        tl.store(spike_ptr + out_offs, s.to(spike_ptr.dtype.element_ty), mask=out_mask)
        spike_ptr += R * M
    tl.store(v_final_ptr + out_offs, v, mask=out_mask)


def resident(k: int) -> bool:
    """True when a weight slice of K inputs stays on chip for the whole T loop."""
    return k <= RESIDENT_MAX_K


def linear_multi_step(
    params: NeuronParams,
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    *,
    v0: Tensor | float | None = None,
    spike_dtype: torch.dtype | None = None,
    block_k: int | None = None,
) -> tuple[Tensor, Tensor]:
    """(spikes [T, *rows, M], v_final fp32 [*rows, M]) of neuron(x W^T + b) over x [T, *rows, K] (inference).

    `block_k` forces the K tile (a power of two >= 16; tests use it to reach the chunked path).
    """
    if x.dim() < 2 or x.shape[0] == 0:
        raise KernelInputError(f"x must be [T, ..., K] with T >= 1, got shape {tuple(x.shape)}")
    launch.check_dtype("x", x.dtype, launch.INPUT_DTYPES)
    if weight.dim() != 2 or weight.shape[1] != x.shape[-1]:
        raise KernelInputError(f"weight {tuple(weight.shape)} does not match x {tuple(x.shape)}: expected [M, {x.shape[-1]}]")
    M, K = weight.shape
    if bias is not None and bias.shape != (M,):
        raise KernelInputError(f"bias has shape {tuple(bias.shape)}, expected ({M},)")
    T, rows = x.shape[0], tuple(x.shape[1:-1])
    R = 1
    for d in rows:
        R *= d
    spike_dtype = x.dtype if spike_dtype is None else spike_dtype
    launch.check_dtype("spike_dtype", spike_dtype, launch.SPIKE_DTYPES)
    w = weight.to(x.dtype).contiguous()
    b = bias.contiguous() if bias is not None else None
    v0_t, v0_value = None, float(params.initial_v)
    if isinstance(v0, Tensor):
        v0_t = v0.to(torch.float32).expand(*rows, M).reshape(-1).contiguous()
    elif v0 is not None:
        v0_value = float(v0)
    launch.check_device(x=x, weight=w, bias=b, v0=v0_t)
    spikes = torch.empty((T, *rows, M), dtype=spike_dtype, device=x.device)
    v_final = torch.empty((*rows, M), dtype=torch.float32, device=x.device)
    if R == 0 or M == 0:
        return spikes, v_final
    bk = block_k or max(16, triton.next_power_of_2(min(K, RESIDENT_MAX_K)))
    if bk < 16 or bk & (bk - 1):
        raise KernelInputError(f"block_k must be a power of two >= 16, got {bk}")
    if launch.interpreting() or x.device.type != "cuda":
        br, bm, warps = max(16, min(64, triton.next_power_of_2(R))), max(16, min(64, triton.next_power_of_2(M))), 4
    else:
        br, bm, warps = 64, 64, 4
    spec = NeuronSpec(params)
    grid = (triton.cdiv(R, br), triton.cdiv(M, bm))
    linear_neuron_kernel[grid](
        x.contiguous(), w, b, spikes, v0_t, v_final,
        T, R, K, M, v0_value, **spec.scalars(),
        HAS_BIAS=b is not None, V0_FROM_PTR=v0_t is not None, IEEE=x.dtype == torch.float32,
        **spec.constexprs(),
        BLOCK_R=br, BLOCK_M=bm, BLOCK_K=bk, K_RESIDENT=K <= bk,
        num_warps=warps, enable_fp_fusion=False,
    )  # fmt: skip
    return spikes, v_final
