"""A Python time loop over a single-step network, folded into the multi-step network it means.

    def forward(self, x):                      # x: [T, N, *] (x[t]) or [N, *] (the same input each step)
        out = 0
        for t in range(T):
            out = out + self.net(x[t])         # or outs.append(...); torch.stack(outs)
        return out / T

torch.fx unrolls the loop: each stateful module (a neuron) is called T times, once per
iteration, and the i-th call continues the state the (i-1)-th left. That is exactly a
multi-step neuron over T steps, so the T calls become one node. The fold is exact only
when the iterations are the same computation: every node is identified by what it computes
from the model's inputs (its module or function and the identities of its arguments, with
x[t] read as "this step of x"), all T calls of a stateful module must compute the same
thing, and the i-th call's x[t] must be step i. The loop's results must be collected over
the steps: stacked along dim 0 (exactly the [T, N, *] output) or summed (optionally divided
by a number); the folded graph then outputs each step's term and the caller warns that
the sum over T is the model's output. Anything else is not folded, and the frontend then
refuses the repeated calls by name.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.fx as fx

_ADD = (operator.add, operator.iadd, torch.add)


@dataclass
class FoldedLoop:
    """The loop body once (`graph`), its number of iterations, and how each output was collected."""

    graph: fx.Graph
    steps: int
    collected: list[str]  # per output: 'stack' (the [T, N, *] sequence) or 'sum' (summed over the steps)
    scales: list[float]  # per output: a factor the model applied after collecting (1/T for a mean)


def fold_time_loop(graph: fx.Graph, stateful: Callable[[fx.Node], bool],
                   why: list[str] | None = None) -> FoldedLoop | None:
    """The fold of `graph`'s unrolled time loop, or None when it has none or it cannot be folded exactly
    (then, for a loop whose iterations differ, the reason is appended to `why`)."""
    calls: dict[Any, list[fx.Node]] = {}
    for n in graph.nodes:
        if n.op == "call_module" and stateful(n):
            calls.setdefault(n.target, []).append(n)
    counts = {len(v) for v in calls.values()}
    if len(counts) != 1 or counts == {1}:
        return None  # no repeated call, or modules called a different number of times: not one loop
    steps = counts.pop()
    keys, step_of = _keys(graph)
    if keys is None:
        return None
    for nodes in calls.values():
        if len({keys[n] for n in nodes}) != 1:  # the iterations compute different things
            if why is not None:
                why.append(f"the {steps} calls of '{nodes[0].target}' read values that change from one "
                           "iteration to the next (a value carried over to the next step, such as a recurrence "
                           "through a Python attribute), so the iterations are not one multi-step network")
            return None
        for i, n in enumerate(nodes):
            if any(step_of.get(a, i) != i for a in _ancestors(n)):
                return None  # the i-th call does not read step i
    out = next(n for n in graph.nodes if n.op == "output")
    results = out.args[0] if isinstance(out.args[0], (tuple, list)) else [out.args[0]]
    found = [_collected(r, keys, steps) for r in results]
    if any(f is None for f in found):
        return None
    return FoldedLoop(_body(graph, keys, [f[0] for f in found]), steps,  # type: ignore[index]
                      [f[1] for f in found], [f[2] for f in found])  # type: ignore[index]


def _keys(graph: fx.Graph) -> tuple[dict[fx.Node, tuple] | None, dict[fx.Node, int]]:
    """Each node's identity: what it computes from the inputs; x[t] of an input is ('step', x)."""
    keys: dict[fx.Node, tuple] = {}
    step_of: dict[fx.Node, int] = {}

    def canon(a: Any) -> Any:
        if isinstance(a, fx.Node):
            return keys[a]
        if isinstance(a, (tuple, list)):
            return (type(a).__name__, *(canon(x) for x in a))
        if isinstance(a, dict):
            return ("dict", *sorted((k, canon(v)) for k, v in a.items()))
        try:
            hash(a)
        except TypeError:
            return ("object", id(a))
        return a

    for n in graph.nodes:
        if n.op == "placeholder":
            keys[n] = ("input", n.target)
        elif n.op == "output":
            continue
        elif (n.op == "call_function" and n.target is operator.getitem and isinstance(n.args[0], fx.Node)
              and n.args[0].op == "placeholder" and isinstance(n.args[1], int)):
            keys[n] = ("step", n.args[0].target)
            step_of[n] = n.args[1]
        else:
            keys[n] = (n.op, n.target, canon(n.args), canon(n.kwargs))
    for n in graph.nodes:  # an input indexed by step is read only by step
        if n.op == "placeholder" and any(u in step_of for u in n.users) and not all(u in step_of for u in n.users):
            return None, step_of
    return keys, step_of


def _ancestors(node: fx.Node) -> set[fx.Node]:
    seen: set[fx.Node] = set()
    stack = list(node.all_input_nodes)
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(n.all_input_nodes)
    return seen


def _number(a: Any) -> bool:
    return isinstance(a, (int, float)) and not isinstance(a, bool)


def _collected(r: Any, keys: dict[fx.Node, tuple], steps: int) -> tuple[fx.Node, str, float] | None:
    """(a node computing one step's term, 'stack' or 'sum', scale) for a loop result `r`, or None."""
    scale = 1.0
    if isinstance(r, fx.Node) and r.op == "call_function" and r.target in (operator.truediv, operator.mul) \
            and _number(r.args[1]) and r.args[1] != 0:
        scale = 1.0 / r.args[1] if r.target is operator.truediv else float(r.args[1])
        r = r.args[0]
    if not isinstance(r, fx.Node):
        return None
    if r.op == "call_function" and r.target is torch.stack:
        seq = r.args[0] if r.args else r.kwargs.get("tensors")
        dim = r.args[1] if len(r.args) > 1 else r.kwargs.get("dim", 0)
        terms, how = list(seq) if isinstance(seq, (tuple, list)) else [], "stack"
        if dim != 0:
            return None
    else:
        terms, how = _sum_terms(r), "sum"
    if terms is None or len(terms) != steps or not all(isinstance(t, fx.Node) for t in terms) \
            or len({keys[t] for t in terms}) != 1:
        return None
    return terms[0], how, scale


def _sum_terms(r: Any) -> list[Any] | None:
    """The terms of a chain of additions (a number 0, the start of `acc = 0; acc = acc + y`, dropped)."""
    if _number(r) and r == 0:
        return []
    if isinstance(r, fx.Node) and r.op == "call_function" and r.target in _ADD and not r.kwargs and len(r.args) == 2:
        a, b = (_sum_terms(x) for x in r.args)
        return None if a is None or b is None else a + b
    return [r] if isinstance(r, fx.Node) else None


def _body(graph: fx.Graph, keys: dict[fx.Node, tuple], results: list[fx.Node]) -> fx.Graph:
    """One copy of each computation the results need, in the original order; x[t] reads the input itself."""
    needed: set[tuple] = set()
    for r in results:
        needed |= {keys[a] for a in _ancestors(r)} | {keys[r]}
    body = fx.Graph()
    env: dict[tuple, fx.Node] = {}
    for n in graph.nodes:
        if n.op == "output" or keys[n] in env:
            continue
        if n.op == "placeholder":
            env[keys[n]] = body.node_copy(n)
        elif keys[n] in needed:
            if keys[n][0] == "step":
                env[keys[n]] = env[("input", n.args[0].target)]
            else:
                env[keys[n]] = body.node_copy(n, lambda a: env[keys[a]])
    outs = [env[keys[r]] for r in results]
    body.output(outs[0] if len(outs) == 1 else tuple(outs))
    return body
