"""torch.fx lowerings of torch.nn modules, torch functions and tensor methods.

One entry per module class, function or method (`lowers_module`, ...); the
tables live in `snnc.frontends.fx_lowering`. Shapes are handled symbolically:
`x.size(0)` is the batch dim, and a view that only merges feature dims is a
Flatten.
"""

from __future__ import annotations

import builtins
import math
import operator
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from snnc.core.errors import UnsupportedAttributeError, UnsupportedOpError
from snnc.frontends.fx_lowering import FoldsLeadDims, _Ctx, lowers_function, lowers_method, lowers_module, type_name
from snnc.ir import ops
from snnc.ir.ops import SourceLoc


# ---------------------------------------------------------------- modules
def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def same_padding(kernel: tuple[int, int], dilation: tuple[int, int], where: str) -> tuple[int, int]:
    """Symmetric padding equal to padding='same' (stride 1); even spans would need asymmetric padding."""
    total = [dilation[i] * (kernel[i] - 1) for i in range(2)]
    if any(t % 2 for t in total):
        raise UnsupportedAttributeError(f"{where} uses padding='same' with an even kernel (asymmetric padding)",
                                        hint="pad explicitly")
    return total[0] // 2, total[1] // 2


@lowers_module(nn.Conv2d)
def _conv2d(ctx: _Ctx, m: nn.Conv2d, node: fx.Node, loc: SourceLoc) -> str:
    if m.padding_mode != "zeros":
        raise UnsupportedAttributeError(f"Conv2d at '{loc.module_path}' uses padding_mode={m.padding_mode!r}",
                                        hint="only padding_mode='zeros' is supported")
    x = ctx.value(node.args[0], node, loc)
    padding = m.padding
    if isinstance(padding, str):
        padding = (0, 0) if padding == "valid" else same_padding(m.kernel_size, m.dilation, f"Conv2d at '{loc.module_path}'")
    return ctx.emit(ops.Conv2d(name=ctx.fresh(node.name), inputs=(x,), loc=loc,
                               weight=ctx.param(m, "weight", loc.module_path), bias=ctx.param(m, "bias", loc.module_path),
                               stride=_pair(m.stride), padding=_pair(padding), dilation=_pair(m.dilation),
                               groups=m.groups))


@lowers_module(nn.Linear)
def _linear(ctx: _Ctx, m: nn.Linear, node: fx.Node, loc: SourceLoc) -> str:
    x = ctx.value(node.args[0], node, loc)
    return ctx.emit(ops.Linear(name=ctx.fresh(node.name), inputs=(x,), loc=loc,
                               weight=ctx.param(m, "weight", loc.module_path), bias=ctx.param(m, "bias", loc.module_path)))


@lowers_module(nn.BatchNorm1d, nn.BatchNorm2d)
def _batch_norm(ctx: _Ctx, m: nn.modules.batchnorm._BatchNorm, node: fx.Node, loc: SourceLoc) -> str:
    if m.running_mean is None or m.running_var is None:
        raise UnsupportedAttributeError(f"{type_name(type(m))} at '{loc.module_path}' has track_running_stats=False",
                                        hint="inference needs running statistics; train with track_running_stats=True")
    x = ctx.value(node.args[0], node, loc)
    p = loc.module_path
    return ctx.emit(ops.BatchNorm(name=ctx.fresh(node.name), inputs=(x,), loc=loc,
                                  running_mean=ctx.param(m, "running_mean", p), running_var=ctx.param(m, "running_var", p),
                                  weight=ctx.param(m, "weight", p), bias=ctx.param(m, "bias", p), eps=float(m.eps)))


@lowers_module(nn.ReLU)
def _relu(ctx: _Ctx, m: nn.Module, node: fx.Node, loc: SourceLoc) -> str:
    return ctx.emit(ops.ReLU(name=ctx.fresh(node.name), inputs=(ctx.value(node.args[0], node, loc),), loc=loc))


def _bound(v: Any, what: str, loc: SourceLoc) -> float | None:
    if v is None or isinstance(v, (int, float)) and not isinstance(v, bool):
        return None if v is None else float(v)
    raise UnsupportedAttributeError(f"clamp in {loc.describe()} has a {type(v).__name__} {what} bound",
                                    hint="only bounds that are numbers are supported")


