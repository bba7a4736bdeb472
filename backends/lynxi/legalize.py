"""Legalization for the Lynxi style: every op lowerable, every tensor <= 4-D, static T and N.

All problems are collected and reported together, each naming its node,
its source module and the reason, before any module is built.
"""

from __future__ import annotations

from snnc.backends.lynxi.build import LOWERINGS
from snnc.backends.lynxi.options import Options
from snnc.core import spelling
from snnc.core.errors import LoweringError
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.types import Dim, Layout

MAX_RANK = 4  # the chip accepts no tensor of more than 4 dimensions


def _supported() -> str:
    return ", ".join(sorted(c.model_fields["kind"].default for c in LOWERINGS))


def op_problems(graph: Graph) -> list[str]:
    """Ops, attributes and shapes the style cannot express (independent of T and N)."""
    problems: list[str] = []
    types = graph.types
    for op in graph:
        if not isinstance(op, ops.Input) and type(op) not in LOWERINGS:
            problems.append(f"{op.where()}: the lynxi target has no lowering for '{op.kind}' "
                            f"(supported: {_supported()})")
            continue
        if isinstance(op, ops.NeuronOp) and op.state_from is not None:
            problems.append(f"{op.where()}: starts from the final membrane potential of %{op.state_from} (one "
                            "neuron module called twice on whole sequences); the lynxi program runs every "
                            "neuron step by step over a chunk of T, so it cannot hand a state on after the "
                            "last step (the cpu target runs it)")
            continue
        if isinstance(op, ops.NeuronOp) and op.extensions():
            problems.append(f"{op.where()}: the lynxi target has no neuron with {', '.join(op.extensions())}")
            continue
        if isinstance(op, ops.Scale) and op.weight is not None and graph.params[op.weight].dim() > 1:
            problems.append(f"{op.where()}: the lynxi target scales per channel, not per element")
            continue
        t = types[op.name]
        rank = 1 + len(t.features)  # time and batch fold into one dim
        if rank > MAX_RANK:
            problems.append(f"{op.where()}: its value {t} would be a {rank}-D tensor "
                            f"[T*N, {', '.join(map(str, t.features))}]; the chip accepts at most {MAX_RANK}-D")
        if isinstance(op, ops.AdaptiveAvgPool2d):
            _, h, w = types[op.inputs[0]].features
            oh, ow = op.output_size
            fixed, copies = h % oh == 0 and w % ow == 0, oh % h == 0 and ow % w == 0
            if not (fixed or copies):
                problems.append(f"{op.where()}: adaptive pooling from {h}x{w} to {oh}x{ow} has no fixed window "
                                "(the input size must be a multiple of the output size, or the output size a "
                                "multiple of the input size: copies); use AvgPool2d")
    return problems


def _as_int(d: Dim | None) -> Dim | None:
    """A dim as an int where it is one: the folded TN dim 'T*4' gives its batch as the string '4'."""
    return int(d) if isinstance(d, str) and d.isdigit() else d


def _static(dims: list[tuple[str, Dim]], option: int | None, what: str, flag: str,
            problems: list[str]) -> int | None:
    """The one static size for T (or N): the option, else the graph's inputs' int dims, which must agree."""
    dims = [(name, _as_int(d)) for name, d in dims]
    fixed = {(name, d) for name, d in dims if isinstance(d, int)}
    if option is not None:
        for name, d in sorted(fixed):
            if d != option:
                problems.append(f"input %{name} has {what} {d} but {spelling.option(flag, option)}")
        return option
    values = {d for _, d in fixed}
    if len(values) > 1:
        problems.append(f"the inputs disagree on {what}: {sorted(fixed)}")
        return None
    if values and len(fixed) == len(dims):
        return values.pop()
    symbolic = sorted({f"%{name}: {d!r}" for name, d in dims if not isinstance(d, int)})
    problems.append(f"{what} is dynamic ({', '.join(symbolic) or 'no input has it'}); the chip needs static "
                    f"shapes: pass {spelling.option(flag, '<int>')}")
    return None


def resolve_sizes(graph: Graph, options: Options) -> tuple[int, int]:
    """(T, N) for the lowered graph, or a LoweringError saying which is missing or inconsistent."""
    problems: list[str] = []
    time_dims = [(op.name, op.type.time) for op in graph.inputs if op.type.layout.has_time]
    batch_dims = [(op.name, op.type.batch) for op in graph.inputs]
    has_time = any(t.layout.has_time for t in graph.types.values())
    T = _static(time_dims, options.time_steps, "time steps T", "time_steps", problems) if has_time else 1
    N = _static(batch_dims, options.batch_size, "batch size N", "batch_size", problems)
    for op in graph.inputs:  # a folded [T*N, *] input declared with a number must match T*N
        folded = op.type.shape[0]
        if op.type.layout is Layout.TN and isinstance(folded, int) and T and N and folded != T * N:
            problems.append(f"input %{op.name} has a folded time*batch dim of {folded}, not T*N = {T}*{N}")
    if problems:
        raise LoweringError("the lynxi target cannot fix the shapes of this graph:\n  " + "\n  ".join(problems),
                            hint="compile with static sizes, e.g. "
                                 + spelling.options("snnc.compile(g, 'lynxi', out, {})", time_steps=8, batch_size=16))
    return T, N


def legalize(graph: Graph, options: Options | None = None) -> Graph:
    """Check that `graph` can be lowered; report every offending node at once. Returns the graph."""
    problems = op_problems(graph)
    if options is not None and options.state_io:
        problems += [f"{op.where()}: a mean over time sums the steps so far, and with state_io the program "
                     "runs chunks of T steps that hand on only the neurons' potentials (compile without "
                     "state_io: the program then runs the whole sequence)"
                     for op in graph if isinstance(op, ops.TimeMean)]
    if problems:
        raise LoweringError("the lynxi target cannot express this graph:\n  " + "\n  ".join(problems),
                            hint="rewrite these nodes with supported ops, or choose another target (cpu)")
    if options is not None:
        resolve_sizes(graph, options)
    return graph
