"""charge / fire / reset as Triton device functions, mirroring `snnc.core.dynamics` op for op
(and `start_block`, the kernels' common prologue).

The fp32 operations and their order are those of `snnc.core.dynamics`, so a kernel
built from these functions gives the same bits as `dynamics.multi_step`:

    IF:                  H = V + X
    LIF, decay_input:    H = V + (X - (V - V_leak)) / tau
    LIF, no decay_input: H = V - (V - V_leak) / tau + X
    (ParametricLIF as in SpikingJelly multiplies by decay = 1/tau instead of dividing by tau)
    hard reset:          V = H (1 - S) + V_reset S
    soft reset:          V = H - V_th S

Division uses `div_rn` (IEEE round-to-nearest): a plain `/` on fp32 may lower
to an approximate division on NVIDIA GPUs, which would break bit-exactness.
Subtracting V_leak = 0 is exact, so one formula covers both leak targets.
Kernels using `charge` launch with FMA contraction off: `a * k + b` must round
twice, as torch does.
"""

from __future__ import annotations

import triton
import triton.language as tl

from snnc.core.dynamics import Charge, FireCompare, ResetMode

# The codes of snnc.core.dynamics, as constexprs the kernels compare their flags with.
CHARGE_IF: tl.constexpr = tl.constexpr(Charge.IF.code)
CHARGE_LIF: tl.constexpr = tl.constexpr(Charge.LIF.code)  # LIF with decay_input
RESET_HARD: tl.constexpr = tl.constexpr(ResetMode.HARD.code)
RESET_SOFT: tl.constexpr = tl.constexpr(ResetMode.SOFT.code)
COMPARE_GT: tl.constexpr = tl.constexpr(FireCompare.GT.code)


@triton.jit
def charge(v, x, k, v_leak, CHARGE: tl.constexpr, LEAK_MULTIPLY: tl.constexpr):
    """H[t] from V[t-1] and X[t]; k (an fp32 block like v) is tau, or decay = 1/tau if LEAK_MULTIPLY."""
    if CHARGE == CHARGE_IF:
        h = v + x
    elif CHARGE == CHARGE_LIF:
        if LEAK_MULTIPLY:
            h = v + (x - (v - v_leak)) * k
        else:
            h = v + tl.math.div_rn(x - (v - v_leak), k)
    elif LEAK_MULTIPLY:
        h = v - (v - v_leak) * k + x
    else:
        h = v - tl.math.div_rn(v - v_leak, k) + x
    return h


@triton.jit
def fire(h, v_threshold, COMPARE: tl.constexpr):
    """S[t] = Theta(H[t] - V_th) as an fp32 0/1 block (Theta(0) = 0 for gt, 1 for ge)."""
    if COMPARE == COMPARE_GT:
        s = (h > v_threshold).to(tl.float32)
    else:
        s = (h >= v_threshold).to(tl.float32)
    return s


@triton.jit
def reset(h, s, v_threshold, v_reset, RESET: tl.constexpr):
    """V[t] from H[t] and S[t]. With S in {0, 1} every product is exact, so FMA contraction is harmless."""
    if RESET == RESET_HARD:
        v = h * (1.0 - s) + v_reset * s
    elif RESET == RESET_SOFT:
        v = h - s * v_threshold
    else:
        v = h
    return v


@triton.jit
def start_block(v0_ptr, v0_value, leak_ptr, tau_value, N, BLOCK: tl.constexpr, V0_FROM_PTR: tl.constexpr,
                LEAK_FROM_PTR: tl.constexpr):  # fmt: skip
    """The prologue of a kernel whose program owns BLOCK neurons of N.

    Returns (offs, mask, zero, v, k): the neuron indices, their in-range mask,
    an fp32 zero block, V before the first step (loaded from v0_ptr, or
    v0_value everywhere) and the leak factor k for `charge` (the 1-element
    leak_ptr, or tau_value).
    """
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    zero = tl.zeros([BLOCK], tl.float32)
    if V0_FROM_PTR:
        v = tl.load(v0_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    else:
        v = zero + v0_value
    if LEAK_FROM_PTR:
        k = zero + tl.load(leak_ptr).to(tl.float32)  # tau, or decay = 1/tau
    else:
        k = zero + tau_value
    return offs, mask, zero, v, k
