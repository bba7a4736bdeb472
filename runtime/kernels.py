"""CPU reference kernels: one obvious torch implementation per stateless op class.

A kernel sees its inputs batched as [B, *features] (time folded into B by the
runtime) and the graph's parameters by name.

The kernels are the plain torch calls, so on a graph without time the
runtime computes exactly what eager PyTorch computes.

Batch invariance: a run folds T*N rows into one call, a chunked run c*N rows
and `step()` N rows, and all three must agree bit for bit, so a row's result
must not depend on the number of rows. Measured with torch 2.13 on x86: oneDNN's
conv2d differs only for a single row; MKL's sgemm behind F.linear for some
counts below 12 (1, 2, 3, 5, 6, 7, 9, 10, 11), and for a row whose address is
not 64-byte aligned (rows of K floats, K not a multiple of 16). So, when asked
to (graphs with time), `call()` pads calls below MIN_ROWS rows with zero rows
and a Linear's K to a multiple of 16 with zero features; the interpreter copies
inputs into fresh (aligned) memory; the executor fixes each value's memory format.
tests/runtime/test_batch_invariance.py checks this for new torch versions.
"""

from __future__ import annotations

import math
import weakref
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from snnc.core.dynamics import FireCompare
from snnc.ir import ops
from snnc.ir.ops.linear import conv_out
from snnc.runtime import native

Kernel = Callable[[ops.OpBase, list[Tensor], Mapping[str, Tensor]], Tensor]
KERNELS: dict[type, Kernel] = {}
# stateful ops other than neurons: (op, x [c, N, *] for c steps, state or None, params) -> (y [c, N, *], state);
# RunningMaxPool2d here, SigmaDelta in runtime/stateful.py
StatefulKernel = Callable[[ops.OpBase, Tensor, "Tensor | None", Mapping[str, Tensor]], tuple[Tensor, Tensor]]
STATEFUL_KERNELS: dict[type, StatefulKernel] = {}


def kernel(*classes: type):
    def deco(fn: Kernel) -> Kernel:
        for c in classes:
            KERNELS[c] = fn
        return fn
    return deco


def stateful_kernel(*classes: type):
    def deco(fn: StatefulKernel) -> StatefulKernel:
        for c in classes:
            STATEFUL_KERNELS[c] = fn
        return fn
    return deco


def _p(params: Mapping[str, Tensor], name: str | None) -> Tensor | None:
    return None if name is None else params[name]


MIN_ROWS = {ops.Conv2d: 2, ops.Conv1d: 2, ops.Linear: 16}  # conv1d: oneDNN, like conv2d, differs for one row


