"""ONNX handlers of the tensor and layout operators (issues 18, 19; docs/ops.md).

ReduceMean, Transpose, Split (one IR Slice per output) and Slice (with bounds
that may come from shape arithmetic, as the TorchScript exporter writes chunk), Clip, Mul, Sub, Div, Neg, Add of a scalar, Reshape to
any feature shape, Unsqueeze, Squeeze, MatMul of two values, Softmax,
LayerNormalization, and 1-D Conv and AveragePool, as torch's dynamo and
TorchScript exporters write them (opsets 13-21). Handlers for an operator
snnc.frontends.onnx_ops also handles (Add, Reshape, MatMul, Conv, AveragePool)
replace those and fall back to them. Axis 0 is the batch: an operator over it
is refused by name.
"""

from __future__ import annotations

import numpy as np
import torch

from snnc.core.errors import UnsupportedAttributeError, UnsupportedOpError
from snnc.frontends.const_operands import add_const, feature_const, scale_by_const
from snnc.frontends.fx_ops import merged_run
from snnc.frontends.onnx_lowering import _Const, _Ctx, _Refused, _ShapeVec, handles
from snnc.frontends.onnx_ops import _add, _avg_pool, _concat, _conv, _flatten_to, _matmul
from snnc.ir import ops
from snnc.ir.ops import SourceLoc


# Axis 0 is the batch: an operator over it is refused by name; the IR ops take feature dims.
def _feature_axes(ctx: _Ctx, node, x: str, axes, extra: int = 0) -> list[int]:
    rank = 1 + len(ctx.type_of(x).features) + extra
    out = []
    for a in axes:
        a = int(a) % rank
        if a == 0:
            raise UnsupportedAttributeError(f"{ctx.where(node)} works on axis 0 (the batch)",
                                            hint="snnc keeps the batch axis in place; use feature axes only")
        out.append(a - 1)
    return out


def _scalar(v) -> float | None:
    """A one-element float/int constant as a float (None otherwise)."""
    if isinstance(v, _Const) and v.array.size == 1 and v.array.dtype.kind in "fiu":
        return float(v.array.reshape(()))
    return None


def _axes_of(ctx: _Ctx, node, ins, attrs, index: int) -> list[int] | None:
    """Axes from the attribute (older opsets) or the optional input `index` (newer ones)."""
    if "axes" in attrs:
        return [int(a) for a in attrs["axes"]]
    v = ins[index] if len(ins) > index else None
    if v is None:
        return None
    if not isinstance(v, _Const):
        raise UnsupportedAttributeError(f"{ctx.where(node)} computes its axes at run time")
    return [int(a) for a in v.array.reshape(-1)]


@handles("ReduceMean")
def _reduce_mean(ctx: _Ctx, node, ins, attrs, loc) -> list:
    axes = _axes_of(ctx, node, ins, attrs, 1)
    m = ins[0]
    if isinstance(m, _Moved) and m.batch_axis == 0 and axes and 0 not in [a % m.index.ndim for a in axes]:
        return [_pooled(ctx, node, m, sorted(a % m.index.ndim for a in axes), bool(attrs.get("keepdims", 1)), loc)]
    x = ctx.tensor(ins[0], node)
    if not axes:
        if attrs.get("noop_with_empty_axes", 0):
            return [x]
        raise UnsupportedAttributeError(f"{ctx.where(node)} averages over all axes, the batch included")
    dims = tuple(sorted(set(_feature_axes(ctx, node, x, axes))))
    return [ctx.emit(ops.Mean(name=ctx.name(node), inputs=(x,), loc=loc, dims=dims,
                              keepdim=bool(attrs.get("keepdims", 1))))]


class _Moved(_Refused):
    """A value whose batch axis a Transpose moved, then only transposed and gathered (GatherND) by constants:
    `index` holds, per element, its flat index into the features of `src`, with the batch axis kept (size 1) at
    `batch_axis`. torch's dynamo exporter writes adaptive pooling to a size the input does not divide as
    Transpose -> GatherND -> Transpose -> ReduceMean; ReduceMean turns that back into a pool, anything else
    reading it is refused, naming the Transpose."""

    def __init__(self, what: str, src: str, index: np.ndarray, batch_axis: int):
        super().__init__(what)
        self.src, self.index, self.batch_axis = src, index, batch_axis


