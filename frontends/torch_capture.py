"""Capture a model with torch.export where torch.fx cannot trace it (snnc.trace's fallback).

torch.fx runs the model's Python code on proxies, so a shape check such as
`if x.ndim == 4` or `assert x.dim() == 5` stops it. torch.export (non-strict)
runs the same code on fake tensors with concrete ranks, so the checks resolve.
The capture:

- runs the model at T=3, N=2 with both declared dynamic (`torch.export.Dim`):
  a tensor's leading symbolic dims are then exactly its batch/time dims
  ([T, N, *], [T*N, *] or, in a single-step model, [N, *]), and every
  feature dim is a concrete int. Code that fixes T or N (a specialization)
  is refused by torch.export itself, never guessed;
- replaces the forward of each stateful module (snnc.nn and SpikingJelly
  neurons, other memory modules, dropout: `snn.CAPTURE_OPAQUE`) by one call
  of the opaque custom op `snnc_capture::module(x, index)`, so the ATen graph
  holds one node per module call; that node is lowered by the module's own
  fx lowering (typed neuron ops with every parameter, or its precise refusal),
  with the module path from the registry;
- runs the children of the per-step containers (MultiStepContainer, a
  multi-step StepModeContainer) on [T*N, *], their stateful children marked
  per step, which is what the IR's neuron ops over [T, N, *] mean;
- captures in eval mode (BatchNorm running statistics, dropout off), as the fx
  path lowers them, and restores every module afterwards;
- lowers the ATen graph with the `.pt2` op table (snnc.frontends.aten_ops),
  checking after every op that the IR's feature shape is torch's, so an op
  whose lowering misreads a dim fails instead of computing something else.

A module called more than once would share its state between the calls in
PyTorch; the capture refuses that, naming the module and each call site.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import warnings
from typing import Any, Iterator, Sequence

import torch
import torch.fx as fx
import torch.nn as nn
from torch.export import Dim
from torch.export.graph_signature import OutputKind

from snnc.core.errors import FrontendError, SnncError, UnsupportedAttributeError, UnsupportedOpError
from snnc.frontends import export_lowering, snn, source_lines, torch_export
from snnc.frontends import fx_lowering
from snnc.frontends.export_lowering import _op_name
from snnc.frontends.fx_lowering import MODULE_LOWERINGS, _find, type_name
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.ops import SourceLoc
from snnc.ir.types import Layout, TensorType
from snnc.ir.verify import verify

log = logging.getLogger("snnc")

_T, _N = 3, 2  # example sizes; both dynamic, so no code may depend on them


@torch.library.custom_op("snnc_capture::module", mutates_args=())
def _module_call(x: torch.Tensor, index: int) -> torch.Tensor:
    """Stands for one call of a stateful module during capture (only its fake kernel ever runs)."""
    raise RuntimeError("snnc_capture::module stands for a module only while snnc.trace captures a model")


@_module_call.register_fake
def _(x: torch.Tensor, index: int) -> torch.Tensor:
    return torch.empty_like(x)


OPAQUE = torch.ops.snnc_capture.module.default


class _Entry:
    def __init__(self, path: str, module: nn.Module, per_step: bool):
        self.path, self.module, self.per_step = path, module, per_step


def forward_arity(model: nn.Module) -> int:
    """The number of tensor inputs of model.forward (its positional parameters without defaults)."""
    params = inspect.signature(model.forward).parameters.values()
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty for p in params)


def capture(model: nn.Module, shapes: list[tuple[int, ...]], *, layout: Layout, per_step: bool, name: str,
            meta: dict[str, Any], fx_error: SnncError) -> Graph:
    """The IR graph of `model` captured with torch.export; `fx_error` is why torch.fx could not trace it."""
    entries: list[_Entry] = []
    lead = ("T", "N") if layout.has_time and not per_step else ("N",)
    dims = {"T": Dim("T", min=2), "N": Dim("N", min=2)}  # sizes 0 and 1 would be specialized
    example = tuple(torch.zeros(*[_T if d == "T" else _N for d in lead], *s) for s in shapes)
    dynamic = tuple({i: dims[d] for i, d in enumerate(lead)} for _ in shapes)
    with _prepared(model, entries, per_step):
        quiet = logging.getLogger("torch")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)  # torch.export logs each failed guard; we raise one error
        try:
            # a guard torch cannot prove for all sizes (N*min(32, 32*N) == 32*N after a flatten) becomes a
            # runtime assert in the graph, which _lower checks at other sizes, instead of an export failure
            ep = torch.export.export(model, example, dynamic_shapes=dynamic, strict=False,
                                     prefer_deferred_runtime_asserts_over_guards=True)
        except SnncError:
            raise
        except Exception as e:  # noqa: BLE001 - torch.export raises many kinds for code it cannot capture
            first = (str(e).strip().splitlines() or [""])[0][:300]
            raise FrontendError(
                f"{type_name(type(model))} cannot be captured: {fx_error.message}; torch.export (the fallback) "
                f"fails too: {type(e).__name__}: {first}",
                hint="make the failing line independent of the values of the tensors and of the sizes of their "
                     "time and batch dims (T and N may vary)").at_source(source_lines.from_exception(e)) from None
        finally:
            quiet.setLevel(level)
    log.info("%s: torch.fx cannot trace it (%s); captured with torch.export", type_name(type(model)),
             fx_error.message)
    return _lower(ep, entries, layout=layout, per_step=per_step, name=name, meta=meta)


@contextlib.contextmanager
def _prepared(model: nn.Module, entries: list[_Entry], per_step: bool) -> Iterator[None]:
    """Eval mode, opaque stateful modules and flattened per-step containers, all undone on exit."""
    opaque, per_step_types, refused = (tuple(snn.CAPTURE_OPAQUE), tuple(snn.CAPTURE_PER_STEP),
                                       tuple(snn.CAPTURE_REFUSED))
    inside_per_step: set[str] = set()
    patched: list[tuple[nn.Module, Any]] = []
    training = [(m, m.training) for m in model.modules()]
    try:
        for path, m in model.named_modules():
            if any(path.startswith(e.path + ".") for e in entries):
                continue  # inside an opaque module: it is lowered whole
            loc = SourceLoc(module_path=path or type(m).__name__, module_type=type_name(type(m)))
            if refused and isinstance(m, refused):
                _find(MODULE_LOWERINGS, type(m))(None, m, None, loc)  # raises its refusal
            if per_step_types and isinstance(m, per_step_types) and getattr(m, "step_mode", "s") == "m":
                inside_per_step.add(path)
                patched.append((m, m.__dict__.get("forward")))
                m.forward = _flattened(m)
            elif opaque and isinstance(m, opaque):
                index = len(entries)
                steps = per_step or any(path.startswith(p + ".") for p in inside_per_step)
                entries.append(_Entry(path, m, steps))
                patched.append((m, m.__dict__.get("forward")))
                m.forward = (lambda i: lambda x: _module_call(x, i))(index)
        model.eval()
        yield
    finally:
        for m, fwd in reversed(patched):
            del m.forward
            if fwd is not None:
                m.forward = fwd
        for m, mode in training:
            m.training = mode


def _flattened(container: nn.Module):
    """A per-step container's children on [T*N, *]: its stateful children are opaque, marked per step."""
    children = list(container.children())

    def forward(x: torch.Tensor) -> torch.Tensor:
        y = x.flatten(0, 1)
        for c in children:
            y = c(y)
        return y.unflatten(0, (x.shape[0], x.shape[1]))
    return forward


