"""Lowerings of ATen ops (torch.export programs) to IR ops, one entry per op overload packet.

Each lowering gets the call's arguments bound by schema name (defaults filled
in), with graph values as IR value names and weights as `_Const`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.fx as fx

from snnc.core.errors import UnsupportedAttributeError, UnsupportedOpError
from snnc.frontends.fx_ops import merged_run, same_padding, warn_active_dropout
from snnc.frontends.export_lowering import _Const, _Ctx, _op_name, _packet, _Sym, _Tuple, lowers
from snnc.ir import ops
from snnc.ir.ops import SourceLoc

aten = torch.ops.aten


def _pair(v: Any, default: tuple[int, int] | None = None) -> tuple[int, int]:
    if v is None or (isinstance(v, (list, tuple)) and len(v) == 0):
        if default is None:
            raise ValueError("missing size")
        return default
    if isinstance(v, int):
        return int(v), int(v)
    v = list(v)
    return (int(v[0]), int(v[0])) if len(v) == 1 else (int(v[0]), int(v[1]))


# ---------------------------------------------------------------- lowerings
@lowers(aten.sym_size)
def _sym_size(ctx, node, a, loc) -> _Sym:
    return _Sym()


def _conv(ctx: _Ctx, node: fx.Node, loc: SourceLoc, x, w, b, stride, padding, dilation, groups) -> str:
    x = ctx.tensor(x, "input", node, loc)
    weight = ctx.param(w, "weight", node, loc)
    if w.tensor.dim() != 4:
        raise UnsupportedAttributeError(f"{_op_name(node)} in {loc.describe()} is a {w.tensor.dim() - 2}-D "
                                        "convolution; only Conv2d is supported")
    dil = _pair(dilation, (1, 1))
    if isinstance(padding, str):
        padding = (0, 0) if padding == "valid" else same_padding(tuple(w.tensor.shape[2:]), dil, loc.describe())
    return ctx.emit(ops.Conv2d(name=ctx.graph.fresh_name(node.name), inputs=(x,), loc=loc, weight=weight,
                               bias=ctx.param(b, "bias", node, loc), stride=_pair(stride, (1, 1)),
                               padding=_pair(padding, (0, 0)), dilation=dil, groups=int(groups)))


@lowers(aten.conv2d)
def _conv2d(ctx, node, a, loc) -> str:
    return _conv(ctx, node, loc, a["input"], a["weight"], a["bias"], a["stride"], a["padding"], a["dilation"],
                 a["groups"])


@lowers(aten.convolution)
def _convolution(ctx, node, a, loc) -> str:
    if a["transposed"]:
        raise UnsupportedAttributeError(f"a transposed convolution in {loc.describe()} is not supported")
    return _conv(ctx, node, loc, a["input"], a["weight"], a["bias"], a["stride"], a["padding"], a["dilation"],
                 a["groups"])


def _bn(ctx: _Ctx, node, loc, x, weight, bias, mean, var, eps) -> str:
    return ctx.emit(ops.BatchNorm(name=ctx.graph.fresh_name(node.name), inputs=(ctx.tensor(x, "input", node, loc),),
                                  loc=loc, running_mean=ctx.param(mean, "running_mean", node, loc),
                                  running_var=ctx.param(var, "running_var", node, loc),
                                  weight=ctx.param(weight, "weight", node, loc),
                                  bias=ctx.param(bias, "bias", node, loc), eps=float(eps)))


@lowers(aten.batch_norm)
def _batch_norm(ctx, node, a, loc) -> str:
    if a["training"]:
        raise UnsupportedAttributeError(f"batch_norm in {loc.describe()} uses batch statistics (training=True)",
                                        hint="export the model in eval mode: model.eval()")
    return _bn(ctx, node, loc, a["input"], a["weight"], a["bias"], a["running_mean"], a["running_var"], a["eps"])


@lowers(aten._native_batch_norm_legit_no_training)
def _bn_no_training(ctx, node, a, loc) -> _Tuple:
    y = _bn(ctx, node, loc, a["input"], a["weight"], a["bias"], a["running_mean"], a["running_var"], a["eps"])
    return _Tuple((y, None, None), "batch_norm")


@lowers(aten.native_batch_norm, aten._native_batch_norm_legit)
def _bn_training(ctx, node, a, loc):
    raise UnsupportedAttributeError(f"batch_norm in {loc.describe()} uses batch statistics (training mode)",
                                    hint="export the model in eval mode: model.eval()")


@lowers(aten.relu, aten.relu_)
def _relu(ctx, node, a, loc) -> str:
    return ctx.emit(ops.ReLU(name=ctx.graph.fresh_name(node.name), inputs=(ctx.tensor(a["self"], "input", node, loc),),
                             loc=loc))


_ACTIVATIONS = {aten.silu: ops.ActivationFn.SILU, aten.silu_: ops.ActivationFn.SILU,
                aten.sigmoid: ops.ActivationFn.SIGMOID, aten.sigmoid_: ops.ActivationFn.SIGMOID,
                aten.hardswish: ops.ActivationFn.HARDSWISH, aten.hardswish_: ops.ActivationFn.HARDSWISH,
                aten.hardsigmoid: ops.ActivationFn.HARDSIGMOID, aten.hardsigmoid_: ops.ActivationFn.HARDSIGMOID,
                aten.tanh: ops.ActivationFn.TANH, aten.tanh_: ops.ActivationFn.TANH}


@lowers(*_ACTIVATIONS)
def _activation(ctx, node, a, loc) -> str:
    """A non-ReLU activation (conversion runs it only as an analog op: `analog=`, docs/conversion.md)."""
    fn = _ACTIVATIONS[_packet(node.target)]
    return ctx.emit(ops.Activation(name=ctx.graph.fresh_name(node.name), fn=fn, loc=loc,
                                   inputs=(ctx.tensor(a["self"], "input", node, loc),)))


@lowers(aten.gelu, aten.gelu_)
def _gelu(ctx, node, a, loc) -> str:
    approximate = a.get("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise UnsupportedAttributeError(f"gelu in {loc.describe()} has approximate={approximate!r}")
    fn = ops.ActivationFn.GELU if approximate == "none" else ops.ActivationFn.GELU_TANH
    return ctx.emit(ops.Activation(name=ctx.graph.fresh_name(node.name), fn=fn, loc=loc,
                                   inputs=(ctx.tensor(a["self"], "input", node, loc),)))


def _bound(v: Any, what: str, node: fx.Node, loc: SourceLoc) -> float | None:
    if v is None or isinstance(v, (int, float)) and not isinstance(v, bool):
        return None if v is None else float(v)
    raise UnsupportedAttributeError(f"{_op_name(node)} in {loc.describe()} has a tensor {what} bound",
                                    hint="only bounds that are numbers are supported")


def _clamp(ctx: _Ctx, node: fx.Node, loc: SourceLoc, x, lo, hi) -> str:
    return ctx.emit(ops.Clamp(name=ctx.graph.fresh_name(node.name), inputs=(ctx.tensor(x, "input", node, loc),),
                              loc=loc, min=_bound(lo, "lower", node, loc), max=_bound(hi, "upper", node, loc)))


@lowers(aten.hardtanh, aten.hardtanh_)
def _hardtanh(ctx, node, a, loc) -> str:
    return _clamp(ctx, node, loc, a["self"], a["min_val"], a["max_val"])


@lowers(aten.relu6, aten.relu6_)
def _relu6(ctx, node, a, loc) -> str:
    return _clamp(ctx, node, loc, a["self"], 0.0, 6.0)


@lowers(aten.clamp, aten.clamp_, aten.clip, aten.clip_)
def _clamp_op(ctx, node, a, loc) -> str:
    return _clamp(ctx, node, loc, a["self"], a.get("min"), a.get("max"))


@lowers(aten.clamp_min, aten.clamp_min_)
def _clamp_min(ctx, node, a, loc) -> str:
    return _clamp(ctx, node, loc, a["self"], a["min"], None)


@lowers(aten.clamp_max, aten.clamp_max_)
def _clamp_max(ctx, node, a, loc) -> str:
    return _clamp(ctx, node, loc, a["self"], None, a["max"])


@lowers(aten.add, aten.add_)
def _add(ctx, node, a, loc) -> str:
    if a.get("alpha", 1) != 1:
        raise UnsupportedAttributeError(f"add with alpha={a['alpha']} in {loc.describe()} is not supported")
    x, y = a["self"], a["other"]
    if isinstance(y, _Const) and isinstance(x, str):
        return _bias_add(ctx, node, x, y, loc)
    if isinstance(x, _Const) and isinstance(y, str):
        return _bias_add(ctx, node, y, x, loc)
    return ctx.emit(ops.Add(name=ctx.graph.fresh_name(node.name), loc=loc,
                            inputs=(ctx.tensor(x, "input", node, loc), ctx.tensor(y, "other", node, loc))))


def _bias_add(ctx: _Ctx, node: fx.Node, x: str, b: _Const, loc: SourceLoc) -> str:
    """x @ W + b: fold the bias into the bias-free Linear that produced x."""
    prod = ctx.graph[x]
    if isinstance(prod, ops.Linear) and prod.bias is None and len(ctx.graph.users(x)) == 0 \
            and tuple(b.tensor.shape) == (ctx.graph.params[prod.weight].shape[0],):
        ctx.graph.replace_op(prod.replace(bias=ctx.param(b, "bias", node, loc)))
        return x
    raise UnsupportedOpError(f"adding a constant in {loc.describe()} is not supported",
                             hint="only a bias right after a matrix product (x @ W + b) is")


@lowers(aten.cat, aten.concat)
def _cat(ctx, node, a, loc) -> str:
    xs = [ctx.tensor(v, "input", node, loc) for v in a["tensors"]]
    lead = ctx.lead(node.args[0])
    rank = lead + len(ctx.type_of(xs[0]).features)
    d = int(a["dim"]) % rank - lead
    if d < 0:
        raise UnsupportedAttributeError(f"cat along the batch dim in {loc.describe()} is not supported")
    return ctx.emit(ops.Concat(name=ctx.graph.fresh_name(node.name), inputs=tuple(xs), loc=loc, dim=d))


def _pool_attrs(a: dict) -> dict:
    k = _pair(a["kernel_size"])
    return {"kernel_size": k, "stride": _pair(a["stride"], k), "padding": _pair(a["padding"], (0, 0)),
            "ceil_mode": bool(a["ceil_mode"])}


@lowers(aten.avg_pool2d)
def _avg_pool(ctx, node, a, loc) -> str:
    return ctx.emit(ops.AvgPool2d(name=ctx.graph.fresh_name(node.name), loc=loc,
                                  inputs=(ctx.tensor(a["self"], "input", node, loc),),
                                  count_include_pad=bool(a["count_include_pad"]),
                                  divisor_override=a["divisor_override"], **_pool_attrs(a)))


@lowers(aten.max_pool2d, aten.max_pool2d_with_indices)
def _max_pool(ctx, node, a, loc) -> Any:
    y = ctx.emit(ops.MaxPool2d(name=ctx.graph.fresh_name(node.name), loc=loc,
                               inputs=(ctx.tensor(a["self"], "input", node, loc),),
                               dilation=_pair(a["dilation"], (1, 1)), **_pool_attrs(a)))
    return _Tuple((y, None), "max_pool2d_with_indices") if _packet(node.target) is aten.max_pool2d_with_indices else y


@lowers(aten.adaptive_avg_pool2d, aten._adaptive_avg_pool2d)
def _adaptive(ctx, node, a, loc) -> str:
    x = ctx.tensor(a["self"], "input", node, loc)
    return ctx.emit(ops.AdaptiveAvgPool2d(name=ctx.graph.fresh_name(node.name), inputs=(x,), loc=loc,
                                          output_size=_pair(a["output_size"])))


@lowers(aten.mean)
def _mean(ctx, node, a, loc) -> str:
    """Mean over H and W (a global average pool), as decompositions write adaptive_avg_pool2d(1)."""
    x = ctx.tensor(a["self"], "input", node, loc)
    feats = ctx.type_of(x).features
    lead = ctx.lead(node.args[0])
    dims = sorted(int(d) % (lead + len(feats)) - lead for d in (a.get("dim") or []))
    if len(feats) != 3 or dims != [1, 2]:
        raise UnsupportedOpError(f"mean over dims {a.get('dim')} in {loc.describe()} is not supported",
                                 hint="only the mean over H and W of [N, C, H, W] (global average pooling) is")
    y = ctx.emit(ops.AdaptiveAvgPool2d(name=ctx.graph.fresh_name(node.name), inputs=(x,), loc=loc, output_size=(1, 1)))
    if a.get("keepdim"):
        return y
    return ctx.emit(ops.Flatten(name=ctx.graph.fresh_name(f"{node.name}_flat"), inputs=(y,), loc=loc,
                                start_dim=0, end_dim=-1))


@lowers(aten.flatten)
def _flatten(ctx, node, a, loc) -> str:
    return _reshape(ctx, node, a, loc)


def _split_lead(ctx: _Ctx, node: Any) -> tuple[tuple, tuple]:
    shape = tuple(node.meta["val"].shape)
    lead = ctx.lead(node)
    return shape[:lead], shape[lead:]


def _product(dims: tuple) -> Any:
    """The product of symbolic sizes as one expression (T*N == N*T)."""
    out = 1
    for d in dims:
        out = out * (d.node.expr if isinstance(d, torch.SymInt) else d)
    return out


@lowers(aten.view, aten.reshape, aten._unsafe_view, aten.unflatten)
def _reshape(ctx, node, a, loc) -> str:
    """A reshape that keeps the batch/time dims and merges a run of feature dims is a Flatten (shapes from
    metadata). Merging [T, N] into [T*N] or splitting it back changes only how torch sees the value."""
    x = ctx.tensor(a.get("self", a.get("input")), "input", node, loc)
    src = node.args[0] if isinstance(node.args[0], fx.Node) else None
    feats = tuple(ctx.type_of(x).features)
    new = None
    if src is not None and src.meta.get("val") is not None and node.meta.get("val") is not None:
        src_lead, _ = _split_lead(ctx, src)
        out_lead, out_feats = _split_lead(ctx, node)
        try:
            if ctx.symbolic_lead:
                same_lead = out_lead and _product(src_lead) == _product(out_lead)
            else:
                same_lead = len(out_lead) >= 1 and str(out_lead[0]) == str(src_lead[0])
            new = tuple(int(d) for d in out_feats) if same_lead else None
        except (TypeError, ValueError):
            new = None
    run = merged_run(feats, new) if new is not None else None
    if run is None:
        out = node.meta.get("val")
        raise UnsupportedOpError(f"{_op_name(node)} ('{node.name}') in {loc.describe()} changes the shape "
                                 f"{list(feats)} -> {list(out.shape[ctx.lead(node):]) if out is not None else '?'} "
                                 "(batch/time dims left out) in a way snnc cannot represent",
                                 hint="only flattening feature dims, and merging or splitting the leading "
                                      "[T, N] dims, is supported")
    if run == (0, 0):
        return x
    return ctx.emit(ops.Flatten(name=ctx.graph.fresh_name(node.name), inputs=(x,), loc=loc,
                                start_dim=run[0], end_dim=run[1]))


@lowers(aten.linear)
def _linear(ctx, node, a, loc) -> str:
    x = ctx.tensor(a["input"], "input", node, loc)
    return ctx.emit(ops.Linear(name=ctx.graph.fresh_name(node.name), inputs=(x,), loc=loc,
                               weight=ctx.param(a["weight"], "weight", node, loc),
                               bias=ctx.param(a["bias"], "bias", node, loc)))


def _transposed(ctx: _Ctx, w: Any, node: fx.Node, loc: SourceLoc) -> _Const:
    if not isinstance(w, _Const) or w.tensor.dim() != 2:
        raise UnsupportedAttributeError(f"{_op_name(node)} in {loc.describe()} multiplies by a non-constant "
                                        "or non-2-D matrix", hint="only x @ W with a weight matrix W is supported")
    return _Const(w.tensor.t().contiguous(), w.name)


@lowers(aten.addmm)
def _addmm(ctx, node, a, loc) -> str:
    if a.get("beta", 1) != 1 or a.get("alpha", 1) != 1:
        raise UnsupportedAttributeError(f"addmm with alpha/beta != 1 in {loc.describe()} is not supported")
    x = ctx.tensor(a["mat1"], "input", node, loc)
    return ctx.emit(ops.Linear(name=ctx.graph.fresh_name(node.name), inputs=(x,), loc=loc,
                               weight=ctx.param(_transposed(ctx, a["mat2"], node, loc), "weight", node, loc),
                               bias=ctx.param(a["self"], "bias", node, loc)))


@lowers(aten.mm, aten.matmul)
def _mm(ctx, node, a, loc) -> str:
    x = ctx.tensor(a["self"], "input", node, loc)
    return ctx.emit(ops.Linear(name=ctx.graph.fresh_name(node.name), inputs=(x,), loc=loc,
                               weight=ctx.param(_transposed(ctx, a.get("mat2", a.get("other")), node, loc), "weight",
                                                node, loc)))


@lowers(aten.clone, aten.alias, aten.detach, aten.contiguous, aten.lift_fresh_copy)
def _identity(ctx, node, a, loc) -> str:
    return ctx.tensor(a.get("input", a.get("self")), "input", node, loc)


def _eval_dropout(a, loc) -> None:
    """Dropout is the identity in snnc; one that ran in training mode is said to change."""
    if a.get("train") and a.get("p") != 0:
        warn_active_dropout(loc.describe(), a.get("p"), "export the model in eval mode (model.eval()), with "
                            "training=self.training in any F.dropout call")


@lowers(aten.dropout, aten.dropout_)
def _dropout(ctx, node, a, loc) -> str:
    _eval_dropout(a, loc)
    return ctx.tensor(a.get("input", a.get("self")), "input", node, loc)


@lowers(aten.native_dropout)
def _native_dropout(ctx, node, a, loc) -> _Tuple:
    _eval_dropout(a, loc)
    return _Tuple((ctx.tensor(a["input"], "input", node, loc), None), "native_dropout")