def call(op: ops.OpBase, ins: list[Tensor], params: Mapping[str, Tensor], *, batch_invariant: bool) -> Tensor:
    """Run op's kernel; with batch_invariant, pad a too-small batch with zero samples first."""
    fn = KERNELS[type(op)]
    need = MIN_ROWS.get(type(op)) if batch_invariant else None
    if need is None:
        return fn(op, ins, params)
    x = ins[0]
    if isinstance(op, ops.Linear) and x.shape[-1] % K_ALIGN:
        return _linear_k_padded(op, x, params)
    per_sample = math.prod(x.shape[1:-1]) if isinstance(op, ops.Linear) else 1
    n = x.shape[0]
    if n * per_sample >= need:
        return fn(op, ins, params)
    return fn(op, [_pad_batch(x, -(-need // max(per_sample, 1))), *ins[1:]], params)[:n]


K_ALIGN = 16  # floats: 64-byte rows
_K_PADDED: dict[int, tuple[weakref.ref, Tensor]] = {}  # id(weight) -> (weight, padded weight)


def _linear_k_padded(op: ops.Linear, x: Tensor, params: Mapping[str, Tensor]) -> Tensor:
    """F.linear with the input features zero-padded to a multiple of K_ALIGN (+0 terms: same sum).

    With rows of 4*K bytes not a multiple of 64, sgemm computes a row differently
    depending on where it starts in memory, i.e. on its position in the batch.
    """
    w = params[op.weight]
    k = x.shape[-1]
    pad = -k % K_ALIGN
    ref, wp = _K_PADDED.get(id(w), (None, None))
    if ref is None or ref() is not w:
        wp = F.pad(w, (0, pad))
        _K_PADDED[id(w)] = (weakref.ref(w, lambda _, key=id(w): _K_PADDED.pop(key, None)), wp)
    rows = x.reshape(-1, k)
    n = rows.shape[0]
    rows = F.pad(_pad_batch(rows, MIN_ROWS[ops.Linear]) if n < MIN_ROWS[ops.Linear] else rows, (0, pad))
    y = F.linear(rows, wp, _p(params, op.bias))[:n]
    return y.view(*x.shape[:-1], w.shape[0])


def _pad_batch(x: Tensor, rows: int) -> Tensor:
    pad = x.new_zeros((rows - x.shape[0], *x.shape[1:]))
    return torch.cat([x, pad.contiguous(memory_format=_format_of(x))])


def _format_of(x: Tensor) -> torch.memory_format:
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


@kernel(ops.Conv2d)
def conv2d(op: ops.Conv2d, ins, params) -> Tensor:
    return F.conv2d(ins[0], params[op.weight], _p(params, op.bias), op.stride, op.padding, op.dilation, op.groups)


@kernel(ops.Linear)
def linear(op: ops.Linear, ins, params) -> Tensor:
    return F.linear(ins[0], params[op.weight], _p(params, op.bias))


@kernel(ops.BatchNorm)
def batch_norm(op: ops.BatchNorm, ins, params) -> Tensor:
    return F.batch_norm(ins[0], params[op.running_mean], params[op.running_var], _p(params, op.weight),
                        _p(params, op.bias), training=False, eps=op.eps)


@kernel(ops.ReLU)
def relu(op, ins, params) -> Tensor:
    return torch.relu(ins[0])


@kernel(ops.Clamp)
def clamp(op: ops.Clamp, ins, params) -> Tensor:
    return torch.clamp(ins[0], op.min, op.max)


@kernel(ops.Identity, ops.Output)
def identity(op, ins, params) -> Tensor:
    return ins[0]


@kernel(ops.Scale)
def scale(op: ops.Scale, ins, params) -> Tensor:
    x = ins[0]
    y = x * op.factor if op.factor != 1.0 else x
    if op.weight is not None:
        w = params[op.weight]
        if w.dim() > 1:  # per element: the full per-sample shape
            return y * w
        y = y * w.view(w.shape[0], *([1] * (x.dim() - 2)))
    return y


@kernel(ops.Threshold)
def threshold(op: ops.Threshold, ins, params) -> Tensor:
    x = ins[0]
    thr = op.threshold if op.threshold_param is None else params[op.threshold_param]
    return (x >= thr if op.fire is FireCompare.GE else x > thr).to(x.dtype)


@kernel(ops.Add)
def add(op, ins, params) -> Tensor:
    return ins[0] + ins[1]


@kernel(ops.Concat)
def concat(op: ops.Concat, ins, params) -> Tensor:
    return torch.cat(ins, dim=1 + op.dim)


@kernel(ops.Flatten)
def flatten(op: ops.Flatten, ins, params) -> Tensor:
    x = ins[0]
    rank = x.dim() - 1
    return torch.flatten(x, 1 + op.start_dim % rank, 1 + op.end_dim % rank)


def _native_pool(x: Tensor) -> bool:
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 4 and x.is_contiguous()
            and x.numel() > 0 and native.available())


# torch's NCHW pooling loops are slow on small planes (digits, 8x8: ~10x slower than
# channels_last); the native kernels compute the same sums and maxima in the same order.
@kernel(ops.AvgPool2d)
def avg_pool2d(op: ops.AvgPool2d, ins, params) -> Tensor:
    x = ins[0]
    if _native_pool(x):
        ho, wo = _pool_out(op, x, (1, 1))
        return native.pool2d_f32("avg", x, (ho, wo), (*op.kernel_size, *op.stride, *op.padding,
                                                     int(op.count_include_pad), op.divisor_override or 0))
    return F.avg_pool2d(x, op.kernel_size, op.stride, op.padding, op.ceil_mode, op.count_include_pad,
                        op.divisor_override)


@kernel(ops.MaxPool2d)
def max_pool2d(op: ops.MaxPool2d, ins, params) -> Tensor:
    x = ins[0]
    if _native_pool(x):
        ho, wo = _pool_out(op, x, op.dilation)
        return native.pool2d_f32("max", x, (ho, wo), (*op.kernel_size, *op.stride, *op.padding, *op.dilation))
    return F.max_pool2d(x, op.kernel_size, op.stride, op.padding, op.dilation, op.ceil_mode)


def _pool_out(op, x: Tensor, dilation) -> tuple[int, int]:
    return tuple(conv_out(x.shape[2 + i], op.kernel_size[i], op.stride[i], op.padding[i], dilation[i], op.ceil_mode)
                 for i in range(2))


@kernel(ops.AdaptiveAvgPool2d)
def adaptive_avg_pool2d(op: ops.AdaptiveAvgPool2d, ins, params) -> Tensor:
    return F.adaptive_avg_pool2d(ins[0], op.output_size)


# ---------------------------------------------------------------- tensor and layout ops (dims: 1 + feature dim)
@kernel(ops.Reshape)
def reshape(op: ops.Reshape, ins, params) -> Tensor:
    x = ins[0]
    return x.reshape(x.shape[0], *op.shape)


@kernel(ops.Permute)
def permute(op: ops.Permute, ins, params) -> Tensor:
    return ins[0].permute(0, *(1 + p for p in op.perm))


@kernel(ops.Slice)
def slice_(op: ops.Slice, ins, params) -> Tensor:
    return ins[0].narrow(1 + op.dim, op.start, op.end - op.start)


@kernel(ops.Mean)
def mean(op: ops.Mean, ins, params) -> Tensor:
    return ins[0].mean(dim=tuple(1 + d for d in op.dims), keepdim=op.keepdim)


@kernel(ops.Sum)
def sum_(op: ops.Sum, ins, params) -> Tensor:
    return ins[0].sum(dim=tuple(1 + d for d in op.dims), keepdim=op.keepdim)


@kernel(ops.Mul)
def mul(op, ins, params) -> Tensor:
    return ins[0] * ins[1]


@kernel(ops.Sub)
def sub(op, ins, params) -> Tensor:
    return ins[0] - ins[1]


@kernel(ops.AddScalar)
def add_scalar(op: ops.AddScalar, ins, params) -> Tensor:
    return ins[0] + op.value


@kernel(ops.AddConst)
def add_const(op: ops.AddConst, ins, params) -> Tensor:
    return ins[0] + params[op.value]  # [R, *features] + [*features, 1 where broadcast]


@kernel(ops.Constant)
def constant(op: ops.Constant, ins, params) -> Tensor:
    v = params[op.value]
    return v.expand(ins[0].shape[0], *v.shape).contiguous()  # the same value for every row (batch, time)


@kernel(ops.MatMul)
def matmul(op, ins, params) -> Tensor:
    """x0 @ x1 with K and P zero-padded to multiples of K_ALIGN (+0 terms, sliced off).

    sgemm's result for one matrix depends on its address (see the module
    docstring); padded, every matrix and row of both operands starts 64-byte
    aligned, so a sample's product does not depend on its position in the batch.
    """
    a, b = ins
    k, p = a.shape[-1], b.shape[-1]
    return torch.matmul(F.pad(a, (0, -k % K_ALIGN)), F.pad(b, (0, -p % K_ALIGN, 0, -k % K_ALIGN)))[..., :p]


@kernel(ops.Softmax)
def softmax(op: ops.Softmax, ins, params) -> Tensor:
    return torch.softmax(ins[0], dim=1 + op.dim)


@kernel(ops.Conv1d)
def conv1d(op: ops.Conv1d, ins, params) -> Tensor:
    return F.conv1d(ins[0], params[op.weight], _p(params, op.bias), op.stride, op.padding, op.dilation, op.groups)


@kernel(ops.LayerNorm)
def layer_norm(op: ops.LayerNorm, ins, params) -> Tensor:
    return F.layer_norm(ins[0], op.normalized_shape, _p(params, op.weight), _p(params, op.bias), op.eps)


@kernel(ops.AvgPool1d)
def avg_pool1d(op: ops.AvgPool1d, ins, params) -> Tensor:
    return F.avg_pool1d(ins[0], op.kernel_size, op.stride, op.padding, op.ceil_mode, op.count_include_pad)


def _native_running_max_ok(op: ops.RunningMaxPool2d, x: Tensor) -> bool:
    """The C loop takes the common case: a 2x2/stride-2 window without padding on even float32 CPU planes."""
    return (x.dtype == torch.float32 and x.device.type == "cpu" and x.dim() == 5 and x.shape[-1] % 2 == 0
            and x.shape[-2] % 2 == 0 and native.window_2x2(op.kernel_size, op.stride, op.padding, op.dilation)
            and native.available())


@stateful_kernel(ops.RunningMaxPool2d)
def running_max_pool2d(op: ops.RunningMaxPool2d, x: Tensor, acc: Tensor | None, params) -> tuple[Tensor, Tensor]:
    """c steps of x [c, N, C, H, W] and the sums so far (None: zeros) -> (y [c, N, C, Ho, Wo], the sums).

    One step at a time, in float32 (float64 for float64 runs): acc[t] = acc[t-1] + x[t],
    y[t] = maxpool(acc[t]) - maxpool(acc[t-1]), so any split of T into windows (run,
    chunks, step()) gives the same bits.
    """
    if _native_running_max_ok(op, x):
        return native.running_max_pool2d_f32(x, acc)
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    acc = x.new_zeros(x.shape[1:], dtype=dtype) if acc is None else acc.to(dtype)

    def pool(a: Tensor) -> Tensor:
        return F.max_pool2d(a, op.kernel_size, op.stride, op.padding, op.dilation, op.ceil_mode)

    prev = pool(acc)
    out = []
    for k in range(x.shape[0]):
        acc = acc + x[k].to(dtype)
        cur = pool(acc)
        out.append((cur - prev).to(x.dtype))
        prev = cur
    return torch.stack(out), acc


@stateful_kernel(ops.TimeMean)
def time_mean(op: ops.TimeMean, x: Tensor, state: Tensor | None, params) -> tuple[Tensor, Tensor]:
    """c steps of x [c, N, *] and the state so far (None: nothing seen) -> (y [c, N, *], the state).

    The state stacks the running sum and the number of steps seen (broadcast to the sum's shape):
    y[t] = S[t] / (t + 1), summed one step at a time, so any split of T into windows (run,
    chunks, step()) gives the same bits; at the last of T steps it equals x.mean(0) to rounding.
    """
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    if state is None:
        acc, n = x.new_zeros(x.shape[1:], dtype=dtype), 0.0
    else:
        acc, n = state[0].to(dtype), float(state[1].reshape(-1)[0])
    out = []
    for k in range(x.shape[0]):
        acc = acc + x[k].to(dtype)
        n += 1.0
        out.append((acc / n).to(x.dtype if x.is_floating_point() else torch.float32))
    return torch.stack(out), torch.stack([acc, torch.full_like(acc, n)])
_ACTIVATIONS: dict[ops.ActivationFn, Callable[[Tensor], Tensor]] = {
    ops.ActivationFn.SILU: F.silu,
    ops.ActivationFn.SIGMOID: torch.sigmoid,
    ops.ActivationFn.HARDSWISH: F.hardswish,
    ops.ActivationFn.HARDSIGMOID: F.hardsigmoid,
    ops.ActivationFn.GELU: F.gelu,
    ops.ActivationFn.GELU_TANH: lambda x: F.gelu(x, approximate="tanh"),
    ops.ActivationFn.TANH: torch.tanh,
}


@kernel(ops.Activation)
def activation(op: ops.Activation, ins, params) -> Tensor:
    return _ACTIVATIONS[op.fn](ins[0])
