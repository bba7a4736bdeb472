"""Neuron layers over a window of time steps: the native kernel, or the torch definition.

    out[t] = pool(post * S[t]),  S from snnc.core.dynamics applied to pre * x[t]

(S is the potential for a leaky integrator). Neurons with a synaptic current,
a potential output or per-neuron parameters run the torch definition
(snnc.core.dynamics.run_steps); their state is V, or V and I stacked [2, *].

`pre`/`post` are the Scale ops the plan fused into the neuron (1.0 when none),
`pool` a fused 2x2/stride-2 average or max pooling (None when none). Fusing is
exact: the kernel computes the same float32 operations in the same order as
the Scale and pooling kernels would, without a pass over memory for each.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from snnc.core import dynamics
from snnc.core.dynamics import NeuronKind
from snnc.runtime import event_conv, native


@dataclass(frozen=True)
class NeuronCall:
    """A neuron op as the runtime runs it."""

    params: dynamics.NeuronParams
    v_init: float | Tensor | None  # None: the reset value (per neuron when v_reset is)
    pre: float = 1.0
    post: float = 1.0
    pool: str | None = None  # 'avg' / 'max': a fused 2x2, stride-2 pooling of the output
    per_neuron: tuple[tuple[str, str], ...] = ()  # NeuronParams field -> parameter name (resolved by the executor)

    @property
    def general(self) -> bool:
        """True when only the torch definition runs it: synaptic current, potential output, per-neuron values."""
        p = self.params
        return (p.has_current or p.output is dynamics.NeuronOutput.POTENTIAL or bool(self.per_neuron) or p.per_neuron
                or p.v_leak is not None)

    def resolved(self, params) -> "NeuronCall":
        """This call with its per-neuron parameters read from `params` (name -> tensor)."""
        if not self.per_neuron:
            return self
        fields = {f: params[name] for f, name in self.per_neuron}
        p = replace(self.params, **fields)
        v_init = p.initial_v if self.v_init is None else self.v_init
        return replace(self, params=p, v_init=v_init, per_neuron=())

    def state_shape(self, step_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (2, *step_shape) if self.params.has_current else tuple(step_shape)


def native_ok(x: Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype == torch.float32 and native.available()


def _dense_like(x0: Tensor, steps: int) -> Tensor:
    """An uninitialised [steps, *x0.shape] tensor whose every step has x0's memory layout."""
    flat = torch.empty(steps * x0.numel(), dtype=x0.dtype, device=x0.device)
    return flat.as_strided((steps, *x0.shape), (x0.numel(), *x0.stride()))


def _is_dense(t: Tensor) -> bool:
    return t.is_contiguous() or t.is_contiguous(memory_format=torch.channels_last)


# Which implementation runs neuron layers: "auto" (the C kernel for float32 on the CPU, else the
# torch definition) or "triton" (the Triton multi-step kernels: CUDA, or the CPU under
# TRITON_INTERPRET=1). Set per run by the Interpreter (the triton backend's sessions).
IMPL: contextvars.ContextVar[str] = contextvars.ContextVar("snnc_neuron_impl", default="auto")


def run(call: NeuronCall, x: Tensor, steps: int, v: Tensor | None, *, static: bool,
        want_v: bool = False) -> tuple[Tensor, Tensor, Tensor | None]:
    """Run `steps` steps; x is [steps, N, *] or, when static, one step [N, *] held constant.

    Returns (out [steps, N, *], v after the last step, v sequence or None).
    """
    x0 = x if static else x[0]
    if call.general:
        return _run_torch(call, x, steps, v, static=static, want_v=want_v)
    if IMPL.get() == "triton":
        return _run_triton(call, x, steps, v, static=static, want_v=want_v)
    if native_ok(x0):
        return _run_native(call, x, x0, steps, v, static=static, want_v=want_v)
    return _run_torch(call, x, steps, v, static=static, want_v=want_v)


