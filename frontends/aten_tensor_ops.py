"""ATen lowerings (torch.export programs) of the tensor and layout ops (issues 18, 19; docs/ops.md).

Reshapes of any kind that keep the batch dim, permute/transpose, split/chunk
along a feature dim (one Slice per result), mean over feature dims, mul/sub/rsub/div/neg and add of a number, matmul of two values,
softmax, layer_norm, conv1d and avg_pool1d. Entries for
a packet snnc.frontends.aten_ops also lowers (view, mean, add, mm/matmul,
convolution) replace those and fall back to them.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.fx as fx

from snnc.core.errors import UnsupportedAttributeError, UnsupportedOpError
from snnc.frontends.aten_ops import _add, _cat, _convolution, _mean, _mm, _product, _split_lead
from snnc.frontends.const_operands import add_const, feature_const, scale_by_const
from snnc.frontends.export_lowering import _Const, _Ctx, _op_name, _Tuple, lowers
from snnc.frontends.fx_ops import merged_run
from snnc.frontends.fx_tensor_ops import split_sizes
from snnc.ir import ops
from snnc.ir.ops import SourceLoc

aten = torch.ops.aten


def _lead(ctx: _Ctx, x: str, src: Any = None) -> int:
    """How many leading (batch/time) dims the ATen value `src` (IR value x) has before its features: from the
    symbolic shape when snnc.trace captured the program ([T, N, *], or [T*N, *] inside a multi-step layer),
    else the IR layout's."""
    if ctx.symbolic_lead and isinstance(src, fx.Node):
        return ctx.lead(src)
    return ctx.type_of(x).layout.n_layout_dims


def _fdim(ctx: _Ctx, x: str, d: int, node: fx.Node, loc: SourceLoc, extra: int = 0) -> int:
    """Dim d of x (rank + extra) as a feature dim; the batch dim is refused by name."""
    lead = _lead(ctx, x, node.args[0] if node.args else None)
    rank = lead + len(ctx.type_of(x).features) + extra
    d = int(d) % rank
    if d < lead:
        raise UnsupportedAttributeError(f"{_op_name(node)} ('{node.name}') in {loc.describe()} works on "
                                        f"{'the time or batch dim' if lead > 1 else 'the batch dim'} (dim {d})",
                                        hint="snnc keeps the time and batch dims in place; use feature dims only "
                                             "(a mean over time is the rate the runtime's readout computes)")
    return d - lead


