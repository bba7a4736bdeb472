"""The fusion group "elementwise chain + neuron" as one kernel.

    S = neuron(stage_k(... stage_1(X) ...))        stages: x * f, x * w[c], x + Y_i, relu(x)

This is what `ir/fusion.py` groups before a neuron: Scale (a factor and/or a
per-channel weight), Add of a second value (a residual), ReLU and Identity.
One program owns BLOCK neurons and loops over T; per step it reads X and the
Add operands once and writes S once, with V in fp32 registers. An input that
is the same at every step (a hoisted constant prefix) is "static": it is read
once, before the loop.

Each stage rounds as the unfused torch op does: fp32 arithmetic, rounded to
the storage dtype after the stage when the inputs are fp16/bf16, no FMA. So in
fp32 the spikes and V equal those of the CPU reference runtime bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from snnc.core.dynamics import NeuronParams

from . import launch
from .dynamics import charge, fire, reset, start_block
from .errors import KernelInputError
from .spec import NeuronSpec

STAGE_NONE = 0
STAGE_MUL = 1  # x * factor
STAGE_MUL_CHANNEL = 2  # x * weight[channel]
STAGE_ADD = 3  # x + operand[operand_index] (at the same step)
STAGE_RELU = 4

MAX_STAGES = 4
_ROUND_CODES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}
MAX_OPERANDS = 2


@dataclass(frozen=True)
class Stage:
    """One elementwise step of a chain. `weight` is an fp32 [channels] tensor for STAGE_MUL_CHANNEL."""

    op: int
    factor: float = 1.0
    weight: Tensor | None = None
    operand: int = 0


@triton.jit
def _apply(x, OP: tl.constexpr, f, w, y0, y1, OPERAND: tl.constexpr):
    if OP == 1:
        x = x * f
    elif OP == 2:
        x = x * w
    elif OP == 3:
        if OPERAND == 0:
            x = x + y0
        else:
            x = x + y1
    elif OP == 4:
        x = tl.maximum(x, 0.0)
    return x


@triton.jit
def _round(x, ROUND: tl.constexpr, OP: tl.constexpr):
    """Round an fp32 block to fp16 (ROUND 1) or bf16 (ROUND 2), to nearest even, and back to fp32."""
    if OP != 0:
        if ROUND == 1:
            x = x.to(tl.float16).to(tl.float32)
        elif ROUND == 2:  # bit arithmetic: the interpreter's fp32 -> bf16 cast does not round to nearest
            bits = x.to(tl.uint32, bitcast=True)
            bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
            x = bits.to(tl.float32, bitcast=True)
    return x


@triton.jit
def _load_weight(ptr, channel, mask, OP: tl.constexpr):
    if OP == 2:
        w = tl.load(ptr + channel, mask=mask, other=0.0).to(tl.float32)
    else:
        w = 0.0
    return w


@triton.jit(do_not_specialize=["T"])  # one compiled kernel for every T
def chain_neuron_kernel(
    x_ptr, y0_ptr, y1_ptr, w0_ptr, w1_ptr, w2_ptr, w3_ptr,
    spike_ptr, v0_ptr, v_final_ptr,
    T, N, CHANNELS, INNER,
    f0, f1, f2, f3,
    v0_value, v_threshold, v_reset, v_leak, tau_value,
    OP0: tl.constexpr, OP1: tl.constexpr, OP2: tl.constexpr, OP3: tl.constexpr,
    OPERAND0: tl.constexpr, OPERAND1: tl.constexpr, OPERAND2: tl.constexpr, OPERAND3: tl.constexpr,
    X_STATIC: tl.constexpr, Y0_STATIC: tl.constexpr, Y1_STATIC: tl.constexpr,
    HAS_Y0: tl.constexpr, HAS_Y1: tl.constexpr, ROUND: tl.constexpr,
    CHARGE: tl.constexpr, RESET: tl.constexpr, COMPARE: tl.constexpr,
    LEAK_FROM_PTR: tl.constexpr, LEAK_MULTIPLY: tl.constexpr, V0_FROM_PTR: tl.constexpr,
    BLOCK: tl.constexpr,
):  # fmt: skip
    # the chain always divides by params.tau (a NeuronSpec with the default leak): no leak pointer
    offs, mask, zero, v, k = start_block(v0_ptr, v0_value, None, tau_value, N, BLOCK, V0_FROM_PTR, False)
    channel = (offs // INNER) % CHANNELS
    w0 = _load_weight(w0_ptr, channel, mask, OP0)
    w1 = _load_weight(w1_ptr, channel, mask, OP1)
    w2 = _load_weight(w2_ptr, channel, mask, OP2)
    w3 = _load_weight(w3_ptr, channel, mask, OP3)
    # static inputs: read once; dynamic ones: a row pointer that advances by N per step (64-bit)
    x_row = x_ptr
    y0_row = y0_ptr
    y1_row = y1_ptr
    if X_STATIC:
        xs = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    y0 = zero
    y1 = zero
    if HAS_Y0:
        if Y0_STATIC:
            y0 = tl.load(y0_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if HAS_Y1:
        if Y1_STATIC:
            y1 = tl.load(y1_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    for t in range(T):
        if X_STATIC:
            x = xs
        else:
            x = tl.load(x_row + offs, mask=mask, other=0.0).to(tl.float32)
            x_row += N
        if HAS_Y0:
            if not Y0_STATIC:
                y0 = tl.load(y0_row + offs, mask=mask, other=0.0).to(tl.float32)
                y0_row += N
        if HAS_Y1:
            if not Y1_STATIC:
                y1 = tl.load(y1_row + offs, mask=mask, other=0.0).to(tl.float32)
                y1_row += N
        x = _round(_apply(x, OP0, f0, w0, y0, y1, OPERAND0), ROUND, OP0)
        x = _round(_apply(x, OP1, f1, w1, y0, y1, OPERAND1), ROUND, OP1)
        x = _round(_apply(x, OP2, f2, w2, y0, y1, OPERAND2), ROUND, OP2)
        x = _round(_apply(x, OP3, f3, w3, y0, y1, OPERAND3), ROUND, OP3)
        h = charge(v, x, k, v_leak, CHARGE, LEAK_MULTIPLY)
        s = fire(h, v_threshold, COMPARE)
        v = reset(h, s, v_threshold, v_reset, RESET)
        tl.store(spike_ptr + offs, s.to(spike_ptr.dtype.element_ty), mask=mask)
        spike_ptr += N
    tl.store(v_final_ptr + offs, v, mask=mask)


def chain_multi_step(
    params: NeuronParams,
    x: Tensor,
    stages: tuple[Stage, ...] = (),
    operands: tuple[tuple[Tensor, bool], ...] = (),
    *,
    steps: int | None = None,
    x_static: bool = False,
    v0: Tensor | float | None = None,
    channels: int = 1,
    inner: int = 1,
    spike_dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor]:
    """(spikes [T, *shape], v_final fp32 [*shape]) of neuron(chain(x)) over T steps (inference).

    Args:
        x: [T, *shape], or one step [*shape] held for `steps` steps when x_static.
        stages: at most MAX_STAGES; a STAGE_ADD adds operands[stage.operand].
        operands: (value, static) pairs: [T, *shape], or [*shape] when static; at most MAX_OPERANDS.
        channels, inner: neuron n of a step reads weight[(n // inner) % channels] in STAGE_MUL_CHANNEL.
        v0: potential before the first step ([*shape] tensor or float; None: params.initial_v).
    """
    if len(stages) > MAX_STAGES or len(operands) > MAX_OPERANDS:
        raise KernelInputError(f"a chain has at most {MAX_STAGES} stages and {MAX_OPERANDS} operands, "
                               f"got {len(stages)} and {len(operands)}")  # fmt: skip
    launch.check_dtype("x", x.dtype, launch.INPUT_DTYPES)
    if x_static:
        if steps is None or steps < 1:
            raise KernelInputError(f"a static input needs steps >= 1, got {steps}")
        shape, T = tuple(x.shape), int(steps)
    else:
        if x.dim() < 1 or x.shape[0] == 0:
            raise KernelInputError(f"x must be [T, ...] with T >= 1, got shape {tuple(x.shape)}")
        shape, T = tuple(x.shape[1:]), x.shape[0]
        if steps is not None and steps != T:
            raise KernelInputError(f"x has {T} steps, but steps={steps}")
    N = 1
    for d in shape:
        N *= d
    ops_ = [s.op for s in stages] + [STAGE_NONE] * (MAX_STAGES - len(stages))
    for s in stages:
        if s.op == STAGE_ADD and not 0 <= s.operand < len(operands):
            raise KernelInputError(f"an add stage reads operand {s.operand}, but {len(operands)} are given")
        if s.op == STAGE_MUL_CHANNEL and (s.weight is None or s.weight.numel() != channels):
            raise KernelInputError(f"a per-channel stage needs a weight of {channels} values")
    ys = []
    for i, (y, static) in enumerate(operands):
        want = shape if static else (T, *shape)
        if tuple(y.shape) != want:
            raise KernelInputError(f"operand {i} has shape {tuple(y.shape)}, expected {want}")
        ys.append((y.contiguous(), bool(static)))
    spike_dtype = x.dtype if spike_dtype is None else spike_dtype
    launch.check_dtype("spike_dtype", spike_dtype, launch.SPIKE_DTYPES)
    v0_t: Tensor | None = None
    v0_value = float(params.initial_v)
    if isinstance(v0, Tensor):
        v0_t = v0.to(torch.float32).expand(shape).reshape(-1).contiguous()
    elif v0 is not None:
        v0_value = float(v0)
    weights = [s.weight.to(torch.float32).contiguous() if s.op == STAGE_MUL_CHANNEL else None for s in stages]
    weights += [None] * (MAX_STAGES - len(weights))
    launch.check_device(x=x, v0=v0_t, **{f"operand{i}": y for i, (y, _) in enumerate(ys)},
                        **{f"weight{i}": w for i, w in enumerate(weights)})  # fmt: skip
    dev = x.device
    spikes = torch.empty((T, *shape), dtype=spike_dtype, device=dev)
    v_final = torch.empty(shape, dtype=torch.float32, device=dev)
    if N == 0:
        return spikes, v_final
    factors = [float(s.factor) for s in stages] + [1.0] * (MAX_STAGES - len(stages))
    operand_idx = [s.operand if s.op == STAGE_ADD else 0 for s in stages] + [0] * (MAX_STAGES - len(stages))
    y0, y0_static = ys[0] if len(ys) > 0 else (None, True)
    y1, y1_static = ys[1] if len(ys) > 1 else (None, True)
    spec = NeuronSpec(params)
    cfg = launch.choose_launch(N, dev)
    chain_neuron_kernel[launch.grid(N, cfg)](
        x.contiguous(), y0, y1, *weights, spikes, v0_t, v_final,
        T, N, max(1, channels), max(1, inner), *factors,
        v0_value, **spec.scalars(),
        OP0=ops_[0], OP1=ops_[1], OP2=ops_[2], OP3=ops_[3],
        OPERAND0=operand_idx[0], OPERAND1=operand_idx[1], OPERAND2=operand_idx[2], OPERAND3=operand_idx[3],
        X_STATIC=bool(x_static), Y0_STATIC=y0_static, Y1_STATIC=y1_static,
        HAS_Y0=y0 is not None, HAS_Y1=y1 is not None, ROUND=_ROUND_CODES[x.dtype],
        **spec.constexprs(), V0_FROM_PTR=v0_t is not None,
        BLOCK=cfg.block, num_warps=cfg.num_warps,
        enable_fp_fusion=False,  # x * f + y must round twice, as torch does
    )  # fmt: skip
    return spikes, v_final
