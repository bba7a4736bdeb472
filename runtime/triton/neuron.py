"""`multi_step`: the differentiable multi-step neuron on Triton kernels.

    spikes, v = multi_step(params, x_seq)                      # like snnc.core.dynamics.multi_step
    spikes, v, v_seq = multi_step(params, x_seq, v0, decay=w.sigmoid(), surrogate=("atan", 2.0),
                                  detach_reset=True, return_v_seq=True)

Forward: the spikes equal `snnc.core.dynamics.multi_step(params, x_seq.float(), v0)`
bit for bit (fp32 state for every input dtype). Backward: surrogate gradients
w.r.t. x_seq, a tensor v0, and a tensor tau or decay (ParametricLIF), equal
to those of a torch autograd loop over `dynamics.charge` / `dynamics.reset`
with a Heaviside-forward / surrogate-backward spike function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from snnc.core.dynamics import NeuronKind, NeuronParams

from . import launch
from .backward import run_backward
from .errors import KernelInputError
from .forward import run_forward
from .spec import Leak, NeuronSpec
from .surrogate import Surrogate, parse_surrogate


@dataclass(frozen=True)
class _Config:
    """The non-tensor arguments of one call, passed through autograd unchanged."""

    spec: NeuronSpec
    v0_value: float  # used when v0 is not a tensor
    surrogate: Surrogate
    detach_reset: bool
    return_v_seq: bool
    spike_dtype: torch.dtype


class MultiStepNeuron(torch.autograd.Function):
    """Forward and backward kernels as one autograd node.

    Inputs: x2d [T, N], v0 [N] fp32 or None, leak (tau or decay) [1] fp32 or None, config.
    Outputs: spikes [T, N] (config.spike_dtype), v_final [N] fp32, v_seq [T, N] fp32
    (an empty, non-differentiable tensor unless config.return_v_seq).
    """

    @staticmethod
    def forward(ctx: Any, x2d: Tensor, v0: Tensor | None, leak: Tensor | None, config: _Config):
        out = run_forward(
            config.spec, x2d, config.v0_value if v0 is None else v0, leak,
            spike_dtype=config.spike_dtype, store_v_seq=config.return_v_seq, store_h_seq=True,
        )  # fmt: skip
        v_seq = out.v_seq if config.return_v_seq else x2d.new_empty(0, dtype=torch.float32)
        if not config.return_v_seq:
            ctx.mark_non_differentiable(v_seq)
        ctx.set_materialize_grads(False)
        ctx.config = config
        ctx.save_for_backward(out.h_seq, x2d, v0, leak)
        return out.spikes, out.v_final, v_seq

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_spikes: Tensor | None, grad_v_final: Tensor | None, grad_v_seq: Tensor | None):
        config: _Config = ctx.config
        h_seq, x2d, v0, leak = ctx.saved_tensors
        want_x, want_v0, want_leak = ctx.needs_input_grad[:3]
        if not config.return_v_seq:
            grad_v_seq = None
        if grad_spikes is None and grad_v_final is None and grad_v_seq is None:
            return None, None, None, None
        out = run_backward(
            config.spec, config.surrogate, config.detach_reset, h_seq, x2d,
            config.v0_value if v0 is None else v0, leak,
            grad_spikes, grad_v_final, grad_v_seq,
            want_grad_v0=want_v0, want_grad_leak=want_leak,
        )  # fmt: skip
        return (out.grad_x if want_x else None), out.grad_v0, out.grad_leak, None


def multi_step(
    params: NeuronParams,
    x_seq: Tensor,
    v0: Tensor | float | None = None,
    *,
    tau: Tensor | None = None,
    decay: Tensor | None = None,
    surrogate: Any = ("sigmoid", 4.0),
    detach_reset: bool = False,
    return_v_seq: bool = False,
    spike_dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, Tensor]:
    """Run T steps of the neuron over x_seq [T, ...]; returns (spikes, v_final[, v_seq]).

    Args:
        v0: potential before the first step: a tensor broadcastable to x_seq[0],
            a float, or None for params.initial_v.
        tau: a 1-element tensor (learnable) that the leak divides by, replacing params.tau.
        decay: a 1-element tensor (learnable, = 1/tau) that the leak multiplies by, as
            SpikingJelly's ParametricLIF (`decay=w.sigmoid()`). tau and decay: LIF only.
        surrogate: "sigmoid" | "atan", (name, alpha), a `Surrogate`, or an object with .alpha.
        detach_reset: no gradient through S[t] in the reset.
        spike_dtype: dtype of the spikes (default x_seq's); must be floating to get gradients.

    spikes have x_seq's shape; v_final (shape x_seq[0]) and v_seq are fp32 whatever
    x_seq's dtype. Gradients flow to every input tensor that requires them.
    """
    if not isinstance(params, NeuronParams):
        raise KernelInputError(f"params must be snnc.core.dynamics.NeuronParams, got {type(params).__name__}")
    x2d = launch.time_major_2d(x_seq)
    spike_dtype = x_seq.dtype if spike_dtype is None else spike_dtype
    launch.check_dtype("spike_dtype", spike_dtype, launch.SPIKE_DTYPES)
    leak, leak_t = prepare_leak(params, tau, decay)
    v0_t, v0_value = prepare_v0(params, v0, x_seq)
    launch.check_device(x_seq=x_seq, v0=v0_t, leak=leak_t)
    config = _Config(
        spec=NeuronSpec(params, leak),
        v0_value=v0_value,
        surrogate=parse_surrogate(surrogate),
        detach_reset=bool(detach_reset),
        return_v_seq=bool(return_v_seq),
        spike_dtype=spike_dtype,
    )
    inputs = (x2d, v0_t, leak_t)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs):
        if not spike_dtype.is_floating_point:
            raise KernelInputError(f"spike_dtype {spike_dtype} carries no gradient; use a floating dtype")
        spikes, v_final, v_seq = MultiStepNeuron.apply(x2d, v0_t, leak_t, config)
    else:
        out = run_forward(
            config.spec, x2d, v0_value if v0_t is None else v0_t, leak_t,
            spike_dtype=spike_dtype, store_v_seq=return_v_seq,
        )  # fmt: skip
        spikes, v_final, v_seq = out.spikes, out.v_final, out.v_seq
    spikes = spikes.view(x_seq.shape)
    v_final = v_final.view(x_seq.shape[1:])
    if return_v_seq:
        return spikes, v_final, v_seq.view(x_seq.shape)
    return spikes, v_final


def prepare_leak(params: NeuronParams, tau: Tensor | None, decay: Tensor | None) -> tuple[Leak, Tensor | None]:
    """Which leak factor the kernels use, and the learnable one as a differentiable fp32 [1] tensor."""
    if tau is None and decay is None:
        return Leak.PARAMS_TAU, None
    if tau is not None and decay is not None:
        raise KernelInputError("give tau or decay (= 1/tau), not both")
    name, value = ("tau", tau) if tau is not None else ("decay", decay)
    if params.kind is not NeuronKind.LIF:
        raise KernelInputError(f"{name} is given, but the neuron kind is {params.kind.value!r}; only 'lif' leaks")
    if not isinstance(value, Tensor) or value.numel() != 1 or not value.dtype.is_floating_point:
        got = f"{value.dtype} tensor of shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
        raise KernelInputError(f"{name} must be a 1-element floating tensor (one per layer), got {got}")
    return (Leak.TAU if name == "tau" else Leak.DECAY), value.to(torch.float32).reshape(1)


def prepare_v0(params: NeuronParams, v0: Tensor | float | None, x_seq: Tensor) -> tuple[Tensor | None, float]:
    """(v0 as a contiguous fp32 [N] tensor or None, v0 as a float when it is not a tensor)."""
    if v0 is None:
        return None, float(params.initial_v)
    if not isinstance(v0, Tensor):
        return None, float(v0)
    if not v0.dtype.is_floating_point:
        raise KernelInputError(f"v0 must be a floating tensor, got {v0.dtype}")
    try:
        full = v0.to(torch.float32).expand(x_seq.shape[1:])
    except RuntimeError:
        raise KernelInputError(
            f"v0 of shape {tuple(v0.shape)} does not broadcast to x_seq[0] of shape {tuple(x_seq.shape[1:])}"
        ) from None
    return full.reshape(-1).contiguous(), 0.0
