"""The torch.fx lowering machinery: the lowering tables, the lowering context, and the fx graph walker.

Each torch module class, function and tensor method the frontend understands
has one entry in a lowering table (`lowers_module`, `lowers_function`,
`lowers_method`); snnc.frontends.fx_ops fills them for torch.nn and
snnc.frontends.snn for spiking neurons and step-mode containers. Anything else
raises UnsupportedOpError naming the module path, its type, and what is
supported. snnc.frontends.torch_fx.trace is the entry point.

Dimension indices in the user's code refer to the tensor as torch sees it:
[N, *] for an ANN or a single-step layer, [T, N, *] for a multi-step one.
`_Ctx.lead` says how many leading (batch/time) dims a call sees, so the IR,
whose ops index feature dims only, gets the right ones.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import torch.fx as fx
import torch.nn as nn

from snnc.core.errors import FrontendError, UnsupportedAttributeError, UnsupportedOpError
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.ops import SourceLoc
from snnc.ir.types import TensorType

ModuleLowering = Callable[["_Ctx", nn.Module, fx.Node, SourceLoc], Any]
MODULE_LOWERINGS: dict[type, ModuleLowering] = {}
FUNCTION_LOWERINGS: dict[Any, Callable[["_Ctx", fx.Node, SourceLoc], Any]] = {}
METHOD_LOWERINGS: dict[str, Callable[["_Ctx", fx.Node, SourceLoc], Any]] = {}


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


def is_multi_step(module: nn.Module | None) -> bool:
    """True for a step-mode module (snnc.nn / SpikingJelly) set to multi-step mode 'm'."""
    return module is not None and getattr(module, "step_mode", None) == "m"


@dataclass(frozen=True)
class Attr:
    """A tensor attribute of the model (a get_attr node): a weight, not a value of the graph."""

    path: str
    tensor: Any
    loc: SourceLoc


def _fetch_attr(modules: dict[str, nn.Module], target: str) -> Any:
    owner, _, attr = target.rpartition(".")
    module = modules.get(owner)
    return getattr(module, attr, None) if module is not None else None


@dataclass
class _Ctx:
    graph: Graph
    values: dict[fx.Node, Any] = field(default_factory=dict)  # fx node -> IR value name (or a python value)
    param_cache: dict[tuple[int, str], str] = field(default_factory=dict)
    modules: dict[str, nn.Module] = field(default_factory=dict)
    per_step: bool = False  # inside a single-step model or a container's per-step loop: code sees [N, *]
    prefix: str = ""  # path of the (sub)module being lowered; prefixes value names inside containers

    def value(self, arg: Any, node: fx.Node, loc: SourceLoc) -> str:
        v = self.values.get(arg) if isinstance(arg, fx.Node) else None
        if isinstance(v, Attr):
            raise UnsupportedOpError(f"'{v.path}' read as a tensor attribute in {v.loc.describe()} is not supported "
                                     f"as an input of '{node.name}'",
                                     hint="use registered submodules (nn.Linear, ...) for weights; x @ W with a "
                                          "2-D parameter W is supported")
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

    def fresh(self, name: str) -> str:
        """A fresh value name for fx node `name` (prefixed with the container's path inside one)."""
        if self.prefix:  # as fx names a call of module 'a.0': 'a_0' ('_0' when it starts with a digit)
            name = f"{self.prefix}.{name.lstrip('_')}".replace(".", "_")
            name = "_" + name if name[0].isdigit() else name
        return self.graph.fresh_name(name)

    def emit(self, op: ops.OpBase) -> str:
        self.graph.add(op)
        return op.name

    def type_of(self, value: str) -> TensorType:
        return self.graph.type_of(value)

    def lead(self, value: str, module: nn.Module | None = None) -> int:
        """How many leading (batch/time) dims the torch code sees on `value`."""
        if self.per_step or is_multi_step(module):
            return 1  # [N, *] per step, or [T*N, *] as seq_to_ann_forward folds it
        return self.type_of(value).layout.n_layout_dims


class _Tracer(fx.Tracer):
    """Keeps leaf modules we lower ourselves and stamps every node with its enclosing module."""

    def __init__(self, root_type: type, prefix: str = ""):
        super().__init__()
        self._prefix = prefix
        self._scope: list[tuple[str, type]] = [(prefix, root_type)]

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, tuple(MODULE_LOWERINGS)) or super().is_leaf_module(m, qualname)

    def call_module(self, m, forward, args, kwargs):
        self._scope.append((_join(self._prefix, self.path_of_module(m)), type(m)))
        try:
            return super().call_module(m, forward, args, kwargs)
        finally:
            self._scope.pop()

    def create_node(self, *args, **kwargs):
        node = super().create_node(*args, **kwargs)
        node.meta["snnc_scope"] = self._scope[-1]
        return node