# ---------------------------------------------------------------- lowering the ATen graph
class _Ctx(export_lowering._Ctx):
    symbolic_lead = True


def _lower(ep: torch.export.ExportedProgram, entries: list[_Entry], *, layout: Layout, per_step: bool, name: str,
           meta: dict[str, Any]) -> Graph:
    graph = Graph(name)
    graph.meta.update(meta)
    ctx = _Ctx(graph)
    source = f"the model captured by torch.export ({name})"
    consts = torch_export.constants(ep, source)
    user_outputs = [i for i, s in enumerate(ep.graph_signature.output_specs) if s.kind is OutputKind.USER_OUTPUT]
    if len(user_outputs) != len(ep.graph_signature.output_specs):
        kinds = sorted({s.kind.name for s in ep.graph_signature.output_specs} - {"USER_OUTPUT"})
        raise UnsupportedOpError(f"{source} writes to its own buffers or parameters ({', '.join(kinds)})",
                                 hint="a stateful module snnc does not know updates a buffer in forward")
    _refuse_repeated_calls(ep, entries)
    allowed = _allowed_leads(ep, consts, layout, per_step)
    fx_ctx = fx_lowering._Ctx(graph, per_step=per_step)
    for node in ep.graph.nodes:
        try:
            if node.op == "placeholder":
                ctx.values[node] = consts[node.name] if node.name in consts else _input(ctx, node, layout)
            elif node.op == "call_function" and _is_size_arithmetic(node):
                _check_assert(node)
                ctx.values[node] = export_lowering._Sym()
            elif node.op == "call_function" and node.target is OPAQUE:
                ctx.values[node] = _module(ctx, fx_ctx, node, entries[node.args[1]], allowed)
            elif node.op == "call_function":
                _check_lead(ctx, node, allowed)  # before the lowering: no lowering may see such a tensor
                ctx.values[node] = torch_export.call(ctx, node)
                if isinstance(ctx.values[node], str):
                    _check(ctx, node, allowed)
            elif node.op == "output":
                _warn_folded_outputs(ctx, node, user_outputs, allowed, name)
                torch_export.emit_outputs(ctx, node, user_outputs, source)
            else:
                raise UnsupportedOpError(f"{source}: graph node '{node.name}' ({node.op}) is not supported")
        except SnncError as e:
            raise e.at_source(source_lines.from_stack_trace(node.meta.get("stack_trace"))) from None
    graph.drop_unused_params()
    return verify(graph)