def clamp_op(ctx: _Ctx, x: str, lo: Any, hi: Any, name: str, loc: SourceLoc) -> str:
    """Clamp(lo, hi) of x; ReLU6, Hardtanh, clamp and clip all lower to it."""
    return ctx.emit(ops.Clamp(name=ctx.fresh(name), inputs=(x,), loc=loc, min=_bound(lo, "lower", loc),
                              max=_bound(hi, "upper", loc)))


@lowers_module(nn.ReLU6, nn.Hardtanh)
def _hardtanh(ctx: _Ctx, m: nn.Hardtanh, node: fx.Node, loc: SourceLoc) -> str:  # ReLU6 is Hardtanh(0, 6)
    return clamp_op(ctx, ctx.value(node.args[0], node, loc), m.min_val, m.max_val, node.name, loc)


_MODULE_FNS = {nn.SiLU: ops.ActivationFn.SILU, nn.Sigmoid: ops.ActivationFn.SIGMOID,
               nn.Hardswish: ops.ActivationFn.HARDSWISH, nn.Hardsigmoid: ops.ActivationFn.HARDSIGMOID,
               nn.Tanh: ops.ActivationFn.TANH}


def activation_op(ctx: _Ctx, x: str, fn: ops.ActivationFn, name: str, loc: SourceLoc) -> str:
    """A non-ReLU activation (conversion runs it only as an analog op: `analog=`, docs/conversion.md)."""
    return ctx.emit(ops.Activation(name=ctx.fresh(name), inputs=(x,), fn=fn, loc=loc))


def _gelu_fn(approximate: Any, loc: SourceLoc) -> ops.ActivationFn:
    if approximate not in ("none", "tanh"):
        raise UnsupportedAttributeError(f"gelu in {loc.describe()} has approximate={approximate!r}",
                                        hint="approximate='none' or 'tanh'")
    return ops.ActivationFn.GELU if approximate == "none" else ops.ActivationFn.GELU_TANH


@lowers_module(*_MODULE_FNS)
def _activation(ctx: _Ctx, m: nn.Module, node: fx.Node, loc: SourceLoc) -> str:
    return activation_op(ctx, ctx.value(node.args[0], node, loc), _MODULE_FNS[type(m)], node.name, loc)


@lowers_module(nn.GELU)
def _gelu(ctx: _Ctx, m: nn.GELU, node: fx.Node, loc: SourceLoc) -> str:
    return activation_op(ctx, ctx.value(node.args[0], node, loc), _gelu_fn(m.approximate, loc), node.name, loc)


@lowers_module(nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d)
def _identity(ctx: _Ctx, m: nn.Module, node: fx.Node, loc: SourceLoc) -> str:
    return ctx.value(node.args[0], node, loc)  # inference: dropout is the identity; no node needed


def _pool_args(kernel, stride, padding, ceil_mode) -> dict:
    k = _pair(kernel)
    return {"kernel_size": k, "stride": _pair(stride) if stride not in (None, ()) else k,
            "padding": _pair(padding), "ceil_mode": bool(ceil_mode)}


@lowers_module(nn.AvgPool2d)
def _avg_pool(ctx: _Ctx, m: nn.AvgPool2d, node: fx.Node, loc: SourceLoc) -> str:
    return ctx.emit(ops.AvgPool2d(name=ctx.fresh(node.name), inputs=(ctx.value(node.args[0], node, loc),),
                                  loc=loc, count_include_pad=bool(m.count_include_pad),
                                  divisor_override=m.divisor_override,
                                  **_pool_args(m.kernel_size, m.stride, m.padding, m.ceil_mode)))


@lowers_module(nn.MaxPool2d)
def _max_pool(ctx: _Ctx, m: nn.MaxPool2d, node: fx.Node, loc: SourceLoc) -> str:
    if m.return_indices:
        raise UnsupportedAttributeError(f"MaxPool2d at '{loc.module_path}' has return_indices=True")
    return ctx.emit(ops.MaxPool2d(name=ctx.fresh(node.name), inputs=(ctx.value(node.args[0], node, loc),),
                                  loc=loc, dilation=_pair(m.dilation),
                                  **_pool_args(m.kernel_size, m.stride, m.padding, m.ceil_mode)))


