"""hoist-constant-input: compute the stateless prefix that sees a constant input once, not T times.

A converted ANN takes a constant analog input: the runtime repeats [N, *] over
T steps, so every op before the first neuron computes the same thing T times.
This pass declares the timed inputs constant: they become NX ([N, *], one step),
the stateless ops that depend only on them run once in NX, and a LayoutCast
NX -> time layout repeats each value where a timed consumer (a neuron, an op
that also reads timed values, a graph output) first needs it:

    %x: [T,N,1,8,8] TNX -> conv -> scale -> if      becomes
    %x: [N,1,8,8] NX -> conv -> scale -> layout_cast{to=TNX} -> if

The graph then accepts only constant input ([N, *], with T given at run time);
that is the contract this pass adds, so it is opt-in for graphs whose input is
an analog sample (not in the default pipelines).
"""

from __future__ import annotations

from typing import Iterable

from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.types import Layout
from snnc.passes.manager import register_pass


def hoist_constant_input(graph: Graph, inputs: Iterable[str] | None = None) -> Graph:
    """Make the named timed inputs (default: all) constant NX inputs and hoist their stateless prefix."""
    g = graph.copy()
    types = graph.types
    chosen = {i.name for i in g.inputs if types[i.name].layout.has_time}
    if inputs is not None:
        chosen &= set(inputs)
    if not chosen:
        return g
    const: dict[str, Layout] = {}  # hoisted value -> the time layout it had
    for op in g:
        if op.name in chosen:
            const[op.name] = types[op.name].layout
        elif (op.inputs and not op.stateful and not isinstance(op, (ops.Output, ops.LayoutCast))
              and all(i in const for i in op.inputs)):
            const[op.name] = types[op.name].layout
    for name in list(const):
        timed_users = [u for u in g.users(name) if u.name not in const]
        if not timed_users:
            continue
        layout = const[name]
        cast = g.fresh_name(f"{name}_repeat")
        g.insert_after(name, ops.LayoutCast(name=cast, inputs=(name,), to=layout, loc=g.nodes[name].loc))
        for u in timed_users:
            if isinstance(u, ops.LayoutCast):
                continue  # a cast from NX already repeats over time
            g.nodes[u.name] = u.replace(inputs=tuple(cast if i == name else i for i in u.inputs))
        if not g.users(cast):
            g.remove(cast)
    for name in chosen:
        op = g.nodes[name]
        g.replace_op(op.replace(type=op.type.with_layout(Layout.NX)))
    g._types = None
    return g


@register_pass("hoist-constant-input")
def hoist(graph: Graph) -> Graph:
    """Declare timed inputs constant (NX) and compute the stateless ops before the first neuron once."""
    return hoist_constant_input(graph)
