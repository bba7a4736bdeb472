"""ONNX operator handlers: one function per operator type, registered with `handles`.

A handler gets the node's inputs (IR value names, `_Const` initializers,
None for omitted optional inputs) and attributes, and returns one value per
node output.
"""

from __future__ import annotations

import numpy as np
import onnx

from snnc.core.errors import UnsupportedAttributeError, UnsupportedOpError
from snnc.frontends.fx_ops import merged_run, same_padding, warn_active_dropout
from snnc.frontends.onnx_lowering import _Const, _Ctx, _Refused, _ShapeVec, handles
from snnc.ir import ops
from snnc.ir.ops import SourceLoc


def _pairs(attrs: dict, key: str, default: int) -> tuple[int, int]:
    v = attrs.get(key)
    if v is None:
        return default, default
    if len(v) != 2:
        raise ValueError(f"{key}={v} is not 2-D")
    return int(v[0]), int(v[1])


def _pads(ctx: _Ctx, node: onnx.NodeProto, attrs: dict, kernel: tuple[int, int], stride: tuple[int, int],
          dilation: tuple[int, int]) -> tuple[int, int]:
    auto = attrs.get("auto_pad", "NOTSET")
    if auto == "VALID":
        return 0, 0
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        if stride != (1, 1):
            raise UnsupportedAttributeError(f"{ctx.where(node)} uses auto_pad={auto} with stride {stride}",
                                            hint="export with explicit padding")
        return same_padding(kernel, dilation, ctx.where(node))
    pads = [int(p) for p in attrs.get("pads", [0, 0, 0, 0])]
    if len(pads) != 4 or pads[0] != pads[2] or pads[1] != pads[3]:
        raise UnsupportedAttributeError(f"{ctx.where(node)} has asymmetric pads {pads}",
                                        hint="only symmetric padding (begin == end) is supported")
    return pads[0], pads[1]


# ---------------------------------------------------------------- operators
@handles("Conv")
def _conv(ctx: _Ctx, node, ins, attrs, loc) -> list:
    x = ctx.tensor(ins[0], node)
    w = ins[1]
    if not isinstance(w, _Const) or w.array.ndim != 4:
        raise UnsupportedAttributeError(f"{ctx.where(node)}: the weight must be a 4-D initializer (Conv2d)")
    stride, dilation = _pairs(attrs, "strides", 1), _pairs(attrs, "dilations", 1)
    kernel = tuple(int(k) for k in w.array.shape[2:])
    return [ctx.emit(ops.Conv2d(name=ctx.name(node), inputs=(x,), loc=loc, weight=ctx.param(w, node, "weight"),
                                bias=ctx.param(ins[2] if len(ins) > 2 else None, node, "bias"), stride=stride,
                                padding=_pads(ctx, node, attrs, kernel, stride, dilation), dilation=dilation,
                                groups=int(attrs.get("group", 1))))]


@handles("Gemm")
def _gemm(ctx: _Ctx, node, ins, attrs, loc) -> list:
    if attrs.get("transA", 0):
        raise UnsupportedAttributeError(f"{ctx.where(node)} has transA=1", hint="only x @ W^T + b is supported")
    x = ctx.tensor(ins[0], node)
    b = ins[1]
    if not isinstance(b, _Const) or b.array.ndim != 2:
        raise UnsupportedAttributeError(f"{ctx.where(node)}: B must be a 2-D initializer (a weight matrix)")
    w = b.array if attrs.get("transB", 0) else b.array.T
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    if alpha != 1.0:
        w = w * np.float32(alpha)
    bias = None
    c = ins[2] if len(ins) > 2 else None
    if c is not None:
        if not isinstance(c, _Const):
            raise UnsupportedAttributeError(f"{ctx.where(node)}: C must be an initializer (a bias)")
        flat = c.array.reshape(-1)
        arr = np.full(w.shape[0], flat[0], flat.dtype) if flat.size == 1 else flat if flat.size == w.shape[0] else None
        if arr is None:
            raise UnsupportedAttributeError(f"{ctx.where(node)}: bias C of shape {list(c.array.shape)} is not "
                                            f"a vector of {w.shape[0]}")
        bias = ctx.param(c, node, "bias", np.ascontiguousarray(arr * np.float32(beta) if beta != 1.0 else arr))
    weight = ctx.param(b, node, "weight", b.array if w is b.array else np.ascontiguousarray(w))
    return [ctx.emit(ops.Linear(name=ctx.name(node), inputs=(x,), loc=loc, weight=weight, bias=bias))]


