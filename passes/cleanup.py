"""Cleanup passes: identity removal and constant folding.

remove-identities drops ops that return their input unchanged:

    Identity;  Scale with factor 1 and no weight;  LayoutCast to the layout it has;
    Flatten that keeps the shape;  Concat of one input;  1x1 pooling with stride 1;
    AdaptiveAvgPool2d to the input's own size

fold-constants folds parameter arithmetic, the only constants the IR has:

    Scale(a) -> Scale(b)              Scale(a b)                        exact up to one rounding
    Flatten -> Flatten                one Flatten                       exact
    Linear(W1, b1) -> Linear(W2, b2)  Linear(W2 W1, W2 b1 + b2)         the middle value has no other user
"""

from __future__ import annotations

import math

import torch

from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.passes.fold_scales import _is_scale, _make_scale, _vector
from snnc.passes.manager import register_pass


def _is_identity(g: Graph, op: ops.OpBase) -> bool:
    if isinstance(op, ops.Identity):
        return True
    if isinstance(op, ops.Scale):
        return op.weight is None and op.factor == 1.0
    if isinstance(op, ops.Concat):
        return len(op.inputs) == 1
    if not op.inputs or isinstance(op, (ops.Input, ops.Output)) or op.stateful:
        return False
    src, out = g.type_of(op.inputs[0]), g.type_of(op.name)
    if isinstance(op, ops.LayoutCast):
        return src.layout is op.to
    if isinstance(op, ops.Flatten):
        return src.features == out.features
    if isinstance(op, (ops.AvgPool2d, ops.MaxPool2d)):
        return (op.kernel_size == (1, 1) and op.stride == (1, 1) and op.padding == (0, 0)
                and getattr(op, "divisor_override", None) in (None, 1))
    if isinstance(op, ops.AdaptiveAvgPool2d):
        return src.features == out.features
    return False


@register_pass("remove-identities")
def remove_identities(graph: Graph) -> Graph:
    """Drop ops that return their input unchanged (Identity, Scale(1), no-op casts/flattens/pools)."""
    g = graph.copy()
    for name in list(g.nodes):
        op = g.nodes[name]  # fresh: earlier removals rewire inputs
        if _is_identity(g, op):
            g.replace_uses(op.name, op.inputs[0])
            g.remove(op.name)
    g.drop_unused_params()
    return g


def _only_user(g: Graph, name: str, user: ops.OpBase) -> bool:
    users = g.users(name)
    return len(users) == 1 and users[0] is user and not any(o.inputs[0] == name for o in g.outputs)


def merge_linears(w1, b1, w2, b2):
    """(W, b) of linear(linear(x, W1, b1), W2, b2) = x (W2 W1)^T + (W2 b1 + b2), computed in float64."""
    w = (w2.double() @ w1.double()).to(w1.dtype)
    b = torch.zeros(w2.shape[0], dtype=torch.float64) if b2 is None else b2.double()
    if b1 is not None:
        b = b + w2.double() @ b1.double()
    return w, (b.to(w1.dtype) if b1 is not None or b2 is not None else None)


@register_pass("fold-constants")
def fold_constants(graph: Graph) -> Graph:
    """Fold parameter arithmetic: Scale chains, Flatten chains and Linear -> Linear."""
    g = graph.copy()
    changed = True
    while changed:
        changed = False
        for name in list(g.nodes):
            op = g.nodes.get(name)
            if op is None or not op.inputs:
                continue
            src = g.nodes[op.inputs[0]]
            if not _only_user(g, src.name, op):
                continue
            if _is_scale(g, op) and _is_scale(g, src):
                g.replace_op(_make_scale(g, op.name, src.inputs[0], _vector(g, src) * _vector(g, op), op.loc))
            elif isinstance(op, ops.Flatten) and isinstance(src, ops.Flatten):
                merged = _flatten_between(op, src.inputs[0], g.type_of(src.inputs[0]).features,
                                          g.type_of(op.name).features)
                if merged is None:
                    continue
                g.replace_op(merged)
            elif (isinstance(op, ops.Linear) and isinstance(src, ops.Linear)
                  and len(g.type_of(src.name).features) == 1):
                p = g.params
                w, b = merge_linears(p[src.weight], p.get(src.bias) if src.bias else None, p[op.weight],
                                     p.get(op.bias) if op.bias else None)
                wn = g.add_param(f"{op.weight}_folded", w)
                bn = None if b is None else g.add_param(f"{op.bias or op.weight}_folded_bias", b)
                g.replace_op(op.replace(inputs=src.inputs, weight=wn, bias=bn))
            else:
                continue
            g.remove(src.name)
            changed = True
    g.drop_unused_params()
    return g


def _flatten_between(op: ops.Flatten, inp: str, f_in: tuple, f_out: tuple) -> ops.OpBase | None:
    """One Flatten taking features f_in to f_out, or None. Flattens are reshapes of contiguous
    data, so any one with the right output shape computes the same values."""
    # the kept leading dims are the common prefix, the kept trailing dims the common suffix
    lead = 0
    while lead < min(len(f_in), len(f_out)) and f_in[lead] == f_out[lead]:
        lead += 1
    trail = 0
    while trail < min(len(f_in), len(f_out)) - lead and f_in[-1 - trail] == f_out[-1 - trail]:
        trail += 1
    start, end = lead, len(f_in) - 1 - trail
    if start > end:
        return ops.Identity(name=op.name, inputs=(inp,), loc=op.loc) if f_in == f_out else None
    if (*f_in[:start], math.prod(f_in[start:end + 1]), *f_in[end + 1:]) != tuple(f_out):
        return None
    return ops.Flatten(name=op.name, inputs=(inp,), start_dim=start, end_dim=end, loc=op.loc)
