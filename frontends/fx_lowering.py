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

import ast
import inspect
import operator
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable


import torch.fx as fx
import torch.nn as nn

from snnc.core.errors import FrontendError, SnncError, UnsupportedAttributeError, UnsupportedOpError
from snnc.frontends import source_lines
from snnc.frontends.time_loop import fold_time_loop
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.ops import SourceLoc
from snnc.ir.types import TensorType


class FoldsLeadDims(UnsupportedOpError, UnsupportedAttributeError):  # each refusal it replaces was one of them
    """A flatten or reshape that folds the batch/time dims together or splits them ([T, N, *] <-> [T*N, *]).
    The fx lowering has no sizes for them; torch.export has symbolic ones, so snnc.trace captures a
    multi-step model that does this with torch.export (snnc.frontends.torch_capture)."""


ModuleLowering = Callable[["_Ctx", nn.Module, fx.Node, SourceLoc], Any]
MODULE_LOWERINGS: dict[type, ModuleLowering] = {}
FUNCTION_LOWERINGS: dict[Any, Callable[["_Ctx", fx.Node, SourceLoc], Any]] = {}
METHOD_LOWERINGS: dict[str, Callable[["_Ctx", fx.Node, SourceLoc], Any]] = {}
STATEFUL_TYPES: list[type] = []  # modules that keep state between calls (neurons; snnc.frontends.snn fills it)


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
    # the per-step loop the code is in (None: whole sequences); calls in one loop interleave per step
    step_loop: int | None = None
    loops: int = 0
    stateful: dict[int, list["StatefulCall"]] = field(default_factory=dict)  # id(module) -> its calls so far
    # values the code sees reduced over time ([N, *]) that the IR keeps per step: a TimeMean's running
    # mean (x.mean(0) of a [T, N, *] value) and what is computed from it
    time_reduced: set[str] = field(default_factory=set)
    unfolded_loop: str | None = None  # why the model's own time loop was not folded (time_loop.py)
    # a container call whose children change its input in place -> the input's new value (lower_children)
    changed_inputs: dict[fx.Node, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.per_step:  # a single-step model: its forward is the body of the one time loop
            self.step_loop, self.loops = 0, 1

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

    def stateful_call(self, module: nn.Module, node: fx.Node, loc: SourceLoc, x: str) -> str | None:
        """Record a call of a stateful module (a neuron) on value `x`; returns the IR node whose final state
        this call starts from (None: the first call), or raises naming every call site.

        SpikingJelly and snnc.nn keep one state per module, in call order. Calls on whole sequences
        (multi-step, or two separate per-step loops) run one after the other: the second starts from the
        first's final state, which the IR says with `state_from`. Calls in the same per-step loop
        alternate step by step on one state, which no IR op represents.
        """
        calls = self.stateful.setdefault(id(module), [])
        previous = calls[-1] if calls else None
        if previous is not None:
            shared = self.step_loop is not None and any(c.loop == self.step_loop for c in calls)
            mine, theirs = self.type_of(x), self.type_of(previous.input)
            if shared or (mine.shape, mine.layout) != (theirs.shape, theirs.layout):
                sites = call_sites(node, [c.node for c in calls])
                why = ("in the same time step (its state would alternate between the calls step by step)"
                       if shared else f"on inputs of different shapes ({theirs} first, then {mine})")
                if shared and self.unfolded_loop:
                    why += f"; read as a Python time loop, it cannot be folded either: {self.unfolded_loop}"
                raise UnsupportedOpError(
                    f"{loc.describe()} holds one state but is called {len(sites)} times {why}; call sites: "
                    + "; ".join(sites),
                    hint="give each call its own module; a single-step network in a Python time loop: set "
                         "step_mode='m' and pass the whole sequence [T, N, *] instead")
        calls.append(StatefulCall(node, x, self.step_loop))
        return None if previous is None else previous.name

    def name_call(self, module: nn.Module, name: str) -> None:
        """The IR node of the module's latest call (stateful_call recorded it)."""
        self.stateful[id(module)][-1].name = name

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
        if value in self.time_reduced:
            return 1  # [N, *]: the mean over time
        if self.per_step or is_multi_step(module):
            return 1  # [N, *] per step, or [T*N, *] as seq_to_ann_forward folds it
        return self.type_of(value).layout.n_layout_dims


@dataclass
class StatefulCall:
    """One call of a stateful module: its fx node, input value, per-step loop and IR node."""

    node: fx.Node
    input: str
    loop: int | None
    name: str = ""


def call_site(node: fx.Node) -> str | None:
    """'file.py:12' of the user's code that made fx node `node` (the innermost frame outside torch and snnc)."""
    return source_lines.from_stack_trace(node.stack_trace)


def call_sites(node: fx.Node, earlier: list[fx.Node]) -> list[str]:
    """The call sites of a module: `earlier` calls, `node`, and its later calls in node's fx graph."""
    later = [n for n in node.graph.nodes if n.op == "call_module" and n.target == node.target and n not in earlier]
    return [call_site(n) or f"'{n.name}' (no source line)" for n in [*earlier, *later]]


class _Tracer(fx.Tracer):
    """Keeps leaf modules we lower ourselves and stamps every node with its enclosing module."""

    def __init__(self, root_type: type, prefix: str = ""):
        super().__init__()
        self.record_stack_traces = True  # node.stack_trace: errors name the user's file:line
        self._prefix = prefix
        self._scope: list[tuple[str, type]] = [(prefix, root_type)]

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return lowered_class(type(m)) is not None or super().is_leaf_module(m, qualname)

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


class FxTraceError(FrontendError):
    """torch.fx cannot trace the model's Python code (snnc.trace then captures it with torch.export)."""


def _fx_trace(root: nn.Module, root_type: type, prefix: str = "") -> fx.Graph:
    try:
        return _Tracer(root_type, prefix).trace(root)
    except FrontendError:
        raise
    except Exception as e:  # noqa: BLE001 - torch.fx raises many kinds for untraceable code
        where = f" at '{prefix}'" if prefix else ""
        first = (str(e).splitlines() or [""])[0]
        raise FxTraceError(f"torch.fx cannot trace {type_name(root_type)}{where}: {type(e).__name__}: {first}",
                           hint="data-dependent control flow cannot be traced; "
                                "export the model with torch.export or ONNX instead"
                           ).at_source(source_lines.from_exception(e)) from None


def lower_fx_graph(ctx: _Ctx, fx_graph: fx.Graph, modules: dict[str, nn.Module], inputs: list[str],
                   prefix: str) -> list[str]:
    """Lower the nodes of `fx_graph` into ctx.graph; returns the IR values it outputs.

    `modules` maps the fx graph's call_module targets to modules; `prefix` is
    the path of its root in the user's model (module paths are relative to it).
    """
    folded = None
    if ctx.per_step and ctx.step_loop == 0 and not prefix:  # the forward of a single-step model
        why: list[str] = []
        folded = fold_time_loop(fx_graph, lambda n: is_stateful(modules.get(str(n.target))), why)
        ctx.unfolded_loop = why[0] if why else None
        if folded is not None:
            fx_graph = folded.graph
            _warn_folded(folded, type_name(type(modules[""])) if "" in modules else "the model")
    args = iter(inputs)
    order = {n: i for i, n in enumerate(fx_graph.nodes)}
    for node in fx_graph.nodes:
        try:
            done = _lower_node(ctx, node, modules, args, prefix, folded)
            if node.op.startswith("call_"):
                _track_time_reduced(ctx, node, modules)
                _follow_in_place(ctx, node, modules, order)
        except SnncError as e:
            raise e.at_source(source_lines.from_stack_trace(node.stack_trace)) from None
        if done is not None:
            return done
    raise FrontendError(f"traced graph of '{prefix}' has no output")


# Ops whose result shares its input's memory: an in-place op on the result changes the input too.
_VIEWS = {"view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "transpose", "permute", "t", "expand",
          "narrow", "select", "chunk", "split", "unbind", "getitem", "contiguous", "view_as", "reshape_as", "movedim"}


def _mutated(node: fx.Node, modules: dict[str, nn.Module]) -> fx.Node | None:
    """The fx node whose tensor `node` changes in place (an inplace=True module or function, a method or
    function whose name ends in '_'), or None."""
    first = node.args[0] if node.args and isinstance(node.args[0], fx.Node) else None
    if first is None:
        return None
    if node.op == "call_module":
        return first if getattr(modules.get(str(node.target)), "inplace", False) is True else None
    name = str(node.target) if node.op == "call_method" else getattr(node.target, "__name__", "")
    if name.endswith("_") and not name.startswith("_"):
        return first
    if node.op != "call_function":
        return None
    if node.target in _AUGMENTED:  # fx records `a += b` as a + b
        return first if _augmented_assignment(node.stack_trace) is _AUGMENTED[node.target] else None
    try:
        bound = inspect.signature(node.target).bind(*node.args, **node.kwargs)
    except (TypeError, ValueError):  # a builtin without a signature
        return None
    return first if bound.arguments.get("inplace") is True else None


_AUGMENTED = {operator.add: ast.Add, operator.sub: ast.Sub, operator.mul: ast.Mult, operator.truediv: ast.Div}


def _augmented_assignment(stack_trace: str | None) -> type | None:
    """The operator class of the statement `x op= y` the node was traced from, or None (another statement)."""
    text = source_lines.statement_at(stack_trace)
    try:
        tree = ast.parse(text) if text else None
    except SyntaxError:  # a line of a longer statement
        return None
    stmt = tree.body[0] if tree is not None and len(tree.body) == 1 else None
    return type(stmt.op) if isinstance(stmt, ast.AugAssign) else None


def _follow_in_place(ctx: _Ctx, node: fx.Node, modules: dict[str, nn.Module], order: dict[fx.Node, int]) -> None:
    """After an in-place op, later readers of the tensor it changed read the changed value (fx records
    `y = relu_(x); x + y` as two uses of the old x; eager torch adds the new one twice)."""
    target, new = _mutated(node, modules), ctx.values.get(node)
    if node in ctx.changed_inputs:  # a container's children changed its input
        target, new = node.args[0], ctx.changed_inputs[node]
    if target is None or not isinstance(new, str) or not isinstance(ctx.values.get(target), str):
        return
    base = target.args[0] if target.args and isinstance(target.args[0], fx.Node) else None
    view = str(target.target) if target.op == "call_method" else getattr(target.target, "__name__", "")
    later = [u for u in (base, target) if u is not None and any(order.get(r, -1) > order[node] for r in u.users)]
    # a view's base read later would need aliasing; a container reshapes its input first, which copies a
    # view that is not contiguous, so whether torch changes it at all depends on its memory layout
    if view in _VIEWS and (base in later or node in ctx.changed_inputs and later):
        loc = ctx.graph[ctx.values[node]].loc
        raise UnsupportedOpError(
            f"{loc.describe() if loc else repr(node.name)} changes '{target.name}' in place, which shares its memory "
            f"with '{base.name}' ({view}), read again later; snnc's graph has no aliasing",
            hint="use the out-of-place form (inplace=False, or the method without '_')")
    ctx.values[target] = new


def _track_time_reduced(ctx: _Ctx, node: fx.Node, modules: dict[str, nn.Module]) -> None:
    """A value computed from a mean over time is one too (its last step is the model's); a stateful module
    on it, or a mix with a value that still has its steps, is refused (the mean is complete only at the end)."""
    v = ctx.values.get(node)
    ins = [ctx.values.get(a) for a in node.all_input_nodes]
    reduced = [i for i in ins if isinstance(i, str) and i in ctx.time_reduced]
    if not isinstance(v, str) or not reduced or v in ctx.time_reduced:
        return
    where = ctx.graph[v].loc.describe() if ctx.graph[v].loc else f"'{node.name}'"
    if node.op == "call_module" and is_stateful(modules.get(str(node.target))):
        raise UnsupportedOpError(f"{where} runs on a mean over time (%{reduced[0]}); snnc computes that mean "
                                 "step by step (its running mean), so a stateful module after it would see the "
                                 "partial means", hint="take the mean over time after the last neuron")
    timed = [i for i in ins if isinstance(i, str) and i not in ctx.time_reduced and ctx.type_of(i).layout.has_time]
    if timed:
        raise UnsupportedOpError(f"{where} combines a mean over time (%{reduced[0]}) with %{timed[0]}, which still "
                                 "has its time steps; snnc computes the mean step by step (its running mean), so it "
                                 "is complete only at the last step",
                                 hint="take the mean over time at the end of the network")
    ctx.time_reduced.add(v)


def _lower_node(ctx: _Ctx, node: fx.Node, modules: dict[str, nn.Module], args, prefix: str,
                folded=None) -> list[str] | None:
    """Lower one fx node; returns the graph's results at its output node, else None."""
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
        values = [ctx.value(r, node, SourceLoc(module_path=path)) for r in results]
        if folded is not None:  # a factor the model applied to its collected loop results
            values = [v if s == 1.0 else ctx.emit(ops.Scale(name=ctx.fresh(f"{v}_scaled"), inputs=(v,),
                                                            factor=s, loc=ctx.graph[v].loc))
                      for v, s in zip(values, folded.scales)]
        return values
    return None


def is_stateful(module: nn.Module | None) -> bool:
    """A module that keeps state between calls, or a container holding one."""
    kinds = tuple(STATEFUL_TYPES)
    return module is not None and bool(kinds) and any(isinstance(m, kinds) for m in module.modules())


def _warn_folded(folded, model: str) -> None:
    how = {"stack": f"stacks the {folded.steps} steps' outputs: the graph outputs that sequence [T, N, *]",
           "sum": f"sums the {folded.steps} steps' outputs: the graph outputs each step's term [T, N, *] (with "
                  "the model's factor applied), whose sum over T is the model's output"}
    collected = "; ".join(sorted({how[c] for c in folded.collected}))
    warnings.warn(f"{model} runs its own time loop ({folded.steps} calls of each neuron module in one forward): "
                  f"traced as the multi-step network it means, one neuron op per module over T steps (run it "
                  f"with T={folded.steps}; one forward call after a reset is one run); the model {collected}",
                  stacklevel=4)


def lower_children(ctx: _Ctx, container: nn.Module, node: fx.Node, loc: SourceLoc, *, per_step: bool) -> str:
    """Lower a container's children in order, as an nn.Sequential of them rooted at its path."""
    seq = nn.Sequential(OrderedDict(container.named_children()))
    fx_graph = _fx_trace(seq, type(container), loc.module_path)
    x = ctx.value(node.args[0], node, loc)
    saved = ctx.per_step, ctx.prefix, ctx.step_loop
    if per_step and not ctx.per_step:  # the container runs its own loop over the time steps
        ctx.step_loop, ctx.loops = ctx.loops, ctx.loops + 1
    ctx.per_step, ctx.prefix = per_step or ctx.per_step, loc.module_path
    try:
        (out,) = lower_fx_graph(ctx, fx_graph, dict(seq.named_modules()), [x], loc.module_path)
    finally:
        ctx.per_step, ctx.prefix, ctx.step_loop = saved
    first = next(n for n in fx_graph.nodes if n.op == "placeholder")
    if ctx.values.get(first, x) != x:  # a child changed the input in place (nn.ReLU(inplace=True) first, say):
        ctx.changed_inputs[node] = ctx.values[first]  # eager torch's caller reads the new value (_follow_in_place)
    return out


def lowered_class(cls: type) -> type | None:
    """The class whose lowering a module of type `cls` takes, or None. A subclass of a torch.nn module that
    overrides `forward` (a LayerNorm over channels that permutes first, say) computes something else than
    the torch class the lowering describes: it is traced through instead."""
    for c in cls.__mro__:
        if c in MODULE_LOWERINGS:
            if (c.__module__.startswith("torch.nn") and cls.forward is not c.forward
                    and not cls.__module__.startswith(("snnc.", "spikingjelly."))):  # step-mode layers lower as c
                return None
            return c
    return None


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
