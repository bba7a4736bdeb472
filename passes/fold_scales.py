"""fold-scales: fold Scale ops into weights, biases and neuron thresholds.

Conversion leaves `conv -> Scale(1/l1) -> IF -> Scale(l1) -> pool -> conv2 ...`.
Each Scale multiplies feature channel c (feature dim 0) by s[c] = factor * weight[c],
and moves where the algebra is exact in real arithmetic:

    back into the Conv2d/Linear producing it   W' = s W (output rows), b' = s b
        (also through AvgPool/MaxPool/ReLU/Identity between them, MaxPool and ReLU needing s > 0;
         MaxPool includes RunningMaxPool throughout)
    forward into a consuming Conv2d/Linear     W' = W s (input columns); zero padding stays zero
    forward through AvgPool, AdaptiveAvgPool, MaxPool and ReLU (s > 0), Flatten, Identity
    forward through Add when both operands carry the same scale
    back through Add into both operands when each absorbs it (a layer's rows, or a Scale)
    into a neuron fed by it (one scalar s > 0)  v_th' = v_th / s, v_reset' = v_reset / s, v_init' = v_init / s
    two Scales in a row                          one Scale with s = s1 s2

Anything else (a graph output, a Concat, an Add of differently scaled branches)
keeps its Scale. Float rounding may differ from the unfolded graph by an ulp per
op; with power-of-two scales the folded graph computes the same bits.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from snnc.core.dynamics import NeuronOutput
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.passes.manager import register_pass

_COMMUTE = (ops.AvgPool2d, ops.AdaptiveAvgPool2d, ops.MaxPool2d, ops.RunningMaxPool2d, ops.ReLU, ops.Identity)
_NEEDS_POSITIVE = (ops.MaxPool2d, ops.RunningMaxPool2d, ops.ReLU)  # max(s x) = s max(x) only for s > 0


# -- the algebra, as plain tensor functions ------------------------------------
def scale_output_rows(w: Tensor, b: Tensor | None, s: Tensor) -> tuple[Tensor, Tensor | None]:
    """(W, b) of layer(x) * s, with s one value per output channel (dim 0 of W) or a scalar."""
    s64 = s.double().reshape(-1)
    sw = s64.view(-1, *([1] * (w.dim() - 1)))
    w2 = (w.double() * sw).to(w.dtype)
    b2 = None if b is None else (b.double() * s64).to(b.dtype)
    return w2, b2


def scale_conv_input(w: Tensor, s: Tensor, groups: int = 1) -> Tensor:
    """W of conv(s * x): input channel c of group g is column c - g Cin/groups of the group's rows."""
    cout, cin_g = w.shape[:2]
    s64 = s.double().reshape(-1)
    if s64.numel() == 1:
        return (w.double() * s64).to(w.dtype)
    per_row = s64.view(groups, cin_g).repeat_interleave(cout // groups, dim=0)  # [Cout, Cin/groups]
    return (w.double() * per_row.view(cout, cin_g, *([1] * (w.dim() - 2)))).to(w.dtype)


def scale_linear_input(w: Tensor, s: Tensor) -> Tensor:
    """W of linear(s * x), s one value per input feature or a scalar."""
    return (w.double() * s.double().reshape(1, -1)).to(w.dtype)


# -- helpers -------------------------------------------------------------------
def _is_scale(g: Graph, op: ops.OpBase) -> bool:
    """A Scale this pass folds: a factor or per-channel weight (a per-element weight is left where it is)."""
    return isinstance(op, ops.Scale) and (op.weight is None or g.params[op.weight].dim() <= 1)


def _vector(g: Graph, op: ops.Scale) -> Tensor:
    """The scale as a float64 vector over feature dim 0 (one element when it is a plain factor)."""
    s = torch.tensor([op.factor], dtype=torch.float64)
    return s if op.weight is None else g.params[op.weight].double().reshape(-1) * op.factor


def _is_scalar(s: Tensor) -> bool:
    return s.numel() == 1 or bool((s == s[0]).all())


def _make_scale(g: Graph, name: str, inp: str, s: Tensor, loc) -> ops.Scale:
    if _is_scalar(s):
        return ops.Scale(name=name, inputs=(inp,), factor=float(s[0]), loc=loc)
    pname = g.add_param(f"{name}.scale", s.float())
    return ops.Scale(name=name, inputs=(inp,), factor=1.0, weight=pname, loc=loc)


def _set_param(g: Graph, name: str, value: Tensor) -> str:
    """Store a rewritten parameter: in place when one op uses it, else under a fresh name."""
    uses = sum(name in op.param_refs().values() for op in g)
    if uses == 1:
        g.params[name] = value.detach()  # g.params is the copy's own table
        g._types = None
        return name
    return g.add_param(name, value)


def _layer_takes_channels(g: Graph, layer: ops.OpBase, value: str, s: Tensor) -> bool:
    """Whether a per-channel s over feature dim 0 of `value` maps onto `layer`'s weight."""
    if _is_scalar(s):
        return True
    return isinstance(layer, ops.Conv2d) or len(g.type_of(value).features) == 1


# -- the rewrites ----------------------------------------------------------------
def _fold_back(g: Graph, sc: ops.Scale) -> bool:
    """Fold sc into the Conv2d/Linear behind it (through single-user commuting ops)."""
    s = _vector(g, sc)
    chain, cur = [], g.nodes[sc.inputs[0]]
    while isinstance(cur, _COMMUTE) and len(g.users(cur.name)) == 1:
        if isinstance(cur, _NEEDS_POSITIVE) and not bool((s > 0).all()):
            return False
        chain.append(cur)
        cur = g.nodes[cur.inputs[0]]
    if not isinstance(cur, (ops.Conv2d, ops.Linear)) or not _fold_rows(g, cur, s):
        return False
    g.replace_uses(sc.name, sc.inputs[0])
    g.remove(sc.name)
    return True


def _fold_rows(g: Graph, layer: ops.Conv2d | ops.Linear, s: Tensor) -> bool:
    """Scale the output rows of a single-user Conv2d/Linear by s, if s maps onto them."""
    if len(g.users(layer.name)) != 1 or not _layer_takes_channels(g, layer, layer.name, s):
        return False
    w, b = g.params[layer.weight], g.params.get(layer.bias) if layer.bias else None
    if not _is_scalar(s) and s.numel() != w.shape[0]:
        return False
    w2, b2 = scale_output_rows(w, b, s if not _is_scalar(s) else s[:1])
    g.replace_op(layer.replace(weight=_set_param(g, layer.weight, w2),
                               bias=None if b2 is None else _set_param(g, layer.bias, b2)))
    return True


def _distribute_over_add(g: Graph, sc: ops.Scale) -> bool:
    """s (a + b) = s a + s b, when both operands absorb s: a single-user Conv2d/Linear takes it into
    its rows, a single-user Scale merges with it. Each rewrite removes a Scale, so this and the
    forward move through Add (two Scales become one) cannot undo each other."""
    add = g.nodes[sc.inputs[0]]
    if not isinstance(add, ops.Add) or len(g.users(add.name)) != 1 or add.inputs[0] == add.inputs[1]:
        return False
    s = _vector(g, sc)
    for o in add.inputs:
        op = g.nodes[o]
        layer_ok = (isinstance(op, (ops.Conv2d, ops.Linear)) and len(g.users(o)) == 1
                    and _layer_takes_channels(g, op, o, s)
                    and (_is_scalar(s) or s.numel() == g.params[op.weight].shape[0]))
        if not ((_is_scale(g, op) and len(g.users(o)) == 1) or layer_ok):
            return False
    for o in add.inputs:
        op = g.nodes[o]
        if _is_scale(g, op):
            g.replace_op(_make_scale(g, o, op.inputs[0], _vector(g, op) * s, op.loc))
        else:
            _fold_rows(g, op, s)
    g.replace_uses(sc.name, add.name)
    g.remove(sc.name)
    return True


def _fold_into_user(g: Graph, sc: ops.Scale, user: ops.OpBase, s: Tensor) -> bool:
    """Make `user` read sc's input instead of sc, absorbing the scale. Returns False if it cannot."""
    x = sc.inputs[0]
    if isinstance(user, (ops.Conv2d, ops.Linear)) and user.inputs[0] == sc.name:
        if not _layer_takes_channels(g, user, x, s):
            return False
        w = g.params[user.weight]
        if isinstance(user, ops.Conv2d):
            w2 = scale_conv_input(w, s if not _is_scalar(s) else s[:1], user.groups)
        else:
            w2 = scale_linear_input(w, s if not _is_scalar(s) else s[:1])
        g.replace_op(user.replace(inputs=(x,), weight=_set_param(g, user.weight, w2)))
        return True
    # a neuron sharing its membrane potential with another (state_from) keeps its scale: V is one quantity
    shared = isinstance(user, ops.NeuronOp) and (user.state_from is not None
                                                 or user.name in g.state_links().values())
    if (isinstance(user, ops.NeuronOp) and _is_scalar(s) and float(s[0]) > 0 and not shared and not user.param_refs()
            and user.v_leak is None and user.output is NeuronOutput.SPIKES):  # a potential output would change
        k = float(s[0])
        reset = user.reset
        if isinstance(reset, ops.HardReset):
            reset = ops.HardReset(v_reset=reset.v_reset / k)
        v_init = None if user.v_init is None else user.v_init / k
        g.replace_op(user.replace(inputs=(x,), v_threshold=user.v_threshold / k, reset=reset, v_init=v_init))
        return True
    return False


def _push_forward(g: Graph, sc: ops.Scale) -> bool:
    """Move sc past its single commuting user, merge it with a following Scale, or push it through Add."""
    users = g.users(sc.name)
    if len(users) != 1:
        return False
    u = users[0]
    s = _vector(g, sc)
    x = sc.inputs[0]
    if _is_scale(g, u):
        merged = _vector(g, u) * s  # broadcasts a plain factor over a per-channel vector
        g.replace_op(_make_scale(g, u.name, x, merged, u.loc))
        g.remove(sc.name)
        return True
    if isinstance(u, _COMMUTE) or isinstance(u, ops.Flatten):
        if isinstance(u, _NEEDS_POSITIVE) and not bool((s > 0).all()):
            return False
        s_after = s
        if isinstance(u, ops.Flatten) and not _is_scalar(s):
            f = g.type_of(x).features
            start, end = u.start_dim % len(f), u.end_dim % len(f)
            if start == 0:
                s_after = s.repeat_interleave(math.prod(f[1:end + 1]))
        g.replace_op(u.replace(inputs=(x,)))
        g.remove(sc.name)
        moved = _make_scale(g, g.fresh_name(f"{sc.name}_m"), u.name, s_after, sc.loc)
        g.insert_after(u.name, moved)
        g.replace_uses(u.name, moved.name, except_in=(moved.name,))
        return True
    if isinstance(u, ops.Add):
        other = g.nodes[u.inputs[1] if u.inputs[0] == sc.name else u.inputs[0]]
        if not _is_scale(g, other) or other.name == sc.name or len(g.users(other.name)) != 1:
            return False
        so = _vector(g, other)
        if so.shape != s.shape or not torch.equal(so, s):
            return False
        g.replace_op(u.replace(inputs=(x, other.inputs[0])))
        g.remove(sc.name)
        g.remove(other.name)
        moved = _make_scale(g, g.fresh_name(f"{u.name}_scale"), u.name, s, sc.loc)
        g.insert_after(u.name, moved)
        g.replace_uses(u.name, moved.name, except_in=(moved.name,))
        return True
    return False


def _fold_forward(g: Graph, sc: ops.Scale) -> bool:
    """Fold sc into those of its users that can absorb it; drop it when none is left."""
    s = _vector(g, sc)
    changed = False
    for u in g.users(sc.name):
        if _fold_into_user(g, sc, u, s):
            changed = True
    if changed and not g.users(sc.name):
        g.remove(sc.name)
    return changed


@register_pass("fold-scales")
def fold_scales(graph: Graph) -> Graph:
    """Fold Scale ops into neighbouring weights, biases and thresholds where the algebra is exact."""
    g = graph.copy()
    # 1. Scales right after a weighted layer go into its rows (keeps neuron thresholds as they are).
    for name in list(g.nodes):
        op = g.nodes.get(name)
        if _is_scale(g, op):
            _fold_back(g, op)
    # 2. The rest move forward until a layer or a neuron absorbs them, or they get stuck.
    for _ in range(len(g) ** 2 + 16):  # each step removes, merges or moves a Scale forward
        progress = False
        for name in list(g.nodes):
            op = g.nodes.get(name)
            if not _is_scale(g, op):
                continue
            if _is_scalar(_vector(g, op)) and _vector(g, op)[0] == 1.0:
                g.replace_uses(op.name, op.inputs[0])
                g.remove(op.name)
                progress = True
            elif _fold_back(g, op) or _distribute_over_add(g, op) or _fold_forward(g, op) or _push_forward(g, op):
                progress = True
                break  # the node list changed: rescan
        if not progress:
            break
    g.sort()
    g.drop_unused_params()
    return g