def _number(v: Any) -> float | None:
    """A python number, or a one-element constant, as a float; else None."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, _Const) and v.tensor.numel() == 1 and v.tensor.is_floating_point():
        return float(v.tensor.reshape(()))
    return None


def _fresh(ctx: _Ctx, node: fx.Node, suffix: str = "") -> str:
    return ctx.graph.fresh_name(node.name + suffix)


def _out_features(ctx: _Ctx, node: fx.Node, x_node: Any) -> tuple[int, ...] | None:
    """The features of node's result when its leading (batch/time) dims hold the same values as its input's
    (from the export metadata; merging [T, N] into [T*N] or splitting it back keeps them), else None."""
    if not isinstance(x_node, fx.Node) or x_node.meta.get("val") is None or node.meta.get("val") is None:
        return None
    try:
        src_lead, _ = _split_lead(ctx, x_node)
        out_lead, out_feats = _split_lead(ctx, node)
        if ctx.symbolic_lead:
            same = bool(out_lead) and _product(src_lead) == _product(out_lead)
        else:
            same = len(out_lead) >= 1 and str(out_lead[0]) == str(src_lead[0])
        return tuple(int(d) for d in out_feats) if same else None
    except (TypeError, ValueError):
        return None


@lowers(aten.view, aten.reshape, aten._unsafe_view, aten.flatten, aten.unsqueeze, aten.squeeze, aten.unflatten)
def _reshape_any(ctx, node, a, loc) -> str:
    """Any reshape that keeps the batch dim: a Flatten when it merges a run of features, else a Reshape."""
    x = ctx.tensor(a.get("self", a.get("input")), "input", node, loc)
    feats = tuple(ctx.type_of(x).features)
    new = _out_features(ctx, node, node.args[0])
    if new is None or math.prod(new) != math.prod(feats):
        raise UnsupportedOpError(f"{_op_name(node)} ('{node.name}') in {loc.describe()} moves or merges the batch "
                                 "dim", hint="keep the batch dim (x.size(0)) and reshape the features only")
    run = merged_run(feats, new)
    if run == (0, 0):
        return x
    if run is not None:
        return ctx.emit(ops.Flatten(name=_fresh(ctx, node), inputs=(x,), loc=loc, start_dim=run[0], end_dim=run[1]))
    return ctx.emit(ops.Reshape(name=_fresh(ctx, node), inputs=(x,), loc=loc, shape=new))


def _perm(ctx: _Ctx, node: fx.Node, x: str, dims: list[int], loc: SourceLoc) -> str:
    lead = _lead(ctx, x, node.args[0] if node.args else None)
    rank = lead + len(ctx.type_of(x).features)
    dims = [int(d) % rank for d in dims]
    if dims[:lead] != list(range(lead)):
        raise UnsupportedAttributeError(f"{_op_name(node)} ('{node.name}') in {loc.describe()} moves the batch dim",
                                        hint="permute feature dims only")
    perm = tuple(d - lead for d in dims[lead:])
    if perm == tuple(range(len(perm))):
        return x
    return ctx.emit(ops.Permute(name=_fresh(ctx, node), inputs=(x,), loc=loc, perm=perm))


@lowers(aten.permute)
def _permute(ctx, node, a, loc) -> str:
    return _perm(ctx, node, ctx.tensor(a["self"], "input", node, loc), list(a["dims"]), loc)


@lowers(aten.transpose, aten.swapaxes, aten.swapdims)
def _transpose(ctx, node, a, loc) -> str:
    x = ctx.tensor(a["self"], "input", node, loc)
    rank = _lead(ctx, x, node.args[0]) + len(ctx.type_of(x).features)
    d0, d1 = (int(a.get(k, a.get(k2))) % rank for k, k2 in (("dim0", "axis0"), ("dim1", "axis1")))
    dims = list(range(rank))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return _perm(ctx, node, x, dims, loc)


@lowers(aten.split, aten.split_with_sizes, aten.chunk, aten.unsafe_split, aten.unsafe_split_with_sizes)
def _split(ctx, node, a, loc) -> _Tuple:
    """split/chunk along a feature dim: one Slice per result (a whole-dim result is the input itself)."""
    x = ctx.tensor(a["self"], "input", node, loc)
    d = _fdim(ctx, x, a.get("dim", 0), node, loc)
    n = ctx.type_of(x).features[d]
    where = f"{_op_name(node)} ('{node.name}') in {loc.describe()}"
    sizes = split_sizes(n, a.get("split_size", a.get("split_sizes")), a.get("chunks"), where)
    out, start = [], 0
    for i, size in enumerate(sizes):
        if size == n:
            out.append(x)
        elif size:
            out.append(ctx.emit(ops.Slice(name=_fresh(ctx, node, f"_{i}"), inputs=(x,), loc=loc, dim=d,
                                          start=start, end=start + size)))
        else:
            out.append(None)  # an empty result: refused by name where it is used
        start += size
    return _Tuple(tuple(out), _op_name(node))


@lowers(aten.mean)
def _mean_any(ctx, node, a, loc) -> str:
    """Mean over feature dims: over H and W of [C, H, W] a global average pool, else a Mean."""
    x = ctx.tensor(a["self"], "input", node, loc)
    if not a.get("dim"):
        raise UnsupportedAttributeError(f"mean over all dims in {loc.describe()} averages over the batch",
                                        hint="name the feature dims, e.g. x.mean([2, 3])")
    feats = ctx.type_of(x).features
    if _over_time_only(ctx, x, node, a["dim"]):
        if a.get("keepdim"):
            raise UnsupportedAttributeError(f"mean over time with keepdim=True in {loc.describe()} keeps a time "
                                            "dim of size 1", hint="use x.mean(0)")
        y = ctx.emit(ops.TimeMean(name=_fresh(ctx, node), inputs=(x,), loc=loc))
        ctx.time_reduced.add(y)
        return y
    dims = tuple(sorted({_fdim(ctx, x, d, node, loc) for d in a["dim"]}))
    if len(feats) == 3 and dims == (1, 2):
        return _mean(ctx, node, a, loc)
    return ctx.emit(ops.Mean(name=_fresh(ctx, node), inputs=(x,), loc=loc, dims=dims, keepdim=bool(a.get("keepdim"))))


def _over_time_only(ctx: _Ctx, x: str, node: fx.Node, dims: Any) -> bool:
    """x.mean(0) on a [T, N, *] value: the mean over the time dim alone (an IR TimeMean)."""
    if not ctx.symbolic_lead or ctx.lead(node.args[0]) != 2 or not ctx.type_of(x).layout.has_time:
        return False
    rank = 2 + len(ctx.type_of(x).features)
    return {int(d) % rank for d in dims} == {0}


def _scale_by(ctx: _Ctx, node: fx.Node, x: str, factor: float, loc: SourceLoc, suffix: str = "") -> str:
    return ctx.emit(ops.Scale(name=_fresh(ctx, node, suffix), inputs=(x,), loc=loc, factor=factor))


def _shift(ctx: _Ctx, node: fx.Node, x: str, value: float, loc: SourceLoc) -> str:
    return ctx.emit(ops.AddScalar(name=_fresh(ctx, node), inputs=(x,), loc=loc, value=value))


@lowers(aten.mul, aten.mul_)
def _mul(ctx, node, a, loc) -> str:
    x, y = a["self"], a["other"]
    if _number(x) is not None and isinstance(y, str):
        x, y = y, x
    c = _number(y)
    if isinstance(x, str) and c is not None:
        return _scale_by(ctx, node, x, c, loc)
    if isinstance(x, _Const) and isinstance(y, str):
        x, y = y, x
    if isinstance(x, str) and isinstance(y, _Const):  # x * W, W a weight (ConvNeXt's layer scale): a Scale
        c = _feature_const(ctx, node, x, y, loc, "multiplies by")
        return scale_by_const(ctx.emit, _const_param(ctx, y, "mul"), _fresh(ctx, node), x, c,
                              tuple(ctx.type_of(x).features), loc)
    return ctx.emit(ops.Mul(name=_fresh(ctx, node), loc=loc, inputs=(ctx.tensor(x, "input", node, loc),
                                                                     ctx.tensor(y, "other", node, loc))))


def _const_param(ctx: _Ctx, w: _Const, tag: str):
    """A function adding the parameter made from weight `w` once per use kind."""
    return lambda t: ctx.param_once((w.tensor, tag), w.name, lambda: t)


def _feature_const(ctx: _Ctx, node: fx.Node, x: str, w: _Const, loc: SourceLoc, what: str) -> torch.Tensor:
    """Weight w as it broadcasts against value x (feature_const), or an error naming the op."""
    src = node.args[0] if node.args and isinstance(node.args[0], fx.Node) and ctx.values.get(node.args[0]) == x \
        else next((a for a in node.args if isinstance(a, fx.Node) and ctx.values.get(a) == x), None)
    c = feature_const(w.tensor, tuple(ctx.type_of(x).features), _lead(ctx, x, src))
    if c is None:
        raise UnsupportedAttributeError(
            f"{_op_name(node)} ('{node.name}') in {loc.describe()} {what} the weight '{w.name}' "
            f"{list(w.tensor.shape)}, which does not broadcast against the features {list(ctx.type_of(x).features)} "
            "or varies over the batch/time dims",
            hint="a weight of the features' shape, or with 1 in some dims (a per-channel [C, 1, 1]), is supported")
    return c


@lowers(aten.sub, aten.sub_)
def _sub(ctx, node, a, loc) -> str:
    if a.get("alpha", 1) != 1:
        raise UnsupportedAttributeError(f"sub with alpha={a['alpha']} in {loc.describe()} is not supported")
    x, y = a["self"], a["other"]
    if isinstance(x, str) and _number(y) is not None:
        return _shift(ctx, node, x, -_number(y), loc)
    if isinstance(y, str) and _number(x) is not None:
        return _shift(ctx, node, _scale_by(ctx, node, y, -1.0, loc, "_neg"), _number(x), loc)
    return ctx.emit(ops.Sub(name=_fresh(ctx, node), loc=loc, inputs=(ctx.tensor(x, "input", node, loc),
                                                                     ctx.tensor(y, "other", node, loc))))


@lowers(aten.rsub)
def _rsub(ctx, node, a, loc) -> str:
    """other - self (1 - x)."""
    if a.get("alpha", 1) != 1 or _number(a["other"]) is None:
        raise UnsupportedAttributeError(f"rsub in {loc.describe()} is supported with a constant and alpha=1 only")
    x = ctx.tensor(a["self"], "input", node, loc)
    return _shift(ctx, node, _scale_by(ctx, node, x, -1.0, loc, "_neg"), _number(a["other"]), loc)


@lowers(aten.add, aten.add_)
def _add_any(ctx, node, a, loc) -> str:
    """x + c with a number c is an AddScalar; the rest as before (two values, or a bias after x @ W)."""
    x, y = a["self"], a["other"]
    if isinstance(y, (int, float)) and not isinstance(y, bool) and isinstance(x, str) and a.get("alpha", 1) == 1:
        return _shift(ctx, node, x, float(y), loc)
    if isinstance(x, _Const) and isinstance(y, str):
        x, y = y, x
    if isinstance(x, str) and isinstance(y, _Const) and a.get("alpha", 1) == 1 and not _is_bias(ctx, x, y):
        c = _feature_const(ctx, node, x, y, loc, "adds")  # ViT's position embedding: an AddConst
        return add_const(ctx.emit, _const_param(ctx, y, "add"), _fresh(ctx, node), x, c, loc)
    return _add(ctx, node, a, loc)


def _is_bias(ctx: _Ctx, x: str, b: _Const) -> bool:
    """x @ W + b that aten_ops' _add folds into the bias-free Linear that made x."""
    prod = ctx.graph[x]
    return isinstance(prod, ops.Linear) and prod.bias is None and not ctx.graph.users(x) \
        and tuple(b.tensor.shape) == (ctx.graph.params[prod.weight].shape[0],)