def _join(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if prefix and path else prefix or path


def _fx_trace(root: nn.Module, root_type: type, prefix: str = "") -> fx.Graph:
    try:
        return _Tracer(root_type, prefix).trace(root)
    except FrontendError:
        raise
    except Exception as e:  # noqa: BLE001 - torch.fx raises many kinds for untraceable code
        where = f" at '{prefix}'" if prefix else ""
        raise FrontendError(f"torch.fx cannot trace {type_name(root_type)}{where}: {type(e).__name__}: {e}",
                            hint="data-dependent control flow cannot be traced; "
                                 "export the model with torch.export or ONNX instead") from None


def lower_fx_graph(ctx: _Ctx, fx_graph: fx.Graph, modules: dict[str, nn.Module], inputs: list[str],
                   prefix: str) -> list[str]:
    """Lower the nodes of `fx_graph` into ctx.graph; returns the IR values it outputs.

    `modules` maps the fx graph's call_module targets to modules; `prefix` is
    the path of its root in the user's model (module paths are relative to it).
    """
    args = iter(inputs)
    for node in fx_graph.nodes:
        path, mtype = node.meta.get("snnc_scope", (prefix, nn.Module))
        if node.op == "placeholder":
            try:
                ctx.values[node] = next(args)
            except StopIteration:
                raise FrontendError(f"{prefix or 'the model'} takes more inputs than it was given "
                                    f"(extra parameter '{node.target}')") from None
        elif node.op == "call_module":
            module = modules[node.target]
            full = _join(prefix, str(node.target))
            loc = SourceLoc(module_path=full, module_type=type_name(type(module)))
            lower = _find(MODULE_LOWERINGS, type(module))
            if lower is None:
                raise UnsupportedOpError(f"{type_name(type(module))} at '{full}' is not supported",
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
        elif node.op == "get_attr":  # a weight: only lowerings that take one (x @ W) accept it
            ctx.values[node] = Attr(_join(prefix, str(node.target)), _fetch_attr(modules, str(node.target)),
                                    SourceLoc(module_path=path))
        elif node.op == "output":
            results = node.args[0]
            results = list(results) if isinstance(results, (tuple, list)) else [results]
            return [ctx.value(r, node, SourceLoc(module_path=path)) for r in results]
    raise FrontendError(f"traced graph of '{prefix}' has no output")


def lower_children(ctx: _Ctx, container: nn.Module, node: fx.Node, loc: SourceLoc, *, per_step: bool) -> str:
    """Lower a container's children in order, as an nn.Sequential of them rooted at its path."""
    seq = nn.Sequential(OrderedDict(container.named_children()))
    fx_graph = _fx_trace(seq, type(container), loc.module_path)
    x = ctx.value(node.args[0], node, loc)
    saved = ctx.per_step, ctx.prefix
    ctx.per_step, ctx.prefix = per_step or ctx.per_step, loc.module_path
    try:
        (out,) = lower_fx_graph(ctx, fx_graph, dict(seq.named_modules()), [x], loc.module_path)
    finally:
        ctx.per_step, ctx.prefix = saved
    return out


def _find(table: dict[type, Any], cls: type):
    for c in cls.__mro__:
        if c in table:
            return table[c]
    return None


def supported_modules() -> str:
    return ", ".join(sorted({type_name(c) for c, fn in MODULE_LOWERINGS.items()
                             if not getattr(fn, "refuses", False)}))


def supported_functions() -> str:
    return ", ".join(sorted({getattr(f, "__name__", str(f)) for f in FUNCTION_LOWERINGS}))