def _adaptive(ctx: _Ctx, x: str, size: Any, name: str, loc: SourceLoc) -> str:
    feats = ctx.type_of(x).features
    if isinstance(size, int) or size is None:
        size = (size, size)
    size = tuple(feats[1 + i] if s is None else int(s) for i, s in enumerate(size)) if len(feats) == 3 else size
    return ctx.emit(ops.AdaptiveAvgPool2d(name=ctx.fresh(name), inputs=(x,), loc=loc,
                                          output_size=_pair(size)))


@lowers_module(nn.AdaptiveAvgPool2d)
def _adaptive_avg_pool(ctx: _Ctx, m: nn.AdaptiveAvgPool2d, node: fx.Node, loc: SourceLoc) -> str:
    return _adaptive(ctx, ctx.value(node.args[0], node, loc), m.output_size, node.name, loc)


def flatten_op(ctx: _Ctx, x: str, start: int, end: int, name: str, loc: SourceLoc, lead: int) -> str:
    """Flatten torch dims start..end of a tensor whose first `lead` dims are batch/time."""
    t = ctx.type_of(x)
    rank = lead + len(t.features)
    s, e = start % rank, end % rank
    if s < lead:
        raise FoldsLeadDims(
            f"flatten of dims {start}..{end} in {loc.describe()} would merge the batch or time dim",
            hint="flatten per sample (from dim 1, or dim 2 on [T, N, *]); for a multi-step SNN use "
                 "layer.SeqToANNContainer or layers with step_mode='m' instead of flattening [T, N] by hand")
    if s == e:
        return x
    return ctx.emit(ops.Flatten(name=ctx.fresh(name), inputs=(x,), loc=loc,
                                start_dim=s - lead, end_dim=e - lead))


@lowers_module(nn.Flatten)
def _flatten(ctx: _Ctx, m: nn.Flatten, node: fx.Node, loc: SourceLoc) -> str:
    x = ctx.value(node.args[0], node, loc)
    return flatten_op(ctx, x, m.start_dim, m.end_dim, node.name, loc, ctx.lead(x, m))


# ---------------------------------------------------------------- functions
def _arg(node: fx.Node, i: int, key: str, default: Any = None) -> Any:
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(key, default)


