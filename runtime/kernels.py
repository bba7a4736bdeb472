"""CPU reference kernels: one obvious torch implementation per stateless op class.

A kernel sees its inputs batched as [B, *features] (time folded into B by the
interpreter) and the graph's parameters by name.
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from snnc.ir import ops

Kernel = Callable[[ops.OpBase, list[Tensor], Mapping[str, Tensor]], Tensor]
KERNELS: dict[type, Kernel] = {}


def kernel(*classes: type):
    def deco(fn: Kernel) -> Kernel:
        for c in classes:
            KERNELS[c] = fn
        return fn
    return deco


def _p(params: Mapping[str, Tensor], name: str | None) -> Tensor | None:
    return None if name is None else params[name]


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


@kernel(ops.Identity, ops.Output)
def identity(op, ins, params) -> Tensor:
    return ins[0]


@kernel(ops.Scale)
def scale(op: ops.Scale, ins, params) -> Tensor:
    x = ins[0]
    y = x * op.factor if op.factor != 1.0 else x
    if op.weight is not None:
        w = params[op.weight]
        y = y * w.view(w.shape[0], *([1] * (x.dim() - 2)))
    return y


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


@kernel(ops.AvgPool2d)
def avg_pool2d(op: ops.AvgPool2d, ins, params) -> Tensor:
    return F.avg_pool2d(ins[0], op.kernel_size, op.stride, op.padding, op.ceil_mode, op.count_include_pad,
                        op.divisor_override)


@kernel(ops.MaxPool2d)
def max_pool2d(op: ops.MaxPool2d, ins, params) -> Tensor:
    return F.max_pool2d(ins[0], op.kernel_size, op.stride, op.padding, op.dilation, op.ceil_mode)


@kernel(ops.AdaptiveAvgPool2d)
def adaptive_avg_pool2d(op: ops.AdaptiveAvgPool2d, ins, params) -> Tensor:
    return F.adaptive_avg_pool2d(ins[0], op.output_size)
