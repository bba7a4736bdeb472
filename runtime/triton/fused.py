"""Fusion groups of the passes (issue 5) as single kernel launches.

    scale_bias_neuron     S = neuron(a * X + b)            a, b scalars or per-channel
    neuron_spike_count    S = neuron(X), count = sum_t S   spikes optional
    fused_multi_step      both at once; the general entry point for a runtime

Spikes are written in the dtype the next layer consumes (`spike_dtype`), the
count in `count_dtype`. a * X + b is computed in fp32 and rounded after each
operation (no FMA), like the unfused reference, so spikes stay bit-exact.

These are inference kernels. When autograd is recording and an input needs a
gradient, the group runs unfused instead (torch for the affine and the sum,
`neuron.multi_step` for the neuron), so results and gradients are the same.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from snnc.core.dynamics import NeuronParams

from . import launch
from .errors import KernelInputError
from .forward import Affine, run_forward
from .neuron import multi_step, prepare_leak, prepare_v0
from .spec import NeuronSpec


class FusedOutputs(NamedTuple):
    spikes: Tensor | None  # x_seq's shape, spike_dtype; None unless return_spikes
    count: Tensor | None  # x_seq[0]'s shape, count_dtype; None unless return_count
    v_final: Tensor  # x_seq[0]'s shape, fp32


def fused_multi_step(
    params: NeuronParams,
    x_seq: Tensor,
    *,
    scale: Tensor | float | None = None,
    bias: Tensor | float | None = None,
    channel_dim: int = 2,
    v0: Tensor | float | None = None,
    tau: Tensor | None = None,
    decay: Tensor | None = None,
    spike_dtype: torch.dtype | None = None,
    return_spikes: bool = True,
    return_count: bool = False,
    count_dtype: torch.dtype = torch.float32,
    surrogate: Any = ("sigmoid", 4.0),
    detach_reset: bool = False,
) -> FusedOutputs:
    """S = neuron(scale * x_seq + bias) over x_seq [T, ...], with an optional spike count over T.

    Args:
        scale, bias: None, a float, a 1-element tensor, or a tensor with one value per
            channel of x_seq (dimension `channel_dim` of x_seq, e.g. 2 for [T, B, C, H, W]).
        surrogate, detach_reset: used only on the unfused path that autograd takes.
    """
    x2d = launch.time_major_2d(x_seq)
    spike_dtype = x_seq.dtype if spike_dtype is None else spike_dtype
    launch.check_dtype("spike_dtype", spike_dtype, launch.SPIKE_DTYPES)
    launch.check_dtype("count_dtype", count_dtype, launch.COUNT_DTYPES)
    affine = _affine(x_seq, scale, bias, channel_dim)
    leak, leak_t = prepare_leak(params, tau, decay)
    v0_t, v0_value = prepare_v0(params, v0, x_seq)
    launch.check_device(x_seq=x_seq, v0=v0_t, leak=leak_t, scale=_tensor(affine.scale), bias=_tensor(affine.bias))
    grads = [x_seq, v0_t, leak_t, scale, bias]
    if torch.is_grad_enabled() and any(isinstance(t, Tensor) and t.requires_grad for t in grads):
        return _unfused(params, x_seq, scale, bias, channel_dim, v0, tau, decay, spike_dtype,
                        return_spikes, return_count, count_dtype, surrogate, detach_reset)  # fmt: skip
    out = run_forward(
        NeuronSpec(params, leak), x2d, v0_value if v0_t is None else v0_t, leak_t,
        affine=affine, spike_dtype=spike_dtype, store_spikes=return_spikes,
        store_count=return_count, count_dtype=count_dtype,
    )  # fmt: skip
    shape, shape0 = x_seq.shape, x_seq.shape[1:]
    return FusedOutputs(
        spikes=out.spikes.view(shape) if return_spikes else None,
        count=out.count.view(shape0) if return_count else None,
        v_final=out.v_final.view(shape0),
    )


def scale_bias_neuron(
    params: NeuronParams,
    x_seq: Tensor,
    scale: Tensor | float | None = None,
    bias: Tensor | float | None = None,
    *,
    channel_dim: int = 2,
    v0: Tensor | float | None = None,
    tau: Tensor | None = None,
    decay: Tensor | None = None,
    spike_dtype: torch.dtype | None = None,
    surrogate: Any = ("sigmoid", 4.0),
    detach_reset: bool = False,
) -> tuple[Tensor, Tensor]:
    """(spikes, v_final) of neuron(scale * x_seq + bias): the "scale + neuron" group."""
    out = fused_multi_step(
        params, x_seq, scale=scale, bias=bias, channel_dim=channel_dim, v0=v0, tau=tau, decay=decay,
        spike_dtype=spike_dtype, surrogate=surrogate, detach_reset=detach_reset,
    )  # fmt: skip
    return out.spikes, out.v_final


def neuron_spike_count(
    params: NeuronParams,
    x_seq: Tensor,
    *,
    v0: Tensor | float | None = None,
    tau: Tensor | None = None,
    decay: Tensor | None = None,
    return_spikes: bool = False,
    spike_dtype: torch.dtype | None = None,
    count_dtype: torch.dtype = torch.float32,
) -> FusedOutputs:
    """The "neuron + count" group: count = sum over T of the spikes, spikes only if asked."""
    return fused_multi_step(
        params, x_seq, v0=v0, tau=tau, decay=decay, spike_dtype=spike_dtype,
        return_spikes=return_spikes, return_count=True, count_dtype=count_dtype,
    )  # fmt: skip


def _affine(x_seq: Tensor, scale: Any, bias: Any, channel_dim: int) -> Affine:
    """Check scale and bias and describe how a flat neuron index maps to their channel."""
    dims = x_seq.dim()
    per_channel = [isinstance(p, Tensor) and p.numel() > 1 for p in (scale, bias)]
    channels, inner = 1, 1
    if any(per_channel):
        if not 1 <= channel_dim < dims:
            raise KernelInputError(
                f"channel_dim={channel_dim} is not a non-time dimension of x_seq with shape {tuple(x_seq.shape)}"
            )
        channels = x_seq.shape[channel_dim]
        inner = 1
        for d in x_seq.shape[channel_dim + 1 :]:
            inner *= d
    parts = []
    for name, p in (("scale", scale), ("bias", bias)):
        if p is None or isinstance(p, (int, float)) and not isinstance(p, bool):
            parts.append(None if p is None else float(p))
            continue
        if not isinstance(p, Tensor) or not p.dtype.is_floating_point:
            raise KernelInputError(f"{name} must be None, a float or a floating tensor, got {p!r:.80}")
        if p.numel() not in (1, channels):
            raise KernelInputError(
                f"{name} has {p.numel()} values, but x_seq {tuple(x_seq.shape)} has {channels} channels "
                f"along channel_dim={channel_dim}; give one value per channel or a single value"
            )
        parts.append(p.detach().to(torch.float32).reshape(-1).contiguous())
    return Affine(scale=parts[0], bias=parts[1], channels=channels, inner=max(inner, 1))


def _unfused(params, x_seq, scale, bias, channel_dim, v0, tau, decay, spike_dtype,
             return_spikes, return_count, count_dtype, surrogate, detach_reset) -> FusedOutputs:  # fmt: skip
    """The same group as torch ops around the differentiable neuron, for training."""
    u = x_seq.to(torch.float32) if scale is not None or bias is not None else x_seq
    if scale is not None:
        u = u * _broadcastable(scale, x_seq, channel_dim)
    if bias is not None:
        u = u + _broadcastable(bias, x_seq, channel_dim)
    out_dtype = spike_dtype if spike_dtype.is_floating_point else torch.float32
    spikes, v_final = multi_step(params, u, v0, tau=tau, decay=decay, surrogate=surrogate,
                                 detach_reset=detach_reset, spike_dtype=out_dtype)  # fmt: skip
    count = spikes.sum(0, dtype=torch.float32).to(count_dtype) if return_count else None
    return FusedOutputs(spikes=spikes.to(spike_dtype) if return_spikes else None, count=count, v_final=v_final)


def _broadcastable(p: Tensor | float, x_seq: Tensor, channel_dim: int) -> Tensor | float:
    if not isinstance(p, Tensor):
        return float(p)
    p = p.to(torch.float32)
    if p.numel() == 1:
        return p.reshape(())
    shape = [1] * x_seq.dim()
    shape[channel_dim] = p.numel()
    return p.reshape(shape)


def _tensor(p: Any) -> Tensor | None:
    return p if isinstance(p, Tensor) else None