@lowers_function(F.relu, torch.relu, torch.nn.functional.relu_)
def _f_relu(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    return ctx.emit(ops.ReLU(name=ctx.fresh(node.name), inputs=(ctx.value(node.args[0], node, loc),), loc=loc))


@lowers_function(F.relu6)
def _f_relu6(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    return clamp_op(ctx, ctx.value(node.args[0], node, loc), 0.0, 6.0, node.name, loc)


@lowers_function(F.hardtanh, F.hardtanh_)
def _f_hardtanh(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    return clamp_op(ctx, ctx.value(node.args[0], node, loc), _arg(node, 1, "min_val", -1.0),
                    _arg(node, 2, "max_val", 1.0), node.name, loc)


@lowers_function(torch.clamp, torch.clip, torch.clamp_min, torch.clamp_max)
def _f_clamp(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    x = ctx.value(node.args[0], node, loc)
    fn = getattr(node.target, "__name__", "")
    if fn == "clamp_min":
        return clamp_op(ctx, x, _arg(node, 1, "min"), None, node.name, loc)
    if fn == "clamp_max":
        return clamp_op(ctx, x, None, _arg(node, 1, "max"), node.name, loc)
    return clamp_op(ctx, x, _arg(node, 1, "min"), _arg(node, 2, "max"), node.name, loc)


_FUNCTION_FNS = {F.silu: ops.ActivationFn.SILU, torch.sigmoid: ops.ActivationFn.SIGMOID,
                 F.sigmoid: ops.ActivationFn.SIGMOID, F.hardswish: ops.ActivationFn.HARDSWISH,
                 F.hardsigmoid: ops.ActivationFn.HARDSIGMOID, torch.tanh: ops.ActivationFn.TANH,
                 F.tanh: ops.ActivationFn.TANH}


@lowers_function(*_FUNCTION_FNS)
def _f_activation(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    return activation_op(ctx, ctx.value(node.args[0], node, loc), _FUNCTION_FNS[node.target], node.name, loc)


@lowers_function(F.gelu)
def _f_gelu(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    return activation_op(ctx, ctx.value(node.args[0], node, loc), _gelu_fn(_arg(node, 1, "approximate", "none"), loc),
                         node.name, loc)


@lowers_method("sigmoid", "sigmoid_", "tanh", "tanh_")
def _m_activation(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    fn = ops.ActivationFn(str(node.target).rstrip("_"))
    return activation_op(ctx, ctx.value(node.args[0], node, loc), fn, node.name, loc)


@lowers_function(operator.add, operator.iadd, torch.add)
def _f_add(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    if node.kwargs.get("alpha", 1) != 1:
        raise UnsupportedAttributeError(f"torch.add with alpha in {loc.describe()} is not supported")
    a, b = (ctx.value(v, node, loc) for v in node.args[:2])
    return ctx.emit(ops.Add(name=ctx.fresh(node.name), inputs=(a, b), loc=loc))


@lowers_function(torch.cat, torch.concat)
def _f_cat(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    tensors = [ctx.value(v, node, loc) for v in _arg(node, 0, "tensors")]
    dim = int(_arg(node, 1, "dim", 0))
    t = ctx.type_of(tensors[0])
    lead = ctx.lead(tensors[0])
    d = dim % (lead + len(t.features)) - lead
    if d < 0:
        raise UnsupportedAttributeError(f"torch.cat along dim {dim} in {loc.describe()} concatenates batches "
                                        "or time steps", hint="concatenate along a feature dim (channels)")
    return ctx.emit(ops.Concat(name=ctx.fresh(node.name), inputs=tuple(tensors), loc=loc, dim=d))


@lowers_function(torch.flatten)
def _f_flatten(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    x = ctx.value(node.args[0], node, loc)
    return flatten_op(ctx, x, int(_arg(node, 1, "start_dim", 0)), int(_arg(node, 2, "end_dim", -1)), node.name, loc,
                      ctx.lead(x))


@lowers_function(F.avg_pool2d)
def _f_avg_pool(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    x = ctx.value(node.args[0], node, loc)
    return ctx.emit(ops.AvgPool2d(
        name=ctx.fresh(node.name), inputs=(x,), loc=loc,
        count_include_pad=bool(_arg(node, 5, "count_include_pad", True)),
        divisor_override=_arg(node, 6, "divisor_override", None),
        **_pool_args(_arg(node, 1, "kernel_size"), _arg(node, 2, "stride", None),
                     _arg(node, 3, "padding", 0), _arg(node, 4, "ceil_mode", False))))


@lowers_function(F.max_pool2d)
def _f_max_pool(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    x = ctx.value(node.args[0], node, loc)
    return ctx.emit(ops.MaxPool2d(
        name=ctx.fresh(node.name), inputs=(x,), loc=loc, dilation=_pair(_arg(node, 4, "dilation", 1)),
        **_pool_args(_arg(node, 1, "kernel_size"), _arg(node, 2, "stride", None),
                     _arg(node, 3, "padding", 0), _arg(node, 5, "ceil_mode", False))))


@lowers_function(F.adaptive_avg_pool2d)
def _f_adaptive(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    return _adaptive(ctx, ctx.value(node.args[0], node, loc), _arg(node, 1, "output_size"), node.name, loc)


def warn_active_dropout(where: str, p: float | None, hint: str) -> None:
    """A dropout that drops values at random where the model runs (training mode) becomes the identity."""
    rate = "" if p is None else f" (p={p:g})"
    warnings.warn(f"dropout{rate} in {where} runs in training mode: it drops values at random in torch; snnc "
                  f"keeps every value, as eval mode does; {hint}", stacklevel=2)


@lowers_function(F.dropout)
def _f_dropout(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    p, training = _arg(node, 1, "p", 0.5), _arg(node, 2, "training", True)
    if training is True and not (isinstance(p, (int, float)) and p == 0):
        warn_active_dropout(loc.describe(), p if isinstance(p, (int, float)) else None,
                            "F.dropout's training defaults to True: pass training=self.training")
    return ctx.value(node.args[0], node, loc)


# ---------------------------------------------------------------- shapes: x.size(i), x.shape[i], x.view(...)
@dataclass(frozen=True)
class _Shape:
    """Marker for `x.shape`: indexing it gives a _LeadDim or a static feature size."""

    value: str
    lead: int


@dataclass(frozen=True)
class _LeadDim:
    """Marker for the size of a batch/time dim (`x.size(0)`): symbolic in the IR."""

    index: int


def _dim_of(ctx: _Ctx, shape: _Shape, i: int, loc: SourceLoc) -> Any:
    feats = ctx.type_of(shape.value).features
    rank = shape.lead + len(feats)
    if not -rank <= i < rank:
        raise UnsupportedAttributeError(f"dim {i} is out of range for a rank-{rank} tensor in {loc.describe()}")
    i %= rank
    return _LeadDim(i) if i < shape.lead else feats[i - shape.lead]


@lowers_function(builtins.getattr)
def _f_getattr(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> Any:
    if node.args[1] != "shape":
        raise UnsupportedOpError(f"attribute .{node.args[1]} of a tensor in {loc.describe()} is not supported",
                                 hint="only .shape is")
    x = ctx.value(node.args[0], node, loc)
    return _Shape(x, ctx.lead(x))


@lowers_function(operator.getitem)
def _f_getitem(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> Any:
    shape = ctx.values.get(node.args[0]) if isinstance(node.args[0], fx.Node) else None
    if isinstance(shape, _Shape) and isinstance(node.args[1], int):
        return _dim_of(ctx, shape, node.args[1], loc)
    raise UnsupportedOpError(f"indexing ({node.args[1]!r}) in {loc.describe()} is not supported",
                             hint="only x.shape[i] is; tensors cannot be sliced")


@lowers_method("size")
def _m_size(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> Any:
    x = ctx.value(node.args[0], node, loc)
    dim = _arg(node, 1, "dim")
    if dim is None:
        return _Shape(x, ctx.lead(x))
    return _dim_of(ctx, _Shape(x, ctx.lead(x)), int(dim), loc)


@lowers_method("view", "reshape")
def _m_view(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    """A view that keeps the batch/time dims and merges a run of feature dims is a Flatten."""
    x = ctx.value(node.args[0], node, loc)
    dims = list(node.args[1:])
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = list(dims[0])
    dims = [ctx.values.get(d) if isinstance(d, fx.Node) else d for d in dims]
    lead = ctx.lead(x)
    feats = ctx.type_of(x).features
    bad = UnsupportedOpError(f".{node.target}{tuple(dims)} in {loc.describe()} is not supported",
                             hint="only views that flatten feature dims are, e.g. x.view(x.size(0), -1); "
                                  "use nn.Flatten")
    if len(dims) < lead or any(dims[i] != _LeadDim(i) for i in range(lead)):
        raise bad
    new = dims[lead:]
    if not all(isinstance(d, int) for d in new) or sum(d == -1 for d in new) > 1:
        raise bad
    if -1 in new:
        known = math.prod(d for d in new if d != -1)
        new[new.index(-1)] = math.prod(feats) // known if known else 0
    run = merged_run(tuple(feats), tuple(new))
    if run is None:
        raise bad
    return flatten_op(ctx, x, run[0] + lead, run[1] + lead, node.name, loc, lead)


def merged_run(features: tuple[int, ...], new: tuple[int, ...]) -> tuple[int, int] | None:
    """(s, e) such that flattening feature dims s..e of `features` gives `new` ((0, 0) if equal), else None."""
    if features == new:
        return 0, 0
    for s in range(len(features)):
        for e in range(s + 1, len(features)):
            if (*features[:s], math.prod(features[s:e + 1]), *features[e + 1:]) == new:
                return s, e
    return None


# ---------------------------------------------------------------- tensor methods
@lowers_method("relu")
def _m_relu(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    return _f_relu(ctx, node, loc)


@lowers_method("clamp", "clip", "clamp_", "clip_", "clamp_min", "clamp_max")
def _m_clamp(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    x = ctx.value(node.args[0], node, loc)
    if node.target.startswith("clamp_m"):
        bound = _arg(node, 1, node.target[-3:])
        return clamp_op(ctx, x, *((bound, None) if node.target == "clamp_min" else (None, bound)), node.name, loc)
    return clamp_op(ctx, x, _arg(node, 1, "min"), _arg(node, 2, "max"), node.name, loc)


@lowers_method("add")
def _m_add(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    return _f_add(ctx, node, loc)


@lowers_method("flatten")
def _m_flatten(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    return _f_flatten(ctx, node, loc)