@handles("MatMul")
def _matmul(ctx: _Ctx, node, ins, attrs, loc) -> list:
    x, b = ins
    if not isinstance(b, _Const) or b.array.ndim != 2:
        raise UnsupportedAttributeError(f"{ctx.where(node)}: only x @ W with a 2-D initializer W is supported")
    weight = ctx.param(b, node, "weight", np.ascontiguousarray(b.array.T))
    return [ctx.emit(ops.Linear(name=ctx.name(node), inputs=(ctx.tensor(x, node),), loc=loc, weight=weight))]


@handles("Add")
def _add(ctx: _Ctx, node, ins, attrs, loc) -> list:
    a, b = ins
    if isinstance(a, _Const):
        a, b = b, a
    if isinstance(b, _Const):  # x @ W + b: give the bias to the bias-free Linear that made x
        x = ctx.tensor(a, node)
        prod = ctx.graph[x]
        if isinstance(prod, ops.Linear) and prod.bias is None and not ctx.graph.users(x) \
                and b.array.size == ctx.graph.params[prod.weight].shape[0]:
            ctx.graph.replace_op(prod.replace(bias=ctx.param(b, node, "bias", np.ascontiguousarray(b.array.reshape(-1)))))
            return [x]
        raise UnsupportedOpError(f"{ctx.where(node)} adds a constant", hint="only a bias after MatMul is supported")
    return [ctx.emit(ops.Add(name=ctx.name(node), loc=loc, inputs=(ctx.tensor(a, node), ctx.tensor(b, node))))]


@handles("BatchNormalization")
def _bn(ctx: _Ctx, node, ins, attrs, loc) -> list:
    if attrs.get("training_mode", 0):
        raise UnsupportedAttributeError(f"{ctx.where(node)} has training_mode=1",
                                        hint="export the model in eval mode")
    x, scale, bias, mean, var = ins[:5]
    y = ctx.emit(ops.BatchNorm(name=ctx.name(node), inputs=(ctx.tensor(x, node),), loc=loc,
                               running_mean=ctx.param(mean, node, "mean"), running_var=ctx.param(var, node, "var"),
                               weight=ctx.param(scale, node, "scale"), bias=ctx.param(bias, node, "B"),
                               eps=float(attrs.get("epsilon", 1e-5))))
    return [y] + [_Refused(f"the batch statistics output of {ctx.where(node)}")] * (len(node.output) - 1)


@handles("Relu")
def _relu(ctx: _Ctx, node, ins, attrs, loc) -> list:
    return [ctx.emit(ops.ReLU(name=ctx.name(node), inputs=(ctx.tensor(ins[0], node),), loc=loc))]


def _pool_attrs(ctx: _Ctx, node, attrs: dict, dilation: tuple[int, int] = (1, 1)) -> dict:
    kernel = _pairs(attrs, "kernel_shape", 1)
    stride = _pairs(attrs, "strides", 1)
    return {"kernel_size": kernel, "stride": stride, "padding": _pads(ctx, node, attrs, kernel, stride, dilation),
            "ceil_mode": bool(attrs.get("ceil_mode", 0))}


