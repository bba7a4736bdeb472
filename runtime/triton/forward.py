"""The multi-step forward kernel: one program owns BLOCK neurons and loops over T.

Per element and step it reads X once and writes S once; V stays in fp32
registers. Optional parts, each a constexpr so unused ones cost nothing:

- prologue  X <- a X + b, a and b scalars or per-channel (fusion group "scale + neuron")
- epilogue  V_seq and H_seq (fp32; H_seq is what the backward kernel needs),
            the spike count over T (fusion group "neuron + count"), the final V.

X[t+1..t+PREFETCH] are loaded before step t is computed and stored, so the
loads are in flight during the arithmetic and are not ordered behind the
stores; deeper prefetch keeps enough bytes in flight when N is small.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from . import launch
from .dynamics import charge, fire, reset, start_block
from .spec import NeuronSpec

AFFINE_NONE = 0
AFFINE_SCALAR = 1
AFFINE_CHANNEL = 2
AFFINE_TENSOR_SCALAR = 3  # a 1-element tensor: read once, no host sync


@triton.jit
def _load_affine(ptr, value, channel, mask, MODE: tl.constexpr):
    if MODE == 1:
        a = value
    elif MODE == 2:
        a = tl.load(ptr + channel, mask=mask, other=0.0).to(tl.float32)
    else:
        a = tl.load(ptr).to(tl.float32)
    return a


@triton.jit(do_not_specialize=["T"])  # one compiled kernel for every T
def neuron_forward_kernel(
    x_ptr, spike_ptr, v0_ptr, leak_ptr, scale_ptr, bias_ptr,
    v_final_ptr, v_seq_ptr, h_seq_ptr, count_ptr,
    T, N, CHANNELS, INNER,
    v0_value, v_threshold, v_reset, v_leak, tau_value, scale_value, bias_value,
    CHARGE: tl.constexpr, RESET: tl.constexpr, COMPARE: tl.constexpr,
    LEAK_FROM_PTR: tl.constexpr, LEAK_MULTIPLY: tl.constexpr, V0_FROM_PTR: tl.constexpr,
    SCALE: tl.constexpr, BIAS: tl.constexpr,
    STORE_SPIKES: tl.constexpr, STORE_V_FINAL: tl.constexpr, STORE_V_SEQ: tl.constexpr,
    STORE_H_SEQ: tl.constexpr, STORE_COUNT: tl.constexpr,
    BLOCK: tl.constexpr, PREFETCH: tl.constexpr,
):  # fmt: skip
    offs, mask, zero, v, k = start_block(v0_ptr, v0_value, leak_ptr, tau_value, N, BLOCK, V0_FROM_PTR,
                                         LEAK_FROM_PTR)  # fmt: skip
    if SCALE == 2 or BIAS == 2:
        channel = (offs // INNER) % CHANNELS
    else:
        channel = offs
    if SCALE != 0:
        a = _load_affine(scale_ptr, scale_value, channel, mask, SCALE)
    if BIAS != 0:
        b = _load_affine(bias_ptr, bias_value, channel, mask, BIAS)
    if STORE_COUNT:
        count = zero

    # X rows t+1 .. t+PREFETCH are in flight while step t runs: x1 holds row t, x2.. the next ones.
    # Row pointers advance by N per step (64-bit, so T*N may exceed 2^31). Masks past row T-1 use an
    # int limit (`offs < 0`), as `mask & scalar_cond` trips the interpreter.
    x_row = x_ptr
    x1 = tl.load(x_row + offs, mask=mask, other=0.0)
    if PREFETCH >= 2:
        x_row += N
        x2 = tl.load(x_row + offs, mask=offs < tl.where(1 < T, N, 0), other=0.0)
    if PREFETCH == 4:
        x_row += N
        x3 = tl.load(x_row + offs, mask=offs < tl.where(2 < T, N, 0), other=0.0)
        x_row += N
        x4 = tl.load(x_row + offs, mask=offs < tl.where(3 < T, N, 0), other=0.0)
    for t in range(T):
        x = x1.to(tl.float32)
        x_row += N
        x_next = tl.load(x_row + offs, mask=offs < tl.where(t + PREFETCH < T, N, 0), other=0.0)
        if PREFETCH == 1:
            x1 = x_next
        elif PREFETCH == 2:
            x1 = x2
            x2 = x_next
        else:
            x1 = x2
            x2 = x3
            x3 = x4
            x4 = x_next
        if SCALE != 0:
            x = x * a
        if BIAS != 0:
            x = x + b
        h = charge(v, x, k, v_leak, CHARGE, LEAK_MULTIPLY)
        s = fire(h, v_threshold, COMPARE)
        v = reset(h, s, v_threshold, v_reset, RESET)
        if STORE_SPIKES:
            tl.store(spike_ptr + offs, s.to(spike_ptr.dtype.element_ty), mask=mask)
            spike_ptr += N
        if STORE_V_SEQ:
            tl.store(v_seq_ptr + offs, v, mask=mask)
            v_seq_ptr += N
        if STORE_H_SEQ:
            tl.store(h_seq_ptr + offs, h, mask=mask)
            h_seq_ptr += N
        if STORE_COUNT:
            count += s
    if STORE_V_FINAL:
        tl.store(v_final_ptr + offs, v, mask=mask)
    if STORE_COUNT:
        tl.store(count_ptr + offs, count.to(count_ptr.dtype.element_ty), mask=mask)


@dataclass(frozen=True)
class Affine:
    """The prologue X <- scale X + bias; each part absent, a float, or an fp32 [channels] or [1] tensor.

    For neuron index n of a [T, N] row, the channel is (n // inner) % channels.
    """

    scale: float | Tensor | None = None
    bias: float | Tensor | None = None
    channels: int = 1
    inner: int = 1


@dataclass
class ForwardOutputs:
    spikes: Tensor | None = None  # [T, N] spike_dtype
    v_final: Tensor | None = None  # [N] fp32
    v_seq: Tensor | None = None  # [T, N] fp32, V after reset
    h_seq: Tensor | None = None  # [T, N] fp32, H before firing
    count: Tensor | None = None  # [N] count_dtype, spikes summed over T


def run_forward(
    spec: NeuronSpec,
    x2d: Tensor,
    v0: Tensor | float,
    leak: Tensor | None = None,
    *,
    affine: Affine | None = None,
    spike_dtype: torch.dtype | None = None,
    store_spikes: bool = True,
    store_v_final: bool = True,
    store_v_seq: bool = False,
    store_h_seq: bool = False,
    store_count: bool = False,
    count_dtype: torch.dtype = torch.float32,
) -> ForwardOutputs:
    """Launch the forward kernel on a contiguous x2d [T, N]; v0 is a [N] tensor or a float.

    `leak` is the fp32 [1] tau or decay tensor when spec.leak says so, else None.

    Arguments are assumed checked by the caller (`neuron.multi_step`, `fused.*`).
    """
    T, N = x2d.shape
    spike_dtype = x2d.dtype if spike_dtype is None else spike_dtype
    affine = affine or Affine()
    out = ForwardOutputs()
    dev = x2d.device
    if store_spikes:
        out.spikes = torch.empty((T, N), dtype=spike_dtype, device=dev)
    if store_v_final:
        out.v_final = torch.empty(N, dtype=torch.float32, device=dev)
    if store_v_seq:
        out.v_seq = torch.empty((T, N), dtype=torch.float32, device=dev)
    if store_h_seq:
        out.h_seq = torch.empty((T, N), dtype=torch.float32, device=dev)
    if store_count:
        out.count = torch.empty(N, dtype=count_dtype, device=dev)
    if N == 0:
        return out
    v0_tensor = v0 if isinstance(v0, Tensor) else None
    cfg = launch.choose_launch(N, dev)
    neuron_forward_kernel[launch.grid(N, cfg)](
        x2d, out.spikes, v0_tensor, leak, _tensor_or_none(affine.scale), _tensor_or_none(affine.bias),
        out.v_final, out.v_seq, out.h_seq, out.count,
        T, N, affine.channels, affine.inner,
        0.0 if v0_tensor is not None else float(v0),
        **spec.scalars(),
        scale_value=_float_or_zero(affine.scale),
        bias_value=_float_or_zero(affine.bias),
        **spec.constexprs(),
        V0_FROM_PTR=v0_tensor is not None,
        SCALE=_affine_mode(affine.scale),
        BIAS=_affine_mode(affine.bias),
        STORE_SPIKES=store_spikes,
        STORE_V_FINAL=store_v_final,
        STORE_V_SEQ=store_v_seq,
        STORE_H_SEQ=store_h_seq,
        STORE_COUNT=store_count,
        BLOCK=cfg.block,
        PREFETCH=cfg.prefetch,
        num_warps=cfg.num_warps,
        enable_fp_fusion=False,  # a * x + b must round twice, as torch does (see dynamics.py)
    )  # fmt: skip
    return out


def _affine_mode(part: float | Tensor | None) -> int:
    if part is None:
        return AFFINE_NONE
    if not isinstance(part, Tensor):
        return AFFINE_SCALAR
    return AFFINE_TENSOR_SCALAR if part.numel() == 1 else AFFINE_CHANNEL


def _tensor_or_none(part: float | Tensor | None) -> Tensor | None:
    return part if isinstance(part, Tensor) else None


def _float_or_zero(part: float | Tensor | None) -> float:
    return float(part) if isinstance(part, (int, float)) else 0.0