def _tau_vr(p: dynamics.NeuronParams) -> tuple[float, float]:
    """The native kernel's tau and reset (or leak target) scalars."""
    if p.kind is NeuronKind.LIF:
        return float(p.tau), p.leak_target
    return 1.0, p.v_reset


def event_neuron(call: NeuronCall) -> "event_conv.Neuron":
    """The neuron as the fused event conv runs it (event_conv.conv2d_neuron): the native kernel's arguments."""
    p = call.params
    tau, vr = _tau_vr(p)
    return event_conv.Neuron(native.codes(p), call.pre, call.post, p.v_threshold, vr, tau)


def _run_native(call, x, x0, steps, v, *, static, want_v):
    if static:
        if not _is_dense(x):
            x = x.contiguous()
        x0, xs = x, 0
    else:
        if not (_is_dense(x0) and x.stride(0) == x0.numel()):
            x = x.contiguous()
            x0 = x[0]
        xs = x0.numel()
    E = x0.numel()
    if v is None:
        v = torch.empty_like(x0).fill_(float(call.v_init))
    elif v.stride() != x0.stride() or not _is_dense(v):  # a different memory format than last time
        v = torch.empty_like(x0).copy_(v)
    p = call.params
    tau, vr = _tau_vr(p)
    if call.pool is not None:
        if want_v:
            raise ValueError("a neuron fused with pooling cannot record its potential")
        n, c, h, w = x0.shape
        cl = c > 1 and not x0.is_contiguous()  # dense and not NCHW: channels_last
        pooled = torch.empty((n, c, h // 2, w // 2), dtype=x0.dtype, device=x0.device,
                             memory_format=torch.channels_last if cl else torch.contiguous_format)
        out = _dense_like(pooled, steps)
        native.neuron_pool_f32(p, call.pool, x, xs, out, v, steps, w * c if cl else w, c if cl else 1,
                               call.pre, call.post, p.v_threshold, vr, tau)
        return out, v, None
    out = _dense_like(x0, steps)
    vseq = _dense_like(x0, steps) if want_v else None
    native.neuron_f32(p, x, xs, out, v, vseq, steps, E, call.pre, call.post, p.v_threshold, vr, tau)
    return out, v, vseq


def _run_triton(call, x, steps, v, *, static, want_v):
    """The Triton kernels: bit-identical to snnc.core.dynamics in float32 (tested under the interpreter)."""
    from snnc.runtime.triton.neuron import multi_step as triton_multi_step  # lazy: imports triton

    x_seq = x.unsqueeze(0).expand(steps, *x.shape) if static else x
    if call.pre != 1.0:
        x_seq = x_seq * call.pre
    v0 = call.v_init if v is None else v
    res = triton_multi_step(call.params, x_seq.contiguous(), v0, return_v_seq=want_v)
    out, v = res[0].to(x.dtype), res[1]
    if call.post != 1.0:
        out = out * call.post
    if call.pool is not None:
        out = _pool(call.pool, out)
    return out, v, (res[2] if want_v else None)


def _run_torch(call, x, steps, v, *, static, want_v):
    x_seq = x.unsqueeze(0).expand(steps, *x.shape) if static else x
    if call.pre != 1.0:
        x_seq = x_seq * call.pre
    p = call.params
    i = None
    if v is not None and p.has_current:  # the state is V and I stacked
        v, i = v[0], v[1]
    v0 = call.v_init if v is None else v
    if v0 is None:
        v0 = p.initial_v
    out, v, i, v_seq = dynamics.run_steps(p, x_seq, v0, i, return_v_seq=want_v)
    if i is not None:
        v = torch.stack([v, i])
    if call.post != 1.0:
        out = out * call.post
    if call.pool is not None:
        out = _pool(call.pool, out)
    return out, v, v_seq


def _pool(kind: str, out: Tensor) -> Tensor:
    """The 2x2, stride-2 pooling a plan fused into the neuron, over [T, N, C, H, W]."""
    pool = torch.nn.functional.avg_pool2d if kind == "avg" else torch.nn.functional.max_pool2d
    return pool(out.flatten(0, 1), 2, 2).unflatten(0, out.shape[:2])