@lowers(aten.div, aten.div_)
def _div(ctx, node, a, loc) -> str:
    c = _number(a["other"])
    if a.get("rounding_mode") is not None or not isinstance(a["self"], str) or not c:
        raise UnsupportedOpError(f"division in {loc.describe()} is not supported",
                                 hint="only a tensor divided by a nonzero constant is")
    return _scale_by(ctx, node, a["self"], 1.0 / c, loc)


@lowers(aten.neg)
def _neg(ctx, node, a, loc) -> str:
    return _scale_by(ctx, node, ctx.tensor(a["self"], "input", node, loc), -1.0, loc)


@lowers(aten.mm, aten.matmul, aten.bmm)
def _mm_any(ctx, node, a, loc) -> str:
    """x @ W with a weight is a Linear; x @ y of two values (per-sample matrices) is a MatMul."""
    x, y = a["self"], a.get("mat2", a.get("other"))
    if not isinstance(y, str):
        return _mm(ctx, node, a, loc)
    x = ctx.tensor(x, "input", node, loc)
    fx_, fy = ctx.type_of(x).features, ctx.type_of(y).features
    if len(fx_) < 2 or len(fy) < 2:
        raise UnsupportedAttributeError(f"{_op_name(node)} of features {list(fx_)} and {list(fy)} in "
                                        f"{loc.describe()} mixes samples of the batch",
                                        hint="both operands need a matrix [.., M, K] per sample")
    return ctx.emit(ops.MatMul(name=_fresh(ctx, node), inputs=(x, y), loc=loc))