def _moved_by(ctx: _Ctx, node, x: str, perm: list[int]) -> _Moved:
    feats = tuple(ctx.type_of(x).features)
    if sorted(perm) != list(range(1 + len(feats))):
        raise UnsupportedAttributeError(f"{ctx.where(node)} has perm={perm}, no permutation of its {1 + len(feats)} axes")
    index = np.arange(int(np.prod(feats)), dtype=np.int64).reshape(1, *feats).transpose(perm)
    return _Moved(f"the output of {ctx.where(node)}, whose perm={perm} moves the batch axis", x, index,
                  perm.index(0))


@handles("Transpose")
def _transpose(ctx: _Ctx, node, ins, attrs, loc) -> list:
    if isinstance(ins[0], _Moved):
        m = ins[0]
        perm = [int(p) for p in attrs.get("perm", list(range(m.index.ndim))[::-1])]
        return [_Moved(m.what, m.src, m.index.transpose(perm), perm.index(m.batch_axis))]
    x = ctx.tensor(ins[0], node)
    rank = 1 + len(ctx.type_of(x).features)
    perm = [int(p) for p in attrs.get("perm", list(range(rank))[::-1])]
    if perm[0] != 0:  # moves the batch axis: kept as an index map until the batch axis comes back
        return [_moved_by(ctx, node, x, perm)]
    p = tuple(d - 1 for d in perm[1:])
    if p == tuple(range(len(p))):
        return [x]
    return [ctx.emit(ops.Permute(name=ctx.name(node), inputs=(x,), loc=loc, perm=p))]


@handles("GatherND")
def _gather_nd(ctx: _Ctx, node, ins, attrs, loc) -> list:
    """GatherND of constant indices from a value whose batch axis a Transpose moved out of the indexed axes."""
    m, idx = ins
    if not isinstance(m, _Moved) or not isinstance(idx, _Const) or attrs.get("batch_dims", 0) != 0:
        raise UnsupportedOpError(f"{ctx.where(node)} is supported only as torch's exporter writes adaptive "
                                 "pooling (constant indices into a transposed value, batch_dims=0)")
    ind = idx.array.astype(np.int64)
    r = ind.shape[-1]
    if m.batch_axis < r:
        raise UnsupportedAttributeError(f"{ctx.where(node)} indexes the batch axis")
    picked = m.index[tuple(ind[..., i] for i in range(r))]  # numpy and ONNX read negative indices alike
    return [_Moved(m.what, m.src, picked, ind.ndim - 1 + m.batch_axis - r)]