_SYM = (torch.SymInt, torch.SymBool, torch.SymFloat)
_ASSERT = torch.ops.aten._assert_scalar.default


def _is_size_arithmetic(node: fx.Node) -> bool:
    """Arithmetic on symbolic sizes, and the runtime asserts torch.export made of its guards."""
    return node.target is _ASSERT or isinstance(node.meta.get("val"), _SYM)


def _check_assert(node: fx.Node) -> None:
    """An assert on the sizes must hold for every T and N: code that needs particular sizes is refused."""
    if node.target is not _ASSERT:
        return
    cond = node.args[0].meta.get("val") if isinstance(node.args[0], fx.Node) else None
    expr = getattr(getattr(cond, "node", None), "expr", None)
    if expr is None:
        return
    for size in (1, 2, 5, 64):
        if not bool(expr.subs({s: size for s in expr.free_symbols})):
            raise UnsupportedAttributeError(
                f"{torch_export.node_loc(node).describe()} only works for some batch or time sizes "
                f"(torch.export needs {expr}, false where they are {size})",
                hint="make the model's code independent of the time and batch sizes")


def _input(ctx: _Ctx, node: fx.Node, layout: Layout) -> str:
    feats = [int(d) for d in node.meta["val"].shape[ctx.lead(node):]]
    return ctx.emit(ops.Input(name=ctx.graph.fresh_name(node.name),
                              type=TensorType(shape=layout.join("N", "T", tuple(feats)), layout=layout)))