@lowers(aten._softmax, aten.softmax)
def _softmax(ctx, node, a, loc) -> str:
    x = ctx.tensor(a["self"], "input", node, loc)
    if a.get("dtype") is not None or a.get("half_to_float"):
        raise UnsupportedAttributeError(f"softmax with a dtype change in {loc.describe()} is not supported")
    return ctx.emit(ops.Softmax(name=_fresh(ctx, node), inputs=(x,), loc=loc, dim=_fdim(ctx, x, a["dim"], node, loc)))


def _ln(ctx, node, a, loc) -> str:
    x = ctx.tensor(a["input"], "input", node, loc)
    return ctx.emit(ops.LayerNorm(name=_fresh(ctx, node), inputs=(x,), loc=loc,
                                  normalized_shape=tuple(int(d) for d in a["normalized_shape"]),
                                  weight=ctx.param(a["weight"], "weight", node, loc),
                                  bias=ctx.param(a["bias"], "bias", node, loc), eps=float(a["eps"])))


@lowers(aten.layer_norm)
def _layer_norm(ctx, node, a, loc) -> str:
    return _ln(ctx, node, a, loc)


@lowers(aten.native_layer_norm)
def _native_layer_norm(ctx, node, a, loc) -> _Tuple:
    return _Tuple((_ln(ctx, node, a, loc), None, None), "native_layer_norm")