def _pooled(ctx: _Ctx, node, m: _Moved, axes: list[int], keepdims: bool, loc: SourceLoc) -> str:
    """The mean over `axes` of gathered elements, when it is adaptive average pooling of `m.src` (each output
    the mean of exactly its window's elements); else a refusal naming both nodes."""
    feats = tuple(ctx.type_of(m.src).features)
    windows = np.moveaxis(m.index[0], [a - 1 for a in axes], list(range(-len(axes), 0)))
    out = windows.shape[:windows.ndim - len(axes)]
    windows = np.sort(windows.reshape(*out, -1), axis=-1)
    bad = UnsupportedOpError(f"{ctx.where(node)} averages elements that {m.what} and a gather picked, which is "
                             "no adaptive average pooling", hint="export pooling with AveragePool or ReduceMean")
    if len(feats) != 3 or len(out) != 3 or out[0] != feats[0]:
        raise bad
    c, h, w = feats
    oh, ow = out[1:]
    grid = np.arange(c * h * w).reshape(c, h, w)
    want = []
    for i in range(oh):
        for j in range(ow):  # PyTorch's adaptive windows: [floor(i h / oh), ceil((i + 1) h / oh))
            win = grid[:, i * h // oh:-(-(i + 1) * h // oh), j * w // ow:-(-(j + 1) * w // ow)].reshape(c, -1)
            if win.shape[1] != windows.shape[-1]:
                raise bad
            want.append(win)
    if not np.array_equal(np.stack(want, 1).reshape(c, oh, ow, -1), windows):
        raise bad
    y = ctx.emit(ops.AdaptiveAvgPool2d(name=ctx.name(node), inputs=(m.src,), loc=loc, output_size=(oh, ow)))
    if keepdims:
        kept = tuple(1 if a in axes else d for a, d in enumerate(m.index.shape) if a != 0)
        y = _reshape_or_flatten(ctx, node, y, kept, loc)
    return y


@handles("Split")
def _split(ctx: _Ctx, node, ins, attrs, loc) -> list:
    """Split along a feature axis: sizes from the `split` input (opset 13+) or attribute (older), else equal
    parts, one per output (`num_outputs` in opset 18+; the last part smaller when the axis does not divide)."""
    x = ctx.tensor(ins[0], node)
    (axis,) = _feature_axes(ctx, node, x, [attrs.get("axis", 0)])
    n = ctx.type_of(x).features[axis]
    k = len(node.output)
    sizes = ins[1] if len(ins) > 1 and ins[1] is not None else attrs.get("split")
    if isinstance(sizes, _Const):
        sizes = [int(v) for v in sizes.array.reshape(-1)]
    elif sizes is not None and not isinstance(sizes, (list, tuple)):
        raise UnsupportedAttributeError(f"{ctx.where(node)} computes its split sizes at run time")
    if sizes is None:
        step = -(-n // k)
        sizes = [min(step, n - i * step) for i in range(k)]
    sizes = [int(v) for v in sizes]
    if len(sizes) != k or sum(sizes) != n or any(v < 1 for v in sizes):
        raise UnsupportedAttributeError(f"{ctx.where(node)} splits axis {axis + 1} of {n} into {sizes} for {k} "
                                        "outputs", hint="the parts must be non-empty and add up to the axis")
    base, out, start = ctx.name(node), [], 0
    for i, size in enumerate(sizes):
        out.append(x if size == n else ctx.emit(ops.Slice(name=ctx.graph.fresh_name(f"{base}_{i}"), inputs=(x,),
                                                          loc=loc, dim=axis, start=start, end=start + size)))
        start += size
    return out


def _ints(ctx: _Ctx, node, v, what: str) -> list[int] | None:
    """A constant or shape-computed integer vector (None: omitted)."""
    if v is None:
        return None
    if isinstance(v, _Const) and v.array.dtype.kind in "iu":
        return [int(d) for d in v.array.reshape(-1)]
    if isinstance(v, _ShapeVec) and all(isinstance(d, int) for d in v.dims):
        return [int(d) for d in v.dims]
    raise UnsupportedAttributeError(f"{ctx.where(node)} computes its {what} at run time (or from the batch size)")


@handles("Slice")
def _slice(ctx: _Ctx, node, ins, attrs, loc) -> list:
    """x[..., start:end, ...] over feature axes with step 1: one IR Slice per axis (bounds clamped as ONNX
    does; a whole axis is no op). Bounds from inputs (opset 10+) or attributes (older)."""
    x = ctx.tensor(ins[0], node)
    if len(ins) >= 3:
        starts, ends = _ints(ctx, node, ins[1], "starts"), _ints(ctx, node, ins[2], "ends")
        axes = _ints(ctx, node, ins[3] if len(ins) > 3 else None, "axes")
        steps = _ints(ctx, node, ins[4] if len(ins) > 4 else None, "steps")
    else:
        starts, ends = [int(v) for v in attrs["starts"]], [int(v) for v in attrs["ends"]]
        axes, steps = [int(v) for v in attrs["axes"]] if "axes" in attrs else None, None
    axes = list(range(len(starts))) if axes is None else axes
    if steps is not None and any(s != 1 for s in steps):
        raise UnsupportedAttributeError(f"{ctx.where(node)} slices with steps {steps}", hint="only step 1 is supported")
    base, y = ctx.name(node), x
    for i, (axis, start, end) in enumerate(zip(_feature_axes(ctx, node, x, axes), starts, ends)):
        n = ctx.type_of(y).features[axis]
        lo, hi = (min(max(v + n if v < 0 else v, 0), n) for v in (start, end))
        if hi <= lo:
            raise UnsupportedAttributeError(f"{ctx.where(node)} gives an empty slice of axis {axis + 1}")
        if (lo, hi) != (0, n):
            y = ctx.emit(ops.Slice(name=base if i == len(axes) - 1 else ctx.graph.fresh_name(f"{base}_{i}"),
                                   inputs=(y,), loc=loc, dim=axis, start=lo, end=hi))
    return [y]


@handles("Clip")
def _clip(ctx: _Ctx, node, ins, attrs, loc) -> list:
    bounds = []
    for i, key in ((1, "min"), (2, "max")):
        v = ins[i] if len(ins) > i else None
        if v is None:
            bounds.append(float(attrs[key]) if key in attrs else None)
        elif _scalar(v) is None:
            raise UnsupportedAttributeError(f"{ctx.where(node)} has a run-time or non-scalar {key}")
        else:
            bounds.append(_scalar(v))
    return [ctx.emit(ops.Clamp(name=ctx.name(node), inputs=(ctx.tensor(ins[0], node),), loc=loc,
                               min=bounds[0], max=bounds[1]))]


@handles("Mul")
def _mul(ctx: _Ctx, node, ins, attrs, loc) -> list:
    a, b = ins
    if _scalar(a) is not None:
        a, b = b, a
    if _scalar(b) is not None:
        return [ctx.emit(ops.Scale(name=ctx.name(node), inputs=(ctx.tensor(a, node),), loc=loc, factor=_scalar(b)))]
    if isinstance(a, _Const) and isinstance(b, str):
        a, b = b, a
    if isinstance(a, str) and isinstance(b, _Const):  # x * W, W an initializer (ConvNeXt's layer scale): a Scale
        c = _initializer_operand(ctx, node, a, b, "multiplies by")
        return [scale_by_const(ctx.emit, _initializer_param(ctx, node, b), ctx.name(node), a, c,
                               tuple(ctx.type_of(a).features), loc)]
    return [ctx.emit(ops.Mul(name=ctx.name(node), loc=loc, inputs=(ctx.tensor(a, node), ctx.tensor(b, node, "B"))))]


def _initializer_param(ctx: _Ctx, node, w: _Const):
    return lambda t: ctx.param_once(t, w.name, lambda: t)


def _initializer_operand(ctx: _Ctx, node, x: str, w: _Const, what: str) -> torch.Tensor:
    """Initializer w as it broadcasts against value x (feature_const), or an error naming the node."""
    t = torch.from_numpy(np.array(w.array, dtype=np.float32 if w.array.dtype == np.float64 else w.array.dtype,
                                  copy=True))
    c = feature_const(t, tuple(ctx.type_of(x).features), ctx.type_of(x).layout.n_layout_dims)
    if c is None:
        raise UnsupportedAttributeError(
            f"{ctx.where(node)} {what} the constant '{w.name}' {list(w.array.shape)}, which does not broadcast "
            f"against the features {list(ctx.type_of(x).features)} or varies over the batch axis",
            hint="a constant of the features' shape, or with 1 in some dims (a per-channel [C, 1, 1]), is supported")
    return c


@handles("Sub")
def _sub(ctx: _Ctx, node, ins, attrs, loc) -> list:
    a, b = ins
    if _scalar(b) is not None:
        return [ctx.emit(ops.AddScalar(name=ctx.name(node), inputs=(ctx.tensor(a, node),), loc=loc,
                                       value=-_scalar(b)))]
    if _scalar(a) is not None:  # c - x
        neg = ctx.emit(ops.Scale(name=ctx.graph.fresh_name(f"{ctx.name(node)}_neg"), inputs=(ctx.tensor(b, node),),
                                 loc=loc, factor=-1.0))
        return [ctx.emit(ops.AddScalar(name=ctx.name(node), inputs=(neg,), loc=loc, value=_scalar(a)))]
    return [ctx.emit(ops.Sub(name=ctx.name(node), loc=loc, inputs=(ctx.tensor(a, node), ctx.tensor(b, node, "B"))))]


@handles("Div")
def _div(ctx: _Ctx, node, ins, attrs, loc) -> list:
    c = _scalar(ins[1])
    if not c:
        raise UnsupportedOpError(f"{ctx.where(node)} divides by a run-time value or zero",
                                 hint="only division by a nonzero constant is supported")
    return [ctx.emit(ops.Scale(name=ctx.name(node), inputs=(ctx.tensor(ins[0], node),), loc=loc, factor=1.0 / c))]


@handles("Neg")
def _neg(ctx: _Ctx, node, ins, attrs, loc) -> list:
    return [ctx.emit(ops.Scale(name=ctx.name(node), inputs=(ctx.tensor(ins[0], node),), loc=loc, factor=-1.0))]


@handles("Add")
def _add_any(ctx: _Ctx, node, ins, attrs, loc) -> list:
    """x + c with a scalar c is an AddScalar (unless c is the bias of a bias-free MatMul before it)."""
    a, b = ins
    if _scalar(a) is not None:
        a, b = b, a
    if isinstance(a, str) and _scalar(b) is not None:
        prod = ctx.graph[a]
        if not (isinstance(prod, ops.Linear) and prod.bias is None and ctx.graph.params[prod.weight].shape[0] == 1):
            return [ctx.emit(ops.AddScalar(name=ctx.name(node), inputs=(a,), loc=loc, value=_scalar(b)))]
    if isinstance(a, _Const) and isinstance(b, str):
        a, b = b, a
    if isinstance(a, str) and isinstance(b, _Const) and not _is_bias(ctx, a, b):
        c = _initializer_operand(ctx, node, a, b, "adds")  # ViT's position embedding: an AddConst
        return [add_const(ctx.emit, _initializer_param(ctx, node, b), ctx.name(node), a, c, loc)]
    return _add(ctx, node, ins, attrs, loc)


def _is_bias(ctx: _Ctx, x: str, b: _Const) -> bool:
    """x @ W + b that onnx_ops' _add folds into the bias-free Linear (MatMul) that made x."""
    prod = ctx.graph[x]
    return isinstance(prod, ops.Linear) and prod.bias is None and not ctx.graph.users(x) \
        and b.array.size == ctx.graph.params[prod.weight].shape[0]


def _reshape_or_flatten(ctx: _Ctx, node, x: str, new: tuple[int, ...], loc: SourceLoc) -> str:
    feats = tuple(ctx.type_of(x).features)
    if int(np.prod(new)) != int(np.prod(feats)) or any(d < 1 for d in new):
        raise UnsupportedOpError(f"{ctx.where(node)} reshapes features {list(feats)} to {list(new)}",
                                 hint="the batch axis must stay as it is")
    if merged_run(feats, new) is not None:
        return _flatten_to(ctx, node, x, new, loc)
    return ctx.emit(ops.Reshape(name=ctx.name(node), inputs=(x,), loc=loc, shape=tuple(new)))


@handles("Reshape")
def _reshape_any(ctx: _Ctx, node, ins, attrs, loc) -> list:
    """Reshape to a constant or folded shape, the batch axis kept: a Flatten or a Reshape of the features."""
    x = ctx.tensor(ins[0], node)
    feats = tuple(ctx.type_of(x).features)
    shape = ins[1]
    new = None
    if isinstance(shape, (_Const, _ShapeVec)):
        s = [int(d) for d in shape.array.reshape(-1)] if isinstance(shape, _Const) else \
            [0 if d == "N" else int(d) for d in shape.dims]
        if s and s[0] in (0, -1) and not (attrs.get("allowzero", 0) and 0 in s):
            rest = [feats[i] if d == 0 and i < len(feats) else d for i, d in enumerate(s[1:])]
            if rest.count(-1) == 1 and s[0] == 0:
                known = int(np.prod([d for d in rest if d != -1]))
                rest[rest.index(-1)] = int(np.prod(feats)) // known if known else 0
            if -1 not in rest:
                new = tuple(rest)
    if new is None:  # a shape with the batch written out (a static-batch export), or computed: inferred shapes
        dims = ctx.shapes.get(node.output[0])
        if dims and len(dims) >= 1 and all(isinstance(d, int) and d > 0 for d in dims[1:]):
            new = tuple(dims[1:])
    if new is None:
        raise UnsupportedOpError(f"{ctx.where(node)}: cannot tell which shape it produces",
                                 hint="export with constant folding, or use Flatten")
    return [_reshape_or_flatten(ctx, node, x, new, loc)]


@handles("Unsqueeze")
def _unsqueeze(ctx: _Ctx, node, ins, attrs, loc) -> list:
    x = ctx.tensor(ins[0], node)
    axes = _axes_of(ctx, node, ins, attrs, 1) or []
    f = list(ctx.type_of(x).features)
    for a in sorted(_feature_axes(ctx, node, x, axes, extra=len(axes))):
        f.insert(a, 1)
    return [_reshape_or_flatten(ctx, node, x, tuple(f), loc)]


@handles("Squeeze")
def _squeeze(ctx: _Ctx, node, ins, attrs, loc) -> list:
    x = ctx.tensor(ins[0], node)
    axes = _axes_of(ctx, node, ins, attrs, 1)
    if axes is None:
        raise UnsupportedAttributeError(f"{ctx.where(node)} squeezes every axis of size 1, the batch's too",
                                        hint="export with explicit axes")
    drop = set(_feature_axes(ctx, node, x, axes))
    f = ctx.type_of(x).features
    return [_reshape_or_flatten(ctx, node, x, tuple(d for i, d in enumerate(f) if i not in drop), loc)]


@handles("MatMul")
def _matmul_any(ctx: _Ctx, node, ins, attrs, loc) -> list:
    a, b = ins
    if not isinstance(b, str):
        return _matmul(ctx, node, ins, attrs, loc)
    x = ctx.tensor(a, node)
    fa, fb = ctx.type_of(x).features, ctx.type_of(b).features
    if len(fa) < 2 or len(fb) < 2:
        raise UnsupportedAttributeError(f"{ctx.where(node)} multiplies features {list(fa)} by {list(fb)}, "
                                        "mixing the samples of the batch",
                                        hint="both operands need a matrix [.., M, K] per sample")
    return [ctx.emit(ops.MatMul(name=ctx.name(node), inputs=(x, b), loc=loc))]


@handles("Softmax")
def _softmax(ctx: _Ctx, node, ins, attrs, loc) -> list:
    x = ctx.tensor(ins[0], node)
    (dim,) = _feature_axes(ctx, node, x, [attrs.get("axis", -1)])
    return [ctx.emit(ops.Softmax(name=ctx.name(node), inputs=(x,), loc=loc, dim=dim))]


_ACTIVATIONS = {"Sigmoid": ops.ActivationFn.SIGMOID, "HardSwish": ops.ActivationFn.HARDSWISH,
                "Tanh": ops.ActivationFn.TANH}


def _activation_op(ctx: _Ctx, node, x: str, fn: ops.ActivationFn, loc: SourceLoc) -> str:
    """A non-ReLU activation (conversion runs it only as an analog op: `analog=`, docs/conversion.md)."""
    return ctx.emit(ops.Activation(name=ctx.name(node), inputs=(x,), fn=fn, loc=loc))


@handles(*_ACTIVATIONS)
def _activation(ctx: _Ctx, node, ins, attrs, loc) -> list:
    return [_activation_op(ctx, node, ctx.tensor(ins[0], node), _ACTIVATIONS[node.op_type], loc)]


def fuse_silu(graph) -> None:
    """Mul(x, Sigmoid(x)), the exporters' SiLU, becomes one Activation(silu) (as torch.fx and .pt2 read it),
    when the sigmoid has no other reader; in place."""
    for op in list(graph):
        if not isinstance(op, ops.Mul) or op.name not in graph.nodes:
            continue
        for x, s in (op.inputs, op.inputs[::-1]):
            sig = graph.nodes.get(s)
            if (isinstance(sig, ops.Activation) and sig.fn is ops.ActivationFn.SIGMOID and sig.inputs == (x,)
                    and len(graph.users(s)) == 1):
                graph.replace_op(ops.Activation(name=op.name, inputs=(x,), fn=ops.ActivationFn.SILU,
                                                loc=sig.loc.model_copy(update={"module_type": "onnx.Sigmoid+Mul"})
                                                if sig.loc else None))
                graph.remove(s)
                break


@handles("HardSigmoid")
def _hard_sigmoid(ctx: _Ctx, node, ins, attrs, loc) -> list:
    alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
    if not (abs(alpha - 1 / 6) < 1e-6 and beta == 0.5):
        raise UnsupportedAttributeError(f"{ctx.where(node)} has alpha={alpha}, beta={beta}",
                                        hint="only torch's hardsigmoid (alpha=1/6, beta=0.5) is supported")
    return [_activation_op(ctx, node, ctx.tensor(ins[0], node), ops.ActivationFn.HARDSIGMOID, loc)]


@handles("Gelu")
def _gelu(ctx: _Ctx, node, ins, attrs, loc) -> list:
    approximate = attrs.get("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise UnsupportedAttributeError(f"{ctx.where(node)} has approximate={approximate!r}")
    fn = ops.ActivationFn.GELU if approximate == "none" else ops.ActivationFn.GELU_TANH
    return [_activation_op(ctx, node, ctx.tensor(ins[0], node), fn, loc)]


@handles("LayerNormalization")
def _layer_norm(ctx: _Ctx, node, ins, attrs, loc) -> list:
    x = ctx.tensor(ins[0], node)
    (axis,) = _feature_axes(ctx, node, x, [attrs.get("axis", -1)])
    shape = tuple(ctx.type_of(x).features[axis:])
    y = ctx.emit(ops.LayerNorm(name=ctx.name(node), inputs=(x,), loc=loc, normalized_shape=shape,
                               weight=ctx.param(ins[1], node, "Scale"),
                               bias=ctx.param(ins[2] if len(ins) > 2 else None, node, "B"),
                               eps=float(attrs.get("epsilon", 1e-5))))
    return [y] + [_Refused(f"the statistics outputs of {ctx.where(node)}")] * (len(node.output) - 1)


def _pad1(ctx: _Ctx, node, attrs: dict) -> int:
    if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise UnsupportedAttributeError(f"{ctx.where(node)} uses auto_pad={attrs['auto_pad']}",
                                        hint="export with explicit padding")
    pads = [int(p) for p in attrs.get("pads", [0, 0])]
    if len(pads) != 2 or pads[0] != pads[1]:
        raise UnsupportedAttributeError(f"{ctx.where(node)} has asymmetric pads {pads}")
    return 0 if attrs.get("auto_pad") == "VALID" else pads[0]


@handles("Conv")
def _conv_any(ctx: _Ctx, node, ins, attrs, loc) -> list:
    w = ins[1]
    if not (isinstance(w, _Const) and w.array.ndim == 3):
        return _conv(ctx, node, ins, attrs, loc)
    return [ctx.emit(ops.Conv1d(name=ctx.name(node), inputs=(ctx.tensor(ins[0], node),), loc=loc,
                                weight=ctx.param(w, node, "weight"),
                                bias=ctx.param(ins[2] if len(ins) > 2 else None, node, "bias"),
                                stride=int(attrs.get("strides", [1])[0]), padding=_pad1(ctx, node, attrs),
                                dilation=int(attrs.get("dilations", [1])[0]), groups=int(attrs.get("group", 1))))]


@handles("AveragePool")
def _avg_pool_any(ctx: _Ctx, node, ins, attrs, loc) -> list:
    if len(attrs.get("kernel_shape", [])) != 1:
        return _avg_pool(ctx, node, ins, attrs, loc)
    k = int(attrs["kernel_shape"][0])
    pad = _pad1(ctx, node, attrs)
    include = bool(attrs.get("count_include_pad", 0)) or (pad == 0 and not attrs.get("ceil_mode", 0))
    return [ctx.emit(ops.AvgPool1d(name=ctx.name(node), inputs=(ctx.tensor(ins[0], node),), loc=loc, kernel_size=k,
                                   stride=int(attrs.get("strides", [1])[0]), padding=pad,
                                   ceil_mode=bool(attrs.get("ceil_mode", 0)), count_include_pad=include))]


class Broadcast:
    """An initializer [1, *f] expanded over the batch axis: the same features for every sample (a Constant once
    concatenated: the same current at every step, whose rate is itself)."""

    def __init__(self, const: _Const):
        self.const = const


@handles("Expand")
def _expand(ctx: _Ctx, node, ins, attrs, loc) -> list:
    """Expand of an initializer [1, *f] to [N, *f] (ViT's class token; a dim of 1 or -1 keeps the initializer's)."""
    w, shape = ins[0], ins[1]
    dims = shape.dims if isinstance(shape, _ShapeVec) else None
    if not isinstance(w, _Const) or dims is None or len(dims) != w.array.ndim or w.array.ndim < 2 \
            or w.array.shape[0] != 1 or dims[0] != "N" \
            or any(d not in (1, -1, s) for d, s in zip(dims[1:], w.array.shape[1:])):
        raise UnsupportedOpError(f"{ctx.where(node)} expands {'a value' if isinstance(w, str) else 'a constant'} "
                                 f"to {list(dims) if dims is not None else 'a run-time shape'}",
                                 hint="only an initializer [1, *features] expanded over the batch axis is supported")
    return [Broadcast(w)]


@handles("Concat")
def _concat_any(ctx: _Ctx, node, ins, attrs, loc) -> list:
    """Concat of values, and of initializers expanded over the batch (Broadcast: each a Constant)."""
    if not any(isinstance(v, Broadcast) for v in ins):
        return _concat(ctx, node, ins, attrs, loc)
    ref = next((v for v in ins if isinstance(v, str)), None)
    if ref is None:
        raise UnsupportedOpError(f"{ctx.where(node)} concatenates constants only")
    xs = []
    for v in ins:
        if isinstance(v, Broadcast):
            value = ctx.param(v.const, node, "constant", np.ascontiguousarray(v.const.array[0]))
            xs.append(ctx.emit(ops.Constant(name=ctx.graph.fresh_name(f"{ctx.name(node)}_const"), inputs=(ref,),
                                            loc=loc, value=value)))
        elif v is not None:
            xs.append(ctx.tensor(v, node))
    return _concat(ctx, node, xs, attrs, loc)


@handles("Gather")
def _gather(ctx: _Ctx, node, ins, attrs, loc) -> list:
    """Gather of one constant index along a feature axis (x[:, 0], ViT's class token): a one-element Slice, then
    a Reshape without that axis."""
    x, idx = ins
    x = ctx.tensor(x, node)
    feats = tuple(ctx.type_of(x).features)
    axis = int(attrs.get("axis", 0)) % (1 + len(feats)) - 1
    if axis < 0 or not isinstance(idx, _Const) or idx.array.ndim != 0:
        raise UnsupportedOpError(f"{ctx.where(node)} gathers along the batch axis or by a run-time or non-scalar "
                                 "index", hint="only x[:, i] of one constant index along a feature axis is supported")
    i = int(idx.array) % feats[axis]
    y = x if feats[axis] == 1 else ctx.emit(ops.Slice(name=ctx.name(node), inputs=(x,), loc=loc, dim=axis, start=i,
                                                      end=i + 1))
    new = tuple(f for j, f in enumerate(feats) if j != axis)
    return [_reshape_or_flatten(ctx, node, y, new, loc)]
