"""The IR verifier: structural checks, then type inference of every node."""

from __future__ import annotations

import torch

from snnc.core.errors import VerifyError
from snnc.ir.graph import Graph
from snnc.ir.ops import Input, NeuronOp, Output


def verify(graph: Graph) -> Graph:
    """Raise VerifyError naming the first offending node; return the graph when valid."""
    if not graph.inputs:
        raise VerifyError(f"graph {graph.name} has no input")
    if not graph.outputs:
        raise VerifyError(f"graph {graph.name} has no output")
    for name, op in graph.nodes.items():
        if op.name != name:
            raise VerifyError(f"node stored as %{name} is named %{op.name}")
        if op.arity is not None and len(op.inputs) != op.arity:
            raise VerifyError(f"{op.where()} has {len(op.inputs)} input(s), expected {op.arity}")
        if op.arity is None and not op.inputs:
            raise VerifyError(f"{op.where()} needs at least one input")
        if isinstance(op, Input) and op.type.layout.has_time and op.type.time is None:
            raise VerifyError(f"{op.where()} has a time layout but no time dim")
    cycle = graph.cycle_message()
    if cycle is not None:
        raise VerifyError(cycle, hint="a cycle is legal only through a one-step delay (`recur`)")
    for out in graph.outputs:
        users = graph.users(out.name)
        if users:
            raise VerifyError(f"output {out.where()} is used by %{users[0].name}; outputs must be sinks")
    graph._types = None
    graph.types  # type inference raises VerifyError with the node and a caret
    _verify_state_links(graph)
    for name, t in graph.params.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            users = [op.name for op in graph if name in op.param_refs().values()]
            raise VerifyError(f"parameter @{name} (used by {', '.join('%' + u for u in users) or 'nothing'}) "
                              "contains NaN or Inf", hint="check the model's weights")
    return graph


def _verify_state_links(graph: Graph) -> None:
    """A neuron's `state_from` names an earlier neuron whose state has its shape; each state continues once."""
    order = {name: i for i, name in enumerate(graph.nodes)}
    taken: dict[str, str] = {}
    for name, src in graph.state_links().items():
        op = graph[name]
        if src not in graph.nodes or not isinstance(graph[src], NeuronOp):
            raise VerifyError(f"{op.where()} continues the state of %{src}, which is not a neuron of the graph")
        if order[src] >= order[name]:
            raise VerifyError(f"{op.where()} continues the state of %{src}, which comes after it",
                              hint="nodes must be in topological order (Graph.sort())")
        if op.v_init is not None:
            raise VerifyError(f"{op.where()} has both v_init={op.v_init!r} and state_from=%{src}",
                              hint="a neuron that continues another's state starts from that state")
        if src in taken:
            raise VerifyError(f"%{src}'s state is continued by both %{taken[src]} and %{name}",
                              hint="one state is handed on once, in call order")
        taken[src] = name
        mine, theirs = graph.types[op.inputs[0]], graph.types[graph[src].inputs[0]]
        if (tuple(mine.features), mine.batch) != (tuple(theirs.features), theirs.batch):  # one step's V
            raise VerifyError(f"{op.where()} continues the state of %{src}, but its input is {mine} "
                              f"where %{src}'s is {theirs}", hint="a shared membrane potential has one shape")