def _conv1d_op(ctx, node, loc, x, w, b, stride, padding, dilation, groups) -> str:
    x = ctx.tensor(x, "input", node, loc)
    if isinstance(padding, str):
        if padding != "valid":
            raise UnsupportedAttributeError(f"conv1d with padding={padding!r} in {loc.describe()}",
                                            hint="pad explicitly")
        padding = [0]
    one = (lambda v: int(v[0]) if isinstance(v, (list, tuple)) else int(v))
    return ctx.emit(ops.Conv1d(name=_fresh(ctx, node), inputs=(x,), loc=loc, weight=ctx.param(w, "weight", node, loc),
                               bias=ctx.param(b, "bias", node, loc), stride=one(stride), padding=one(padding),
                               dilation=one(dilation), groups=int(groups)))


@lowers(aten.conv1d)
def _conv1d(ctx, node, a, loc) -> str:
    return _conv1d_op(ctx, node, loc, a["input"], a["weight"], a["bias"], a["stride"], a["padding"], a["dilation"],
                      a["groups"])


@lowers(aten.convolution)
def _convolution_any(ctx, node, a, loc) -> str:
    w = a["weight"]
    if isinstance(w, _Const) and w.tensor.dim() == 3 and not a["transposed"]:
        return _conv1d_op(ctx, node, loc, a["input"], w, a["bias"], a["stride"], a["padding"], a["dilation"],
                          a["groups"])
    return _convolution(ctx, node, a, loc)


@lowers(aten.avg_pool1d)
def _avg_pool1d(ctx, node, a, loc) -> str:
    one = (lambda v, d=None: d if (v is None or v == []) else int(v[0]) if isinstance(v, (list, tuple)) else int(v))
    k = one(a["kernel_size"])
    return ctx.emit(ops.AvgPool1d(name=_fresh(ctx, node), inputs=(ctx.tensor(a["self"], "input", node, loc),),
                                  loc=loc, kernel_size=k, stride=one(a["stride"], k), padding=one(a["padding"], 0),
                                  ceil_mode=bool(a["ceil_mode"]), count_include_pad=bool(a["count_include_pad"])))


@lowers(aten.expand)
def _expand(ctx, node, a, loc) -> str:
    """expand to the shape the value already has (decompositions write it before bmm) is the identity; a weight
    [1, *f] expanded over the batch (ViT's class token) is a Broadcast, which aten.cat makes a Constant."""
    w, sizes = a["self"], list(a["size"])
    if isinstance(w, _Const):
        t = w.tensor.detach()
        if t.dim() != len(sizes) or t.dim() < 2 or t.shape[0] != 1 or isinstance(sizes[0], int) \
                or any(s not in (-1, d) for s, d in zip(sizes[1:], t.shape[1:])):
            raise UnsupportedAttributeError(f"aten.expand ('{node.name}') of the weight '{w.name}' {list(t.shape)} "
                                            f"in {loc.describe()} is not supported",
                                            hint="only a weight [1, *features] expanded over the batch is")
        return Broadcast(w, t[0])
    x = ctx.tensor(a["self"], "input", node, loc)
    new = _out_features(ctx, node, node.args[0])
    if new != tuple(ctx.type_of(x).features):
        raise UnsupportedOpError(f"aten.expand ('{node.name}') in {loc.describe()} broadcasts features "
                                 f"{list(ctx.type_of(x).features)} to {list(new) if new else '?'}",
                                 hint="only an expand to the same shape is supported")
    return x


@lowers(aten.sum)
def _sum(ctx, node, a, loc) -> str:
    """Sum over feature dims (a spike count); a sum over all dims (or batch/time) is refused."""
    x = ctx.tensor(a["self"], "input", node, loc)
    if not a.get("dim") or a.get("dtype") is not None:
        raise UnsupportedAttributeError(f"sum over all dims (or with a dtype) in {loc.describe()} sums over the "
                                        "batch", hint="name the feature dims, e.g. x.sum(-1)")
    dims = tuple(sorted({_fdim(ctx, x, d, node, loc) for d in a["dim"]}))
    return ctx.emit(ops.Sum(name=_fresh(ctx, node), inputs=(x,), loc=loc, dims=dims, keepdim=bool(a.get("keepdim"))))


@lowers(aten.narrow)
def _narrow(ctx, node, a, loc) -> str:
    x = ctx.tensor(a["self"], "input", node, loc)
    d = _fdim(ctx, x, a["dim"], node, loc)
    size = ctx.type_of(x).features[d]
    start = int(a["start"]) % size
    return ctx.emit(ops.Slice(name=_fresh(ctx, node), inputs=(x,), loc=loc, dim=d, start=start,
                              end=start + int(a["length"])))


