"""torch.fx frontend: trace an nn.Module (ANN, or SNN with leaf neurons) into an IR graph.

Each torch module class, function and tensor method the frontend understands
has one entry in a lowering table; anything else raises UnsupportedOpError
naming the module path, its type, and what is supported.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from snnc.errors import FrontendError, UnsupportedAttributeError, UnsupportedOpError
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.ops import SourceLoc
from snnc.ir.types import Layout, TensorType
from snnc.ir.verify import verify

ModuleLowering = Callable[["_Ctx", nn.Module, fx.Node, SourceLoc], str]
MODULE_LOWERINGS: dict[type, ModuleLowering] = {}
FUNCTION_LOWERINGS: dict[Any, Callable[["_Ctx", fx.Node, SourceLoc], str]] = {}
METHOD_LOWERINGS: dict[str, Callable[["_Ctx", fx.Node, SourceLoc], str]] = {}


def lowers_module(*classes: type):
    def deco(fn: ModuleLowering) -> ModuleLowering:
        for c in classes:
            MODULE_LOWERINGS[c] = fn
        return fn
    return deco


def lowers_function(*fns: Any):
    def deco(fn):
        for f in fns:
            FUNCTION_LOWERINGS[f] = fn
        return fn
    return deco


def lowers_method(*names: str):
    def deco(fn):
        for n in names:
            METHOD_LOWERINGS[n] = fn
        return fn
    return deco


def type_name(cls: type) -> str:
    """'torch.nn.Conv2d' for torch.nn classes, else 'module.Class'."""
    if getattr(nn, cls.__name__, None) is cls:
        return f"torch.nn.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


@dataclass
class _Ctx:
    graph: Graph
    values: dict[fx.Node, Any] = field(default_factory=dict)  # fx node -> IR value name (or a python value)
    param_cache: dict[tuple[int, str], str] = field(default_factory=dict)
    modules: dict[str, nn.Module] = field(default_factory=dict)

    def value(self, arg: Any, node: fx.Node, loc: SourceLoc) -> str:
        v = self.values.get(arg) if isinstance(arg, fx.Node) else None
        if not isinstance(v, str):
            raise UnsupportedAttributeError(
                f"'{node.name}' at {loc.describe()} takes {arg!r}, which is not a tensor value of the graph",
                hint="only tensors computed from the model inputs can flow between layers")
        return v

    def param(self, module: nn.Module, attr: str, path: str) -> str | None:
        t = getattr(module, attr, None)
        if t is None:
            return None
        key = (id(module), attr)  # a module used twice shares its parameters
        if key not in self.param_cache:
            self.param_cache[key] = self.graph.add_param(f"{path}.{attr}" if path else attr, t.detach().clone())
        return self.param_cache[key]

    def emit(self, op: ops.OpBase) -> str:
        self.graph.add(op)
        return op.name

    def type_of(self, value: str) -> TensorType:
        return self.graph.type_of(value)


class _Tracer(fx.Tracer):
    """Keeps leaf modules we lower ourselves and stamps every node with its enclosing module."""

    def __init__(self, root: nn.Module):
        super().__init__()
        self._scope: list[tuple[str, type]] = [("", type(root))]

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, tuple(MODULE_LOWERINGS)) or super().is_leaf_module(m, qualname)

    def call_module(self, m, forward, args, kwargs):
        self._scope.append((self.path_of_module(m), type(m)))
        try:
            return super().call_module(m, forward, args, kwargs)
        finally:
            self._scope.pop()

    def create_node(self, *args, **kwargs):
        node = super().create_node(*args, **kwargs)
        node.meta["snnc_scope"] = self._scope[-1]
        return node


def _as_shapes(input_shape: Sequence[int] | Sequence[Sequence[int]], n: int) -> list[tuple[int, ...]]:
    shapes = input_shape
    if shapes and all(isinstance(d, int) for d in shapes):
        shapes = [shapes]
    shapes = [tuple(int(d) for d in s) for s in shapes]
    if len(shapes) != n:
        raise FrontendError(f"the model takes {n} input(s) but {len(shapes)} input shape(s) were given",
                            hint="pass one per-sample shape (without the batch dim) per input")
    return shapes


def trace(model: nn.Module, input_shape: Sequence[int] | Sequence[Sequence[int]], *, name: str | None = None,
          layout: Layout = Layout.NX) -> Graph:
    """Trace `model` into an IR graph.

    Args:
        input_shape: per-sample shape of each input, without the batch dim
            (e.g. (1, 8, 8)), or a list of such shapes for several inputs.
        layout: NX for ANNs (one step); TNX for multi-step SNNs.
    """
    if not isinstance(model, nn.Module):
        raise FrontendError(f"expected a torch.nn.Module, got {type(model).__name__}")
    if _find(MODULE_LOWERINGS, type(model)) is not None:  # a bare leaf layer: fx never treats the root as a leaf
        model = _Root(model)
    tracer = _Tracer(model)
    try:
        fx_graph = tracer.trace(model)
    except FrontendError:
        raise
    except Exception as e:  # noqa: BLE001 - torch.fx raises many kinds for untraceable code
        raise FrontendError(f"torch.fx cannot trace {type_name(type(model))}: {type(e).__name__}: {e}",
                            hint="data-dependent control flow cannot be traced; "
                                 "export the model with torch.export or ONNX instead") from None
    placeholders = [n for n in fx_graph.nodes if n.op == "placeholder"]
    shapes = _as_shapes(input_shape, len(placeholders))
    graph = Graph(name or type(model).__name__)
    ctx = _Ctx(graph, modules=dict(model.named_modules()))
    shape_iter = iter(shapes)
    outputs: list[str] = []
    for node in fx_graph.nodes:
        path, mtype = node.meta.get("snnc_scope", ("", type(model)))
        if node.op == "placeholder":
            dims = ("T", "N", *next(shape_iter)) if layout is Layout.TNX else ("N", *next(shape_iter))
            ctx.values[node] = ctx.emit(ops.Input(name=graph.fresh_name(node.name),
                                                  type=TensorType(shape=dims, layout=layout)))
        elif node.op == "call_module":
            module = ctx.modules[node.target]
            loc = SourceLoc(module_path=str(node.target), module_type=type_name(type(module)))
            lower = _find(MODULE_LOWERINGS, type(module))
            if lower is None:
                raise UnsupportedOpError(f"{type_name(type(module))} at '{node.target}' is not supported",
                                         hint=f"supported modules: {supported_modules()}")
            ctx.values[node] = lower(ctx, module, node, loc)
        elif node.op == "call_function":
            loc = SourceLoc(module_path=path, module_type=type_name(mtype))
            lower = FUNCTION_LOWERINGS.get(node.target)
            if lower is None:
                fname = getattr(node.target, "__name__", str(node.target))
                raise UnsupportedOpError(f"function {fname} called in {loc.describe()} is not supported",
                                         hint=f"supported functions: {supported_functions()}")
            ctx.values[node] = lower(ctx, node, loc)
        elif node.op == "call_method":
            loc = SourceLoc(module_path=path, module_type=type_name(mtype))
            lower = METHOD_LOWERINGS.get(node.target)
            if lower is None:
                raise UnsupportedOpError(f"tensor method .{node.target}() called in {loc.describe()} is not supported",
                                         hint=f"supported methods: {', '.join(sorted(METHOD_LOWERINGS))}")
            ctx.values[node] = lower(ctx, node, loc)
        elif node.op == "get_attr":
            raise UnsupportedOpError(f"'{node.target}' read as a tensor attribute in {SourceLoc(module_path=path).describe()} "
                                     "is not supported", hint="use registered submodules (nn.Linear, ...) for weights")
        elif node.op == "output":
            results = node.args[0]
            results = list(results) if isinstance(results, (tuple, list)) else [results]
            for i, r in enumerate(results):
                src = ctx.value(r, node, SourceLoc(module_path=path))
                out_name = graph.fresh_name("out" if len(results) == 1 else f"out{i}")
                outputs.append(ctx.emit(ops.Output(name=out_name, inputs=(src,))))
    return verify(graph)


class _Root(nn.Module):
    """Wraps a single leaf layer given as the whole model; its path is 'root'."""

    def __init__(self, root: nn.Module):
        super().__init__()
        self.root = root

    def forward(self, x):
        return self.root(x)


def _find(table: dict[type, Any], cls: type):
    for c in cls.__mro__:
        if c in table:
            return table[c]
    return None


def supported_modules() -> str:
    return ", ".join(sorted({type_name(c) for c in MODULE_LOWERINGS}))


def supported_functions() -> str:
    return ", ".join(sorted({getattr(f, "__name__", str(f)) for f in FUNCTION_LOWERINGS}))


# ---------------------------------------------------------------- modules
def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


@lowers_module(nn.Conv2d)
def _conv2d(ctx: _Ctx, m: nn.Conv2d, node: fx.Node, loc: SourceLoc) -> str:
    if m.padding_mode != "zeros":
        raise UnsupportedAttributeError(f"Conv2d at '{loc.module_path}' uses padding_mode={m.padding_mode!r}",
                                        hint="only padding_mode='zeros' is supported")
    x = ctx.value(node.args[0], node, loc)
    padding = m.padding
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        else:  # 'same' with stride 1
            k, d = m.kernel_size, m.dilation
            total = [d[i] * (k[i] - 1) for i in range(2)]
            if any(t % 2 for t in total):
                raise UnsupportedAttributeError(f"Conv2d at '{loc.module_path}' uses padding='same' with an even "
                                                "kernel (asymmetric padding)", hint="pad explicitly")
            padding = (total[0] // 2, total[1] // 2)
    return ctx.emit(ops.Conv2d(name=ctx.graph.fresh_name(node.name), inputs=(x,), loc=loc,
                               weight=ctx.param(m, "weight", loc.module_path), bias=ctx.param(m, "bias", loc.module_path),
                               stride=_pair(m.stride), padding=_pair(padding), dilation=_pair(m.dilation),
                               groups=m.groups))


@lowers_module(nn.Linear)
def _linear(ctx: _Ctx, m: nn.Linear, node: fx.Node, loc: SourceLoc) -> str:
    x = ctx.value(node.args[0], node, loc)
    return ctx.emit(ops.Linear(name=ctx.graph.fresh_name(node.name), inputs=(x,), loc=loc,
                               weight=ctx.param(m, "weight", loc.module_path), bias=ctx.param(m, "bias", loc.module_path)))


@lowers_module(nn.BatchNorm1d, nn.BatchNorm2d)
def _batch_norm(ctx: _Ctx, m: nn.modules.batchnorm._BatchNorm, node: fx.Node, loc: SourceLoc) -> str:
    if m.running_mean is None or m.running_var is None:
        raise UnsupportedAttributeError(f"{type_name(type(m))} at '{loc.module_path}' has track_running_stats=False",
                                        hint="inference needs running statistics; train with track_running_stats=True")
    x = ctx.value(node.args[0], node, loc)
    p = loc.module_path
    return ctx.emit(ops.BatchNorm(name=ctx.graph.fresh_name(node.name), inputs=(x,), loc=loc,
                                  running_mean=ctx.param(m, "running_mean", p), running_var=ctx.param(m, "running_var", p),
                                  weight=ctx.param(m, "weight", p), bias=ctx.param(m, "bias", p), eps=float(m.eps)))


@lowers_module(nn.ReLU)
def _relu(ctx: _Ctx, m: nn.Module, node: fx.Node, loc: SourceLoc) -> str:
    return ctx.emit(ops.ReLU(name=ctx.graph.fresh_name(node.name), inputs=(ctx.value(node.args[0], node, loc),), loc=loc))


@lowers_module(nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d)
def _identity(ctx: _Ctx, m: nn.Module, node: fx.Node, loc: SourceLoc) -> str:
    return ctx.value(node.args[0], node, loc)  # inference: dropout is the identity; no node needed


def _pool_args(kind: str, loc: SourceLoc, kernel, stride, padding, ceil_mode) -> dict:
    k = _pair(kernel)
    return {"kernel_size": k, "stride": _pair(stride) if stride not in (None, ()) else k,
            "padding": _pair(padding), "ceil_mode": bool(ceil_mode)}


@lowers_module(nn.AvgPool2d)
def _avg_pool(ctx: _Ctx, m: nn.AvgPool2d, node: fx.Node, loc: SourceLoc) -> str:
    return ctx.emit(ops.AvgPool2d(name=ctx.graph.fresh_name(node.name), inputs=(ctx.value(node.args[0], node, loc),),
                                  loc=loc, count_include_pad=bool(m.count_include_pad),
                                  divisor_override=m.divisor_override,
                                  **_pool_args("avg_pool2d", loc, m.kernel_size, m.stride, m.padding, m.ceil_mode)))


@lowers_module(nn.MaxPool2d)
def _max_pool(ctx: _Ctx, m: nn.MaxPool2d, node: fx.Node, loc: SourceLoc) -> str:
    if m.return_indices:
        raise UnsupportedAttributeError(f"MaxPool2d at '{loc.module_path}' has return_indices=True")
    return ctx.emit(ops.MaxPool2d(name=ctx.graph.fresh_name(node.name), inputs=(ctx.value(node.args[0], node, loc),),
                                  loc=loc, dilation=_pair(m.dilation),
                                  **_pool_args("max_pool2d", loc, m.kernel_size, m.stride, m.padding, m.ceil_mode)))


def _adaptive(ctx: _Ctx, x: str, size: Any, name: str, loc: SourceLoc) -> str:
    feats = ctx.type_of(x).features
    if isinstance(size, int) or size is None:
        size = (size, size)
    size = tuple(feats[1 + i] if s is None else int(s) for i, s in enumerate(size)) if len(feats) == 3 else size
    return ctx.emit(ops.AdaptiveAvgPool2d(name=ctx.graph.fresh_name(name), inputs=(x,), loc=loc,
                                          output_size=_pair(size)))


@lowers_module(nn.AdaptiveAvgPool2d)
def _adaptive_avg_pool(ctx: _Ctx, m: nn.AdaptiveAvgPool2d, node: fx.Node, loc: SourceLoc) -> str:
    return _adaptive(ctx, ctx.value(node.args[0], node, loc), m.output_size, node.name, loc)


def _flatten_op(ctx: _Ctx, x: str, start: int, end: int, name: str, loc: SourceLoc) -> str:
    rank = len(ctx.type_of(x).shape)  # the full NX rank, batch included
    lead = ctx.type_of(x).layout.n_layout_dims
    s, e = start % rank, end % rank
    if s < lead:
        raise UnsupportedAttributeError(f"flatten in {loc.describe()} starts at dim {start}, "
                                        "which would merge the batch dim", hint="flatten from dim 1 (per sample)")
    return ctx.emit(ops.Flatten(name=ctx.graph.fresh_name(name), inputs=(x,), loc=loc,
                                start_dim=s - lead, end_dim=e - lead))


@lowers_module(nn.Flatten)
def _flatten(ctx: _Ctx, m: nn.Flatten, node: fx.Node, loc: SourceLoc) -> str:
    return _flatten_op(ctx, ctx.value(node.args[0], node, loc), m.start_dim, m.end_dim, node.name, loc)


# ---------------------------------------------------------------- functions
def _arg(node: fx.Node, i: int, key: str, default: Any = None) -> Any:
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(key, default)


@lowers_function(F.relu, torch.relu, torch.nn.functional.relu_)
def _f_relu(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    return ctx.emit(ops.ReLU(name=ctx.graph.fresh_name(node.name), inputs=(ctx.value(node.args[0], node, loc),), loc=loc))


@lowers_function(operator.add, operator.iadd, torch.add)
def _f_add(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    if node.kwargs.get("alpha", 1) != 1:
        raise UnsupportedAttributeError(f"torch.add with alpha in {loc.describe()} is not supported")
    a, b = (ctx.value(v, node, loc) for v in node.args[:2])
    return ctx.emit(ops.Add(name=ctx.graph.fresh_name(node.name), inputs=(a, b), loc=loc))


@lowers_function(torch.cat, torch.concat)
def _f_cat(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    tensors = [ctx.value(v, node, loc) for v in _arg(node, 0, "tensors")]
    dim = int(_arg(node, 1, "dim", 0))
    t = ctx.type_of(tensors[0])
    d = dim % len(t.shape) - t.layout.n_layout_dims
    if d < 0:
        raise UnsupportedAttributeError(f"torch.cat along dim {dim} in {loc.describe()} concatenates batches",
                                        hint="concatenate along a feature dim (dim >= 1)")
    return ctx.emit(ops.Concat(name=ctx.graph.fresh_name(node.name), inputs=tuple(tensors), loc=loc, dim=d))


@lowers_function(torch.flatten)
def _f_flatten(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    x = ctx.value(node.args[0], node, loc)
    return _flatten_op(ctx, x, int(_arg(node, 1, "start_dim", 0)), int(_arg(node, 2, "end_dim", -1)), node.name, loc)


@lowers_function(F.avg_pool2d)
def _f_avg_pool(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    x = ctx.value(node.args[0], node, loc)
    return ctx.emit(ops.AvgPool2d(
        name=ctx.graph.fresh_name(node.name), inputs=(x,), loc=loc,
        count_include_pad=bool(_arg(node, 5, "count_include_pad", True)),
        divisor_override=_arg(node, 6, "divisor_override", None),
        **_pool_args("avg_pool2d", loc, _arg(node, 1, "kernel_size"), _arg(node, 2, "stride", None),
                     _arg(node, 3, "padding", 0), _arg(node, 4, "ceil_mode", False))))


@lowers_function(F.max_pool2d)
def _f_max_pool(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    x = ctx.value(node.args[0], node, loc)
    return ctx.emit(ops.MaxPool2d(
        name=ctx.graph.fresh_name(node.name), inputs=(x,), loc=loc, dilation=_pair(_arg(node, 4, "dilation", 1)),
        **_pool_args("max_pool2d", loc, _arg(node, 1, "kernel_size"), _arg(node, 2, "stride", None),
                     _arg(node, 3, "padding", 0), _arg(node, 5, "ceil_mode", False))))


@lowers_function(F.adaptive_avg_pool2d)
def _f_adaptive(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    return _adaptive(ctx, ctx.value(node.args[0], node, loc), _arg(node, 1, "output_size"), node.name, loc)


@lowers_function(F.dropout)
def _f_dropout(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    return ctx.value(node.args[0], node, loc)


# ---------------------------------------------------------------- tensor methods
@lowers_method("relu")
def _m_relu(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    return _f_relu(ctx, node, loc)


@lowers_method("add")
def _m_add(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    return _f_add(ctx, node, loc)


@lowers_method("flatten")
def _m_flatten(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    return _f_flatten(ctx, node, loc)


class _BatchSize:
    """Marker for `x.size(0)` / `x.shape[0]`: the symbolic batch dim."""


@lowers_method("size")
def _m_size(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> Any:
    if _arg(node, 1, "dim") == 0:
        return _BatchSize()
    raise UnsupportedOpError(f".size() other than .size(0) in {loc.describe()} is not supported",
                             hint="shapes are static per sample; use nn.Flatten or x.view(x.size(0), -1)")


@lowers_method("view", "reshape")
def _m_view(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    x = ctx.value(node.args[0], node, loc)
    dims = list(node.args[1:])
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = list(dims[0])
    first = ctx.values.get(dims[0]) if isinstance(dims[0], fx.Node) else None
    if len(dims) == 2 and isinstance(first, _BatchSize) and dims[1] == -1:
        return _flatten_op(ctx, x, 1, -1, node.name, loc)
    raise UnsupportedOpError(f".{node.target}{tuple(dims)} in {loc.describe()} is not supported",
                             hint="only x.view(x.size(0), -1) (a flatten) is; use nn.Flatten")