def _allowed_leads(ep, consts, layout: Layout, per_step: bool) -> dict[tuple, tuple[str, bool]]:
    """The leading-dim expressions a value may have: how to name them, and whether its IR value has time."""
    first = next(n for n in ep.graph.nodes if n.op == "placeholder" and n.name not in consts)
    shape = first.meta["val"].shape
    if layout.has_time and not per_step:
        t, n = shape[0].node.expr, shape[1].node.expr
        return {(t, n): ("[T, N, *]", True), (t * n,): ("[T*N, *]", True), (n,): ("[N, *] (reduced over T)", False)}
    return {(shape[0].node.expr,): ("[N, *]", layout.has_time)}


def _warn_folded_outputs(ctx: _Ctx, node: fx.Node, user_outputs: list[int], allowed: dict, name: str) -> None:
    """An output left as [T*N, *] holds the values of the graph's [T, N, *] output in the same order."""
    # [T*N, *]: the one-expression lead that keeps time, beside a two-expression [T, N] lead
    multi_step = any(len(e) == 2 for e in allowed)
    folded = [e for e, (_, has_time) in allowed.items() if multi_step and len(e) == 1 and has_time]
    results = list(node.args[0])
    for i, r in enumerate(results[j] for j in user_outputs):
        if folded and isinstance(r, fx.Node) and isinstance(ctx.values.get(r), str) and _lead_of(ctx, r) == folded[0]:
            warnings.warn(f"{name}: output {i} is {_describe_lead(ctx, r, allowed)} (time folded into the batch); "
                          "the graph's output is [T, N, *] (the same values in the same order: its "
                          ".flatten(0, 1) is the model's output)", stacklevel=2)


def _lead_of(ctx: _Ctx, node: fx.Node) -> tuple:
    shape = node.meta["val"].shape
    return tuple(d.node.expr for d in shape[:ctx.lead(node)])


def _describe_lead(ctx: _Ctx, node: fx.Node, allowed: dict[tuple, tuple[str, bool]]) -> str:
    names = {}
    for exprs, _ in allowed.items():
        if len(exprs) == 2:
            names[exprs[0]], names[exprs[1]] = "T", "N"
        elif len(exprs) == 1 and exprs[0] not in names:
            names[exprs[0]] = "N" if len(allowed) == 1 else "T*N"
    shape = node.meta["val"].shape
    return "[" + ", ".join(names.get(d.node.expr, str(d)) if isinstance(d, torch.SymInt) else str(d)
                           for d in shape) + "]"


def _check_lead(ctx: _Ctx, node: fx.Node, allowed: dict[tuple, tuple[str, bool]]) -> None:
    """The value keeps batch/time first in a form the IR has ([T, N, *], [T*N, *] or [N, *])."""
    if isinstance(node.meta.get("val"), torch.Tensor) and _lead_of(ctx, node) not in allowed:
        loc = torch_export.node_loc(node)
        raise UnsupportedOpError(
            f"{_op_name(node)} ('{node.name}') in {loc.describe()} gives a tensor of shape "
            f"{_describe_lead(ctx, node, allowed)}: snnc keeps the batch and time dims first "
            f"({' or '.join(d for d, _ in allowed.values())}) and cannot move them into the features")