@lowers(aten.slice)
def _slice(ctx, node, a, loc) -> str:
    """x[..., start:end] along a feature dim (step 1); a slice of the whole dim is the identity."""
    x = ctx.tensor(a["self"], "input", node, loc)
    start, end = a.get("start"), a.get("end")
    lead = _lead(ctx, x, node.args[0] if node.args else None)
    if int(a.get("dim", 0)) % (lead + len(ctx.type_of(x).features)) < lead and start in (None, 0) \
            and (end is None or (isinstance(end, int) and end >= 2 ** 62)):
        return x  # x[:, ...]: the whole batch/time dim
    d = _fdim(ctx, x, a.get("dim", 0), node, loc)
    size = ctx.type_of(x).features[d]
    if int(a.get("step", 1)) != 1:
        raise UnsupportedAttributeError(f"a slice with step {a['step']} in {loc.describe()} is not supported",
                                        hint="only contiguous slices (step 1) are")
    start, end = (0 if start is None else int(start)), (size if end is None else int(end))
    start, end = (max(0, min(size, v + size if v < 0 else v)) for v in (start, end))
    if (start, end) == (0, size):
        return x
    if end <= start:
        raise UnsupportedAttributeError(f"an empty slice in {loc.describe()} is not supported")
    return ctx.emit(ops.Slice(name=_fresh(ctx, node), inputs=(x,), loc=loc, dim=d, start=start, end=end))


class Broadcast:
    """A weight expanded over the batch: the same features for every sample (a Constant once concatenated)."""

    def __init__(self, const: _Const, features: torch.Tensor):
        self.const, self.features = const, features


@lowers(aten.cat, aten.concat)
def _cat_any(ctx, node, a, loc) -> str:
    """cat of values, and of weights expanded over the batch (each a Constant: the same current at every step)."""
    parts = list(a["tensors"])
    if not any(isinstance(p, Broadcast) for p in parts):
        return _cat(ctx, node, a, loc)
    ref_i = next((i for i, p in enumerate(parts) if isinstance(p, str)), None)
    if ref_i is None:
        raise UnsupportedOpError(f"aten.cat of constants only in {loc.describe()} is not supported")
    ref = parts[ref_i]
    inputs = []
    for i, p in enumerate(parts):
        if isinstance(p, Broadcast):
            value = ctx.param_once(p.const.tensor, p.const.name, lambda p=p: p.features.contiguous().clone())
            inputs.append(ctx.emit(ops.Constant(name=_fresh(ctx, node, "_const"), inputs=(ref,), loc=loc,
                                                value=value)))
        else:
            inputs.append(ctx.tensor(p, "input", node, loc))
    src = node.args[0][ref_i] if isinstance(node.args[0], (list, tuple)) else None
    d = _fdim(ctx, ref, a["dim"], node if src is None else _with_first_arg(node, src), loc)
    return ctx.emit(ops.Concat(name=_fresh(ctx, node), inputs=tuple(inputs), loc=loc, dim=d))


def _with_first_arg(node: fx.Node, src: fx.Node):
    """A stand-in for node whose first argument is src (what _fdim reads the leading dims from)."""
    class _N:
        args = (src,)
        name = node.name
        target = node.target
    return _N()


@lowers(aten.select)
def _select(ctx, node, a, loc) -> str:
    """x[:, i] of a feature dim (ViT's class token): a one-element Slice, then a Reshape without that dim."""
    x = ctx.tensor(a["self"], "input", node, loc)
    d = _fdim(ctx, x, a["dim"], node, loc)
    feats = tuple(ctx.type_of(x).features)
    i = int(a["index"]) % feats[d]
    y = x if feats[d] == 1 else ctx.emit(ops.Slice(name=_fresh(ctx, node), inputs=(x,), loc=loc, dim=d, start=i,
                                                   end=i + 1))
    new = tuple(f for j, f in enumerate(feats) if j != d)
    run = merged_run(tuple(ctx.type_of(y).features), new)
    if run is not None:
        return ctx.emit(ops.Flatten(name=_fresh(ctx, node, "_squeeze"), inputs=(y,), loc=loc, start_dim=run[0],
                                    end_dim=run[1]))
    return ctx.emit(ops.Reshape(name=_fresh(ctx, node, "_squeeze"), inputs=(y,), loc=loc, shape=new))
