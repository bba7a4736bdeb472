"""torch.fx lowerings of the tensor and layout ops real models use (issues 18, 19; docs/ops.md).

Arithmetic (mul, sub, add of a number, div by a constant, matmul of two values
or by a weight parameter), transpose/permute, general view/reshape, chunk/split
along a feature dim (one Slice per part, indexed or unpacked), slices x[..., a:b] of a
feature dim, unsqueeze/squeeze, mean, sum, and a weight expanded over the batch
and concatenated (ViT's class token). Dims in user code count the leading batch/time
dims (ctx.lead); IR ops take feature dims only, and any use of a batch/time dim is
refused by name. Entries registered here for a function that snnc.frontends.fx_ops
also lowers (operator.add, view/reshape) replace those, handling more cases.
The 1-D ops, softmax, LayerNorm and nn.MultiheadAttention are
snnc.frontends.fx_sequence_ops's, which uses the helpers here.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import torch
import torch.fx as fx

from snnc.core.errors import UnsupportedAttributeError, UnsupportedOpError
from snnc.frontends.const_operands import add_const, feature_const, scale_by_const
from snnc.frontends.fx_lowering import Attr, FoldsLeadDims, _Ctx, lowers_function, lowers_method
from snnc.frontends.fx_ops import _arg, _f_add, _f_cat, _f_getitem, _LeadDim, _Shape, flatten_op, merged_run
from snnc.ir import ops
from snnc.ir.ops import SourceLoc


# Dims in user code count the leading batch/time dims (ctx.lead); IR ops take feature dims only, and
# any use of a batch/time dim is refused by name.
def _operand(ctx: _Ctx, arg: Any) -> Any:
    """An argument as a value: an IR value name, a python number, or a shape marker. A 0-dim floating
    tensor attribute of the model (SNASNet's `self.scale = torch.tensor(0.0)`) is the number it holds."""
    v = ctx.values.get(arg) if isinstance(arg, fx.Node) else arg
    if isinstance(v, Attr) and isinstance(v.tensor, torch.Tensor) and v.tensor.dim() == 0 \
            and v.tensor.is_floating_point():
        return float(v.tensor.detach().reshape(()))
    return v


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _feature_dim(ctx: _Ctx, x: str, d: int, loc: SourceLoc, what: str, extra: int = 0) -> int:
    """User dim d of x (rank + extra, for unsqueeze) as a feature dim; the batch/time dims are refused."""
    lead = ctx.lead(x)
    rank = lead + len(ctx.type_of(x).features) + extra
    if not -rank <= int(d) < rank:
        raise UnsupportedAttributeError(f"{what} dim {d} is out of range for a rank-{rank} tensor in {loc.describe()}")
    d = int(d) % rank
    if d < lead:
        raise UnsupportedAttributeError(
            f"{what} over dim {d} in {loc.describe()} touches the {'time' if lead == 2 and d == 0 else 'batch'} dim",
            hint="snnc keeps batch and time in place; index feature dims only "
                 f"(from dim {lead} on this [{'T, N' if lead == 2 else 'N'}, *] tensor)")
    return d - lead


def _scale(ctx: _Ctx, x: str, factor: float, name: str, loc: SourceLoc) -> str:
    return ctx.emit(ops.Scale(name=ctx.fresh(name), inputs=(x,), loc=loc, factor=float(factor)))


def _add_scalar(ctx: _Ctx, x: str, value: float, name: str, loc: SourceLoc) -> str:
    return ctx.emit(ops.AddScalar(name=ctx.fresh(name), inputs=(x,), loc=loc, value=float(value)))


def _shape_arith(node: fx.Node, a: Any, b: Any, loc: SourceLoc) -> Any:
    """Python arithmetic on sizes (channels // groups); a batch/time size is refused (it would fold dims)."""
    if isinstance(a, _LeadDim) or isinstance(b, _LeadDim):
        raise FoldsLeadDims(f"arithmetic on the batch/time size ({_fname(node)}) in {loc.describe()} "
                            "is not supported", hint="reshapes that fold batch or time into other dims "
                                                     "cannot be represented; keep x.size(0) (and T) as they are")
    if not all(_is_number(v) for v in (a, b)):
        raise UnsupportedOpError(f"{_fname(node)} of {a!r} and {b!r} in {loc.describe()} is not supported")
    return _PY_OPS.get(node.target, node.target)(a, b)


_PY_OPS = {torch.mul: operator.mul, torch.add: operator.add, torch.sub: operator.sub, torch.div: operator.truediv,
           torch.true_divide: operator.truediv}


def _fname(node: fx.Node) -> str:
    return getattr(node.target, "__name__", str(node.target))


@lowers_function(operator.mul, operator.imul, torch.mul)
def _f_mul(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> Any:
    """x * y of two tensors (Mul: SEW-ResNet's AND), a tensor and a number (Scale), or two sizes."""
    a, b = (_operand(ctx, v) for v in node.args[:2])
    if not isinstance(a, str) and not isinstance(b, str):
        return _shape_arith(node, a, b, loc)
    if _is_number(a) or _is_number(b):
        k, x = _number_and_value(ctx, node, a, b, loc)
        return _scale(ctx, x, k, node.name, loc)
    if isinstance(a, Attr) or isinstance(b, Attr):  # x * W, W a weight (ConvNeXt's layer scale): a Scale
        w, x, c = _weight_and_value(ctx, node, a, b, loc, "multiplies by")
        return scale_by_const(ctx.emit, _const_param(ctx, w, "mul"), ctx.fresh(node.name), x, c,
                              tuple(ctx.type_of(x).features), loc)
    x, y = ctx.value(node.args[0], node, loc), ctx.value(node.args[1], node, loc)
    return ctx.emit(ops.Mul(name=ctx.fresh(node.name), inputs=(x, y), loc=loc))


def _number_and_value(ctx: _Ctx, node: fx.Node, a: Any, b: Any, loc: SourceLoc) -> tuple[Any, str]:
    """The number and the value of `x op k` or `k op x` (a, b: the operands; one of them a number)."""
    k, x = (a, node.args[1]) if _is_number(a) else (b, node.args[0])
    return k, ctx.value(x, node, loc)


def _weight_and_value(ctx: _Ctx, node: fx.Node, a: Any, b: Any, loc: SourceLoc,
                      what: str) -> tuple[Attr, str, torch.Tensor]:
    """The weight W, the value x and W as it broadcasts against x (_feature_const) of `x op W` or `W op x`
    (a, b: the operands; one of them a weight)."""
    w, x = (a, node.args[1]) if isinstance(a, Attr) else (b, node.args[0])
    x = ctx.value(x, node, loc)
    return w, x, _feature_const(ctx, x, w, node, loc, what)


def _const_param(ctx: _Ctx, w: Attr, tag: str):
    """A function adding the parameter made from weight `w` once (a weight used twice is one parameter)."""
    def param(t: torch.Tensor) -> str:
        key = (id(w.tensor), tag)
        if key not in ctx.param_cache:
            ctx.param_cache[key] = ctx.graph.add_param(w.path, t)
        return ctx.param_cache[key]
    return param


def _feature_const(ctx: _Ctx, x: str, w: Attr, node: fx.Node, loc: SourceLoc, what: str) -> torch.Tensor:
    """Weight w as it broadcasts against value x (feature_const), or an error naming the op."""
    t = w.tensor if isinstance(w.tensor, torch.Tensor) else None
    c = None if t is None else feature_const(t, tuple(ctx.type_of(x).features), ctx.lead(x))
    if c is None:
        shape = list(t.shape) if t is not None else type(w.tensor).__name__
        raise UnsupportedAttributeError(
            f"'{node.name}' in {loc.describe()} {what} the weight '{w.path}' {shape}, which does not broadcast "
            f"against the features {list(ctx.type_of(x).features)} or varies over the batch/time dims",
            hint="a weight of the features' shape, or with 1 in some dims (a per-channel [C, 1, 1]), is supported")
    return c


@lowers_function(operator.sub, operator.isub, torch.sub)
def _f_sub(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> Any:
    if node.kwargs.get("alpha", 1) != 1:
        raise UnsupportedAttributeError(f"torch.sub with alpha in {loc.describe()} is not supported")
    a, b = (_operand(ctx, v) for v in node.args[:2])
    if not isinstance(a, str) and not isinstance(b, str):
        return _shape_arith(node, a, b, loc)
    if _is_number(b):
        return _add_scalar(ctx, ctx.value(node.args[0], node, loc), -b, node.name, loc)
    if _is_number(a):  # c - x (SEW-ResNet's IAND: x * (1 - y))
        neg = _scale(ctx, ctx.value(node.args[1], node, loc), -1.0, f"{node.name}_neg", loc)
        return _add_scalar(ctx, neg, a, node.name, loc)
    x, y = ctx.value(node.args[0], node, loc), ctx.value(node.args[1], node, loc)
    return ctx.emit(ops.Sub(name=ctx.fresh(node.name), inputs=(x, y), loc=loc))


@lowers_function(torch.rsub)
def _f_rsub(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> Any:
    x, c = ctx.value(node.args[0], node, loc), _operand(ctx, node.args[1])
    if not _is_number(c):
        raise UnsupportedAttributeError(f"torch.rsub of two tensors in {loc.describe()}", hint="write b - a")
    return _add_scalar(ctx, _scale(ctx, x, -1.0, f"{node.name}_neg", loc), c, node.name, loc)


@lowers_function(operator.add, operator.iadd, torch.add)
def _f_add_any(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> Any:
    """x + y of two tensors (Add), a tensor and a number (AddScalar), or two sizes."""
    a, b = (_operand(ctx, v) for v in node.args[:2])
    if not isinstance(a, str) and not isinstance(b, str):
        return _shape_arith(node, a, b, loc)
    if _is_number(a) or _is_number(b):
        if node.kwargs.get("alpha", 1) != 1:
            raise UnsupportedAttributeError(f"torch.add with alpha in {loc.describe()} is not supported")
        k, x = _number_and_value(ctx, node, a, b, loc)
        return _add_scalar(ctx, x, k, node.name, loc)
    if (isinstance(a, Attr) or isinstance(b, Attr)) and node.kwargs.get("alpha", 1) == 1:
        w, x, c = _weight_and_value(ctx, node, a, b, loc, "adds")  # ViT's position embedding
        return add_const(ctx.emit, _const_param(ctx, w, "add"), ctx.fresh(node.name), x, c, loc)
    return _f_add(ctx, node, loc)


@lowers_function(operator.truediv, operator.itruediv, torch.div, torch.true_divide)
def _f_div(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> Any:
    a, b = (_operand(ctx, v) for v in node.args[:2])
    if not isinstance(a, str) and not isinstance(b, str):
        return _shape_arith(node, a, b, loc)
    if node.kwargs.get("rounding_mode") is not None or not isinstance(a, str) or not _is_number(b) or b == 0:
        raise UnsupportedOpError(f"division in {loc.describe()} is not supported",
                                 hint="only a tensor divided by a nonzero constant is")
    return _scale(ctx, a, 1.0 / b, node.name, loc)


@lowers_function(operator.floordiv, operator.mod)
def _f_size_arith(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> Any:
    a, b = (_operand(ctx, v) for v in node.args[:2])
    if isinstance(a, str) or isinstance(b, str):
        raise UnsupportedOpError(f"{_fname(node)} of a tensor in {loc.describe()} is not supported")
    return _shape_arith(node, a, b, loc)


@lowers_function(operator.neg, torch.neg)
def _f_neg(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    return _scale(ctx, ctx.value(node.args[0], node, loc), -1.0, node.name, loc)


@lowers_function(operator.matmul, torch.matmul, torch.bmm)
def _f_matmul(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    w = _operand(ctx, node.args[1])
    if isinstance(w, Attr) and isinstance(w.tensor, torch.Tensor) and w.tensor.dim() == 2:
        x = ctx.value(node.args[0], node, loc)  # x @ W with a weight: a Linear with W^T
        key = (id(w.tensor), "@T")  # a weight used twice is one parameter
        if key not in ctx.param_cache:
            ctx.param_cache[key] = ctx.graph.add_param(f"{w.path}.T", w.tensor.detach().t().contiguous().clone())
        weight = ctx.param_cache[key]
        return ctx.emit(ops.Linear(name=ctx.fresh(node.name), inputs=(x,), loc=loc, weight=weight))
    x, y = ctx.value(node.args[0], node, loc), ctx.value(node.args[1], node, loc)
    fx_, fy = ctx.type_of(x).features, ctx.type_of(y).features
    if len(fx_) < 2 or len(fy) < 2:
        raise UnsupportedAttributeError(f"matmul of features {list(fx_)} and {list(fy)} in {loc.describe()}",
                                        hint="both operands need a matrix [.., M, K] per sample; a product by a "
                                             "weight is nn.Linear")
    return ctx.emit(ops.MatMul(name=ctx.fresh(node.name), inputs=(x, y), loc=loc))


def _permute(ctx: _Ctx, x: str, dims: list[int], node: fx.Node, loc: SourceLoc) -> str:
    lead = ctx.lead(x)
    rank = lead + len(ctx.type_of(x).features)
    if sorted(int(d) % rank for d in dims) != list(range(rank)) or len(dims) != rank:
        raise UnsupportedAttributeError(f"permute{tuple(dims)} in {loc.describe()} is no permutation of "
                                        f"{rank} dims")
    dims = [int(d) % rank for d in dims]
    if dims[:lead] != list(range(lead)):
        raise UnsupportedAttributeError(f"permute{tuple(dims)} in {loc.describe()} moves the batch/time dims",
                                        hint="snnc keeps batch and time in place; permute feature dims only")
    perm = tuple(d - lead for d in dims[lead:])
    if perm == tuple(range(len(perm))):
        return x
    return ctx.emit(ops.Permute(name=ctx.fresh(node.name), inputs=(x,), loc=loc, perm=perm))


@lowers_function(torch.transpose, torch.swapaxes)
def _f_transpose(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    x = ctx.value(node.args[0], node, loc)
    d0, d1 = int(_arg(node, 1, "dim0")), int(_arg(node, 2, "dim1"))
    rank = ctx.lead(x) + len(ctx.type_of(x).features)
    dims = list(range(rank))
    dims[d0 % rank], dims[d1 % rank] = dims[d1 % rank], dims[d0 % rank]
    return _permute(ctx, x, dims, node, loc)


@lowers_function(torch.permute)
def _f_permute(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    return _permute(ctx, ctx.value(node.args[0], node, loc), list(_arg(node, 1, "dims")), node, loc)


def _reshape_to(ctx: _Ctx, x: str, new: tuple[int, ...], name: str, loc: SourceLoc) -> str:
    """Features of x -> `new`: a Flatten where it merges a run of dims, else a Reshape."""
    run = merged_run(tuple(ctx.type_of(x).features), new)
    lead = ctx.lead(x)
    if run is not None:
        return flatten_op(ctx, x, run[0] + lead, run[1] + lead, name, loc, lead)
    return ctx.emit(ops.Reshape(name=ctx.fresh(name), inputs=(x,), loc=loc, shape=tuple(new)))


def _view(ctx: _Ctx, node: fx.Node, x: str, dims: list, loc: SourceLoc) -> str:
    dims = [_operand(ctx, d) for d in dims]
    if len(dims) == 1 and isinstance(dims[0], _Shape) and dims[0].lead == ctx.lead(x):
        # x.reshape(y.shape) of a y with the same batch/time dims: y's features
        return _reshape_to(ctx, x, tuple(ctx.type_of(dims[0].value).features), node.name, loc)
    lead = ctx.lead(x)
    feats = ctx.type_of(x).features
    bad = FoldsLeadDims(
        f".{getattr(node.target, '__name__', node.target)}{tuple(dims)} in {loc.describe()} moves or merges the "
        "batch/time dims", hint=f"keep the leading {'[T, N]' if lead == 2 else 'batch'} dims as x.size(i) and "
                                "reshape the features only, e.g. x.view(x.size(0), groups, -1, h, w)")
    if len(dims) < lead or any(dims[i] != _LeadDim(i) for i in range(lead)):
        raise bad
    new = dims[lead:]
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in new) or sum(d == -1 for d in new) > 1:
        raise bad
    if -1 in new:
        known = math.prod(d for d in new if d != -1)
        if not known or math.prod(feats) % known:
            raise UnsupportedAttributeError(f"view{tuple(dims)} in {loc.describe()} does not fit features "
                                            f"{list(feats)}")
        new[new.index(-1)] = math.prod(feats) // known
    if math.prod(new) != math.prod(feats) or any(d < 1 for d in new):
        raise UnsupportedAttributeError(f"view{tuple(dims)} in {loc.describe()} does not fit features {list(feats)}")
    return _reshape_to(ctx, x, tuple(new), node.name, loc)


@lowers_method("view", "reshape")
def _m_view_any(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    """x.view(...) keeping the batch/time dims: a Flatten when it merges a run of features, else a Reshape."""
    x = ctx.value(node.args[0], node, loc)
    dims = list(node.args[1:]) or list(_arg(node, 1, "shape", ()))
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = list(dims[0])
    return _view(ctx, node, x, dims, loc)


@lowers_function(torch.reshape)
def _f_reshape(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    return _view(ctx, node, ctx.value(node.args[0], node, loc), list(_arg(node, 1, "shape")), loc)


@lowers_function(torch.unsqueeze)
def _f_unsqueeze(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    x = ctx.value(node.args[0], node, loc)
    d = _feature_dim(ctx, x, int(_arg(node, 1, "dim")), loc, "unsqueeze", extra=1)
    f = list(ctx.type_of(x).features)
    return _reshape_to(ctx, x, tuple(f[:d] + [1] + f[d:]), node.name, loc)


@lowers_function(torch.squeeze)
def _f_squeeze(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    x = ctx.value(node.args[0], node, loc)
    dim = _arg(node, 1, "dim")
    if dim is None:
        raise UnsupportedAttributeError(f"squeeze() without a dim in {loc.describe()} would also drop a batch or "
                                        "time dim of size 1", hint="name the dims: x.squeeze(d)")
    f = list(ctx.type_of(x).features)
    ds = {_feature_dim(ctx, x, int(d), loc, "squeeze") for d in (dim if isinstance(dim, (tuple, list)) else [dim])}
    return _reshape_to(ctx, x, tuple(s for i, s in enumerate(f) if not (i in ds and s == 1)), node.name, loc)


@lowers_function(torch.mean)
def _f_mean(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    x = ctx.value(node.args[0], node, loc)
    dim = _arg(node, 1, "dim")
    if dim is None or node.kwargs.get("dtype") is not None:
        raise UnsupportedAttributeError(f"mean without dims in {loc.describe()} averages over the batch/time dims",
                                        hint="name the feature dims, e.g. x.mean([2, 3]) for global average pooling")
    dims = dim if isinstance(dim, (tuple, list)) else [dim]
    lead = ctx.lead(x)
    if lead == 2 and not ctx.per_step and {int(d) % (lead + len(ctx.type_of(x).features)) for d in dims} == {0}:
        if _arg(node, 2, "keepdim", False):  # x.mean(0) of [T, N, *]: the mean over time, step by step
            raise UnsupportedAttributeError(f"mean over time with keepdim=True in {loc.describe()} keeps a time "
                                            "dim of size 1", hint="use x.mean(0)")
        y = ctx.emit(ops.TimeMean(name=ctx.fresh(node.name), inputs=(x,), loc=loc))
        ctx.time_reduced.add(y)
        return y
    dims = tuple(sorted({_feature_dim(ctx, x, int(d), loc, "mean") for d in dims}))
    return ctx.emit(ops.Mean(name=ctx.fresh(node.name), inputs=(x,), loc=loc, dims=dims,
                             keepdim=bool(_arg(node, 2, "keepdim", False))))


@lowers_function(torch.sum)
def _f_sum(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    x = ctx.value(node.args[0], node, loc)
    dim = _arg(node, 1, "dim")
    if dim is None or node.kwargs.get("dtype") is not None:
        raise UnsupportedAttributeError(f"sum without dims in {loc.describe()} sums over the batch/time dims",
                                        hint="name the feature dims, e.g. x.sum(-1)")
    dims = tuple(sorted({_feature_dim(ctx, x, int(d), loc, "sum")
                         for d in (dim if isinstance(dim, (tuple, list)) else [dim])}))
    return ctx.emit(ops.Sum(name=ctx.fresh(node.name), inputs=(x,), loc=loc, dims=dims,
                            keepdim=bool(_arg(node, 2, "keepdim", False))))


def _slices(ctx: _Ctx, node: fx.Node, x: str, index: Any, loc: SourceLoc) -> str:
    """x[:, :, a:b, ...]: contiguous slices of feature dims (one Slice each); batch/time dims stay whole."""
    index = index if isinstance(index, tuple) else (index,)
    ints = [d for d, i in enumerate(index) if isinstance(i, int) and not isinstance(i, bool)]
    if ints:  # x[:, 0] (ViT's class token): a one-element Slice, then a Reshape without that dim
        if not all(isinstance(i, slice) or d in ints for d, i in enumerate(index)):
            raise UnsupportedOpError(f"indexing {index!r} in {loc.describe()} is not supported")
        sliced = tuple(slice(i, i + 1 if i != -1 else None) if d in ints else i for d, i in enumerate(index))
        y = _slices(ctx, node, x, sliced, loc)
        fds = {_feature_dim(ctx, x, d, loc, "index") for d in ints}
        return _reshape_to(ctx, y, tuple(s for i, s in enumerate(ctx.type_of(y).features) if i not in fds),
                           f"{node.name}_squeeze", loc)
    if not all(isinstance(i, slice) for i in index) or any(i.step not in (None, 1) for i in index):
        raise UnsupportedOpError(f"indexing {index!r} in {loc.describe()} is not supported",
                                 hint="only x.shape[i], contiguous slices of feature dims (x[:, :, a:b]) and an "
                                      "index of a feature dim (x[:, 0]) are")
    for d, sl in enumerate(index):
        if sl == slice(None):
            continue
        fd = _feature_dim(ctx, x, d, loc, "slice")
        size = ctx.type_of(x).features[fd]
        start, stop, _ = sl.indices(size)
        if stop <= start:
            raise UnsupportedAttributeError(f"an empty slice {sl} in {loc.describe()} is not supported")
        if (start, stop) != (0, size):
            x = ctx.emit(ops.Slice(name=ctx.fresh(node.name), inputs=(x,), loc=loc, dim=fd, start=start,
                                   end=stop))
    return x


def split_sizes(n: int, sizes: Any, chunks: int | None, where: str) -> list[int]:
    """The part sizes of a dim of n: torch.chunk's (`chunks` parts of ceil(n / chunks), fewer when they run
    out) or torch.split's (`sizes` an int: parts of that size, the last smaller; a list: those sizes)."""
    if chunks is not None:
        if int(chunks) < 1:
            raise UnsupportedAttributeError(f"chunk into {chunks} parts in {where}")
        step = -(-n // int(chunks))
        return [min(step, n - i) for i in range(0, n, step)]
    if isinstance(sizes, int) and not isinstance(sizes, bool):
        if sizes < 1:
            raise UnsupportedAttributeError(f"split into parts of {sizes} in {where}")
        return [min(sizes, n - i) for i in range(0, n, sizes)]
    sizes = [int(v) for v in sizes]
    if sum(sizes) != n or any(v < 0 for v in sizes):
        raise UnsupportedAttributeError(f"split sizes {sizes} in {where} do not add up to the dim's {n}")
    return sizes


def _parts(ctx: _Ctx, node: fx.Node, x: str, d: int, sizes: list[int], loc: SourceLoc) -> tuple:
    """One Slice of x per part along feature dim d (a whole-dim part is x itself; an empty one is refused
    when it is used, by _f_getitem_any)."""
    out, start = [], 0
    n = ctx.type_of(x).features[d]
    for i, size in enumerate(sizes):
        if size == n:
            out.append(x)
        elif size == 0:
            out.append(None)
        else:
            out.append(ctx.emit(ops.Slice(name=ctx.fresh(f"{node.name}_{i}"), inputs=(x,), loc=loc, dim=d,
                                          start=start, end=start + size)))
        start += size
    return tuple(out)


@lowers_function(torch.chunk, torch.split, torch.tensor_split)
def _f_split(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> tuple:
    """x.chunk(k, dim) / x.split(size or sizes, dim) along a feature dim: a tuple of Slices (shufflenet's
    channel split)."""
    name = _fname(node)  # a function's name, or the method's
    if name == "tensor_split":
        raise UnsupportedOpError(f"tensor_split in {loc.describe()} is not supported", hint="use chunk or split")
    x = ctx.value(node.args[0], node, loc)
    d = _feature_dim(ctx, x, int(_arg(node, 2, "dim", 0)), loc, name)
    n = ctx.type_of(x).features[d]
    if name == "chunk":
        sizes = split_sizes(n, None, _arg(node, 1, "chunks"), loc.describe())
    else:
        sizes = _arg(node, 1, "split_size_or_sections", _arg(node, 1, "split_size"))
        # sizes computed from shapes (x.shape[-1] // 3) resolve to numbers; from the batch/time size they do not
        sizes = [_operand(ctx, v) for v in sizes] if isinstance(sizes, (tuple, list)) else _operand(ctx, sizes)
        if not all(_is_number(v) for v in (sizes if isinstance(sizes, list) else [sizes])):
            raise UnsupportedOpError(f"split sizes {sizes!r} in {loc.describe()} depend on the batch/time size")
        sizes = split_sizes(n, sizes, None, loc.describe())
    return _parts(ctx, node, x, d, sizes, loc)


@lowers_function(operator.getitem)
def _f_getitem_any(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> Any:
    """parts[i] of a chunk/split, x[:, :, a:b] of a value; the rest (x.shape[i]) as fx_ops lowers it."""
    tup = ctx.values.get(node.args[0]) if isinstance(node.args[0], fx.Node) else None
    if isinstance(tup, tuple) and isinstance(node.args[1], int):
        if not -len(tup) <= node.args[1] < len(tup):
            raise UnsupportedAttributeError(f"part {node.args[1]} of {len(tup)} in {loc.describe()}")
        v = tup[node.args[1]]
        if v is None:
            raise UnsupportedAttributeError(f"part {node.args[1]} in {loc.describe()} is empty",
                                            hint="snnc values have no empty dims")
        return v
    if isinstance(tup, str):  # x[:, :, a:b]: slices of feature dims
        return _slices(ctx, node, tup, node.args[1], loc)
    return _f_getitem(ctx, node, loc)


def _method(fn):
    """A tensor method x.f(*args) lowered as the function f(x, *args)."""
    return lambda ctx, node, loc: fn(ctx, node, loc)


lowers_method("mul", "mul_")(_method(_f_mul))
lowers_method("sub", "sub_")(_method(_f_sub))
lowers_method("add", "add_")(_method(_f_add_any))
lowers_method("div", "div_")(_method(_f_div))
lowers_method("neg")(_method(_f_neg))
lowers_method("matmul", "bmm")(_method(_f_matmul))
lowers_method("transpose", "swapaxes")(_method(_f_transpose))
lowers_method("unsqueeze")(_method(_f_unsqueeze))
lowers_method("squeeze")(_method(_f_squeeze))
lowers_method("mean")(_method(_f_mean))
lowers_method("sum")(_method(_f_sum))
lowers_method("chunk", "split", "tensor_split")(_method(_f_split))


@lowers_method("permute")
def _m_permute(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    dims = list(node.args[1:]) or list(_arg(node, 1, "dims"))
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = list(dims[0])
    return _permute(ctx, ctx.value(node.args[0], node, loc), dims, node, loc)


@lowers_method("contiguous", "clone", "detach")
def _m_identity(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    return ctx.value(node.args[0], node, loc)


@lowers_method("expand")
def _m_expand(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> Any:
    """w.expand(N, ...) of a weight w [1, *f] over the batch (ViT's class token): a Broadcast, which torch.cat
    turns into a Constant; an expand of a value is refused."""
    w = _operand(ctx, node.args[0])
    sizes = list(node.args[1:])
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = list(sizes[0])
    sizes = [_operand(ctx, d) for d in sizes]
    if not isinstance(w, Attr) or not isinstance(w.tensor, torch.Tensor):
        raise UnsupportedOpError(f".expand() of a value in {loc.describe()} is not supported",
                                 hint="only a weight expanded over the batch (w.expand(x.size(0), -1, ...)) is")
    t = w.tensor.detach()
    if t.dim() != len(sizes) or t.dim() < 2 or t.shape[0] != 1 or sizes[0] != _LeadDim(0) \
            or any(s not in (-1, d) for s, d in zip(sizes[1:], t.shape[1:])):
        raise UnsupportedAttributeError(f".expand{tuple(sizes)} of the weight '{w.path}' {list(t.shape)} in "
                                        f"{loc.describe()} is not supported",
                                        hint="only w.expand(x.size(0), -1, ...) of a weight [1, *features], over "
                                             "the batch, is")
    return Broadcast(w, t[0])


class Broadcast:
    """A weight expanded over the batch: the same features for every sample (a Constant once concatenated)."""

    def __init__(self, attr: Attr, features: torch.Tensor):
        self.attr, self.features = attr, features

    def __repr__(self) -> str:
        return f"'{self.attr.path}' expanded over the batch"


@lowers_function(torch.cat, torch.concat)
def _f_cat_any(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    """torch.cat of values, and of weights expanded over the batch (Broadcast: each a Constant, a current the
    same at every step, whose rate is itself)."""
    parts = list(_arg(node, 0, "tensors"))
    values = {i: ctx.values.get(p) for i, p in enumerate(parts) if isinstance(p, fx.Node)}
    if not any(isinstance(v, Broadcast) for v in values.values()):
        return _f_cat(ctx, node, loc)
    ref = next((v for v in values.values() if isinstance(v, str)), None)
    if ref is None:
        raise UnsupportedOpError(f"torch.cat of constants only in {loc.describe()} is not supported")
    inputs = []
    for i, p in enumerate(parts):
        v = values.get(i)
        if isinstance(v, Broadcast):
            key = (id(v.attr.tensor), "const")
            if key not in ctx.param_cache:
                ctx.param_cache[key] = ctx.graph.add_param(v.attr.path, v.features.contiguous().clone())
            inputs.append(ctx.emit(ops.Constant(name=ctx.fresh(f"{node.name}_const"), inputs=(ref,), loc=loc,
                                                value=ctx.param_cache[key])))
        else:
            inputs.append(ctx.value(p, node, loc))
    dim = int(_arg(node, 1, "dim", 0))
    lead = ctx.lead(ref)
    d = dim % (lead + len(ctx.type_of(ref).features)) - lead
    if d < 0:
        raise UnsupportedAttributeError(f"torch.cat along dim {dim} in {loc.describe()} concatenates batches "
                                        "or time steps", hint="concatenate along a feature dim")
    return ctx.emit(ops.Concat(name=ctx.fresh(node.name), inputs=tuple(inputs), loc=loc, dim=d))
