"""torch.fx frontend: trace an nn.Module (ANN, or SNN with leaf neurons) into an IR graph.

Each torch module class, function and tensor method the frontend understands
has one entry in a lowering table; anything else raises UnsupportedOpError
naming the module path, its type, and what is supported. Spiking neurons and
step-mode containers (snnc.nn, SpikingJelly) are registered by
`snnc.frontends.snn`.

Dimension indices in the user's code refer to the tensor as torch sees it:
[N, *] for an ANN or a single-step layer, [T, N, *] for a multi-step one.
`_Ctx.lead` says how many leading (batch/time) dims a call sees, so the IR,
whose ops index feature dims only, gets the right ones.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch.fx as fx
import torch.nn as nn

from snnc.core.errors import FrontendError, UnsupportedAttributeError, UnsupportedOpError
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.ops import SourceLoc
from snnc.ir.types import Layout, TensorType
from snnc.ir.verify import verify

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
          layout: Layout | None = None, step_mode: str | None = None) -> Graph:
    """Trace `model` into an IR graph.

    Args:
        input_shape: per-sample shape of each input, without batch and time
            dims (e.g. (1, 8, 8)), or a list of such shapes for several inputs.
        layout: NX for ANNs (one step), TNX for SNNs ([T, N, *] inputs). None
            picks TNX when the model has spiking neurons or multi-step layers.
        step_mode: 's' if the model's forward takes one time step [N, *] (it is
            then run once per step), 'm' if it takes [T, N, *]. None reads the
            step_mode of the model's snnc.nn / SpikingJelly modules.
    """
    from snnc.frontends import snn

    if not isinstance(model, nn.Module):
        raise FrontendError(f"expected a torch.nn.Module, got {type(model).__name__}")
    snn.register_available()
    mode = step_mode if step_mode is not None else snn.model_step_mode(model)
    if mode not in (None, "s", "m"):
        raise FrontendError(f"step_mode {step_mode!r} is invalid: expected 's' or 'm'")
    neurons = snn.has_neurons(model)
    if layout is None:
        layout = Layout.TNX if neurons or mode == "m" else Layout.NX
    if neurons and not layout.has_time:
        raise FrontendError(f"{type_name(type(model))} has spiking neurons, which need a time dimension",
                            hint="trace it with layout=Layout.TNX (inputs [T, N, *])")
    if _find(MODULE_LOWERINGS, type(model)) is not None:  # a bare leaf layer: fx never treats the root as a leaf
        model = _Root(model)
    fx_graph = _fx_trace(model, type(model))
    placeholders = [n for n in fx_graph.nodes if n.op == "placeholder"]
    shapes = _as_shapes(input_shape, len(placeholders))
    graph = Graph(name or type(model).__name__)
    if mode is not None:
        graph.meta["step_mode"] = mode
    ctx = _Ctx(graph, per_step=(mode == "s" and layout.has_time))
    inputs = []
    for node, shape in zip(placeholders, shapes):
        dims = layout.join("N", "T", shape)
        # the forward parameter's own name ('input'), which fx renames when it shadows a builtin ('input_1')
        arg = str(node.target) if str(node.target).isidentifier() else node.name
        inputs.append(ctx.emit(ops.Input(name=graph.fresh_name(arg), type=TensorType(shape=dims, layout=layout))))
    results = lower_fx_graph(ctx, fx_graph, dict(model.named_modules()), inputs, prefix="")
    for i, r in enumerate(results):
        ctx.emit(ops.Output(name=graph.fresh_name("out" if len(results) == 1 else f"out{i}"), inputs=(r,)))
    return verify(graph)


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
        elif node.op == "get_attr":
            raise UnsupportedOpError(f"'{_join(prefix, str(node.target))}' read as a tensor attribute in "
                                     f"{SourceLoc(module_path=path).describe()} is not supported",
                                     hint="use registered submodules (nn.Linear, ...) for weights")
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
    return ", ".join(sorted({type_name(c) for c, fn in MODULE_LOWERINGS.items()
                             if not getattr(fn, "refuses", False)}))


def supported_functions() -> str:
    return ", ".join(sorted({getattr(f, "__name__", str(f)) for f in FUNCTION_LOWERINGS}))


# The lowerings of torch.nn modules, functions and tensor methods register themselves on import.
from snnc.frontends import fx_ops  # noqa: E402,F401
