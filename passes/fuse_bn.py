"""fuse-bn: fold inference BatchNorm into the preceding Conv2d/Linear.

    W' = W * gamma / sqrt(var + eps)            (per output channel)
    b' = (b - mean) * gamma / sqrt(var + eps) + beta
"""

from __future__ import annotations

import torch
from torch import Tensor

from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.passes.manager import register_pass


def fuse_bn_weights(w: Tensor, b: Tensor | None, mean: Tensor, var: Tensor, eps: float,
                    gamma: Tensor | None, beta: Tensor | None) -> tuple[Tensor, Tensor]:
    """The fused (weight, bias) for `bn(layer(x))`, with the layer's output channels on dim 0 of w."""
    w64 = w.double()
    gamma = torch.ones_like(mean) if gamma is None else gamma
    beta = torch.zeros_like(mean) if beta is None else beta
    b = torch.zeros_like(mean) if b is None else b
    k = gamma.double() / torch.sqrt(var.double() + eps)
    w_new = w64 * k.view(-1, *([1] * (w.dim() - 1)))
    b_new = (b.double() - mean.double()) * k + beta.double()
    return w_new.to(w.dtype), b_new.to(w.dtype)


@register_pass("fuse-bn")
def fuse_bn(graph: Graph) -> Graph:
    """Fold BatchNorm into the Conv2d/Linear before it when the BatchNorm is its only user."""
    g = graph.copy()
    for name in list(g.nodes):
        op = g.nodes[name]  # fresh: an earlier fusion may have rewired its input
        if not isinstance(op, ops.BatchNorm):
            continue
        src = g.nodes.get(op.inputs[0])
        if not isinstance(src, (ops.Conv2d, ops.Linear)) or len(g.users(src.name)) != 1:
            continue
        if isinstance(src, ops.Linear) and len(g.type_of(src.name).features) != 1:
            continue  # BatchNorm1d over [C, L] normalizes C, not the linear's output features
        p = g.params
        w, b = fuse_bn_weights(p[src.weight], p.get(src.bias) if src.bias else None, p[op.running_mean],
                               p[op.running_var], op.eps, p.get(op.weight) if op.weight else None,
                               p.get(op.bias) if op.bias else None)
        wname = g.add_param(f"{src.weight}_bn", w)
        bname = g.add_param(f"{src.bias or src.weight.rsplit('.', 1)[0] + '.bias'}_bn", b)
        locs = src.loc
        g.replace_op(src.replace(weight=wname, bias=bname, loc=locs))
        g.replace_uses(op.name, src.name)
        g.remove(op.name)
    g.drop_unused_params()
    return g