def _check(ctx: _Ctx, node: fx.Node, allowed: dict[tuple, tuple[str, bool]]) -> None:
    """The lowering gave torch's feature shape (after _check_lead)."""
    _check_lead(ctx, node, allowed)
    loc = torch_export.node_loc(node)
    val = node.meta.get("val")
    if not isinstance(val, torch.Tensor):
        return
    want = tuple(int(d) for d in val.shape[ctx.lead(node):])
    got = tuple(ctx.type_of(ctx.values[node]).features)
    has_time = allowed[_lead_of(ctx, node)][1]
    reduced = [i for i in node.all_input_nodes
               if isinstance(ctx.values.get(i), str) and ctx.values[i] in ctx.time_reduced]
    if reduced and has_time:
        raise UnsupportedOpError(
            f"{_op_name(node)} ('{node.name}') in {loc.describe()} combines a mean over time "
            f"('{reduced[0].name}') with a value that still has its time steps {_describe_lead(ctx, node, allowed)}"
            "; snnc computes a time mean step by step (its running mean), so the mean is complete only at the "
            "last step", hint="take the mean over time at the end of the network, after the last neuron")
    if reduced or ctx.values[node] in ctx.time_reduced:  # torch's [N, *] is the IR's running mean [T, N, *]
        ctx.time_reduced.add(ctx.values[node])
        has_time = True
    if ctx.type_of(ctx.values[node]).layout.has_time != has_time:
        raise FrontendError(f"{_op_name(node)} ('{node.name}') in {loc.describe()}: snnc's lowering gives a "
                            f"{ctx.type_of(ctx.values[node]).layout.value} value where torch's is "
                            f"{_describe_lead(ctx, node, allowed)}",
                            hint="this is a bug in snnc's lowering of this ATen op; please report it")
    if want != got:
        raise FrontendError(f"{_op_name(node)} ('{node.name}') in {loc.describe()}: snnc's lowering gives "
                            f"features {list(got)} where torch computes {list(want)}",
                            hint="this is a bug in snnc's lowering of this ATen op; please report it")


def _refuse_repeated_calls(ep, entries: list[_Entry]) -> None:
    calls: dict[int, list[fx.Node]] = {}
    for node in ep.graph.nodes:
        if node.op == "call_function" and node.target is OPAQUE:
            calls.setdefault(node.args[1], []).append(node)
    for index, nodes in calls.items():
        if len(nodes) > 1:
            e = entries[index]
            sites = ", ".join(source_lines.from_stack_trace(n.meta.get("stack_trace")) or "?" for n in nodes)
            raise UnsupportedOpError(
                f"'{e.path}' ({type_name(type(e.module))}) is called {len(nodes)} times (at {sites}); its calls "
                "share one state in PyTorch, which snnc cannot represent",
                hint="give each call its own module instance if the calls are meant to be independent")


def _module(ctx: _Ctx, fx_ctx: fx_lowering._Ctx, node: fx.Node, entry: _Entry, allowed: dict[tuple, tuple[str, bool]]) -> str:
    """One call of an opaque module, lowered by the module's own fx lowering."""
    m = entry.module
    loc = SourceLoc(module_path=entry.path, module_type=type_name(type(m)))
    x_node = node.args[0]
    x = ctx.tensor(ctx.values.get(x_node), "input", node, loc)
    lead = _lead_of(ctx, x_node)
    if lead not in allowed:
        raise UnsupportedOpError(f"{loc.describe()} receives a tensor of shape {_describe_lead(ctx, x_node, allowed)}"
                                 f"; snnc needs the batch and time dims first "
                                 f"({' or '.join(d for d, _ in allowed.values())})")
    if not allowed[lead][1]:
        raise UnsupportedOpError(f"{loc.describe()} receives a tensor reduced over time "
                                 f"{_describe_lead(ctx, x_node, allowed)}; snnc's neurons run over [T, N, *]")
    if len(allowed) > 1 and len(lead) == 1 and not entry.per_step and snn.has_neurons(m):
        raise UnsupportedAttributeError(
            f"{loc.describe()} is multi-step but receives [T*N, *] (time and batch merged), so it would take "
            "the T*N rows for time steps", hint="pass it [T, N, *] (x.unflatten(0, (T, N)))")
    lower = _find(MODULE_LOWERINGS, type(m))
    if lower is None:
        raise UnsupportedOpError(f"{type_name(type(m))} at '{entry.path}' is not supported",
                                 hint=f"supported modules: {fx_lowering.supported_modules()}")
    g = fx.Graph()
    arg = g.placeholder("x")
    call = g.call_module(entry.path, (arg,))
    fx_ctx.values[arg] = x
    fx_ctx.per_step = entry.per_step
    y = lower(fx_ctx, m, call, loc)
    ctx.values[node] = y
    _check(ctx, node, allowed)
    return y