@handles("AveragePool")
def _avg_pool(ctx: _Ctx, node, ins, attrs, loc) -> list:
    if _pairs(attrs, "dilations", 1) != (1, 1):
        raise UnsupportedAttributeError(f"{ctx.where(node)} has dilations", hint="AvgPool2d has no dilation")
    pa = _pool_attrs(ctx, node, attrs)
    include = bool(attrs.get("count_include_pad", 0))
    if pa["padding"] == (0, 0) and not pa["ceil_mode"]:
        include = True  # no padding: both settings mean the same; use torch's default
    return [ctx.emit(ops.AvgPool2d(name=ctx.name(node), inputs=(ctx.tensor(ins[0], node),), loc=loc,
                                   count_include_pad=include, **pa))]


@handles("MaxPool")
def _max_pool(ctx: _Ctx, node, ins, attrs, loc) -> list:
    dilation = _pairs(attrs, "dilations", 1)
    y = ctx.emit(ops.MaxPool2d(name=ctx.name(node), inputs=(ctx.tensor(ins[0], node),), loc=loc, dilation=dilation,
                               **_pool_attrs(ctx, node, attrs, dilation)))
    return [y] + [_Refused(f"the indices output of {ctx.where(node)}")] * (len(node.output) - 1)


@handles("GlobalAveragePool")
def _gap(ctx: _Ctx, node, ins, attrs, loc) -> list:
    return [ctx.emit(ops.AdaptiveAvgPool2d(name=ctx.name(node), inputs=(ctx.tensor(ins[0], node),), loc=loc,
                                           output_size=(1, 1)))]


def _flatten_to(ctx: _Ctx, node, x: str, new: tuple[int, ...], loc: SourceLoc) -> str:
    feats = tuple(ctx.type_of(x).features)
    run = merged_run(feats, new)
    if run is None:
        raise UnsupportedOpError(f"{ctx.where(node)} reshapes features {list(feats)} to {list(new)}",
                                 hint="only flattening feature dims (keeping the batch dim) is supported")
    if run == (0, 0):
        return x
    return ctx.emit(ops.Flatten(name=ctx.name(node), inputs=(x,), loc=loc, start_dim=run[0], end_dim=run[1]))


@handles("Flatten")
def _flatten(ctx: _Ctx, node, ins, attrs, loc) -> list:
    x = ctx.tensor(ins[0], node)
    feats = ctx.type_of(x).features
    axis = int(attrs.get("axis", 1)) % (1 + len(feats))
    if axis != 1:
        raise UnsupportedAttributeError(f"{ctx.where(node)} has axis={attrs.get('axis')}",
                                        hint="only axis=1 (flatten each sample) is supported")
    return [_flatten_to(ctx, node, x, (int(np.prod(feats)),), loc)]


# Reshape: frontends/onnx_tensor_ops.py (any feature shape, as a Flatten where it merges a run of dims)


@handles("Concat")
def _concat(ctx: _Ctx, node, ins, attrs, loc) -> list:
    xs = [ctx.tensor(v, node) for v in ins if v is not None]
    rank = 1 + len(ctx.type_of(xs[0]).features)
    dim = int(attrs.get("axis", 0)) % rank - 1
    if dim < 0:
        raise UnsupportedAttributeError(f"{ctx.where(node)} concatenates along the batch axis")
    return [ctx.emit(ops.Concat(name=ctx.name(node), inputs=tuple(xs), loc=loc, dim=dim))]


@handles("Identity")
def _identity(ctx: _Ctx, node, ins, attrs, loc) -> list:
    return [ctx.tensor(ins[0], node)]


@handles("Dropout")
def _dropout(ctx: _Ctx, node, ins, attrs, loc) -> list:
    training = ins[2] if len(ins) > 2 else None
    if training is not None and not (isinstance(training, _Const) and not bool(training.array)):
        ratio = ins[1] if len(ins) > 1 else None
        p = float(ratio.array) if isinstance(ratio, _Const) else None
        if p != 0:
            warn_active_dropout(ctx.where(node), p, "export the model in eval mode (model.eval())"
                                if isinstance(training, _Const) else "its training_mode is an input of the graph")
    return [ctx.tensor(ins[0], node)] + [_Refused(f"the mask output of {ctx.where(node)}")] * (len(node.output) - 1)
