"""Constant (weight) operands of elementwise ops, shared by the fx, .pt2 and ONNX frontends (issue 19).

A product by a constant tensor (ConvNeXt's layer scale, a parameter [C, 1, 1]) is a
Scale: by one factor when every element is equal, per channel when it varies along
feature dim 0 only, else per element. A sum with a constant (ViT's position
embedding [1, tokens, D]) is an AddConst. Both are exact on rate-coded values: a
constant factor scales a rate, and a constant added at every step adds itself to
the rate. A constant that varies over the batch (or time) dims, or does not
broadcast against the value, has no such op: the callers refuse it by name.
"""

from __future__ import annotations

from typing import Callable

import torch

from snnc.ir import ops
from snnc.ir.ops import SourceLoc


def feature_const(t: torch.Tensor, feats: tuple[int, ...], lead: int) -> torch.Tensor | None:
    """`t` as torch broadcasts it against a value [*lead dims, *feats]: a tensor of rank len(feats) whose dims
    are each feats[i] or 1. None when `t` varies over a batch/time dim or does not broadcast."""
    rank = lead + len(feats)
    if t.dim() > rank or not t.is_floating_point():
        return None
    shape = (1,) * (rank - t.dim()) + tuple(t.shape)
    if any(s != 1 for s in shape[:lead]):
        return None
    fshape = shape[lead:]
    if not all(s in (1, f) for s, f in zip(fshape, feats)):
        return None
    return t.detach().reshape(fshape)


def scale_by_const(emit: Callable[[ops.OpBase], str], param: Callable[[torch.Tensor], str], name: str, x: str,
                   c: torch.Tensor, feats: tuple[int, ...], loc: SourceLoc) -> str:
    """x * c for a feature-shaped constant c (feature_const's): one Scale, by a factor when c is uniform,
    per channel when it varies along feature dim 0 only, else per element (c expanded to the features)."""
    flat = c.reshape(-1)
    if flat.numel() == 1 or bool((flat == flat[0]).all()):
        return emit(ops.Scale(name=name, inputs=(x,), loc=loc, factor=float(flat[0])))
    if len(feats) >= 1 and c.shape[0] == feats[0] and all(s == 1 for s in c.shape[1:]):
        weight = c.reshape(feats[0]).contiguous().clone()
    else:
        weight = c.expand(feats).contiguous().clone()
    return emit(ops.Scale(name=name, inputs=(x,), loc=loc, weight=param(weight)))


def add_const(emit: Callable[[ops.OpBase], str], param: Callable[[torch.Tensor], str], name: str, x: str,
              c: torch.Tensor, loc: SourceLoc) -> str:
    """x + c for a feature-shaped constant c (feature_const's): an AddConst (an AddScalar when c is uniform)."""
    flat = c.reshape(-1)
    if flat.numel() == 1 or bool((flat == flat[0]).all()):
        return emit(ops.AddScalar(name=name, inputs=(x,), loc=loc, value=float(flat[0])))
    return emit(ops.AddConst(name=name, inputs=(x,), loc=loc, value=param(c.contiguous().clone())))
