"""Fusion groups: which ops a backend may run as one kernel, and the graph's record of them.

The fuse pass (snnc.passes.fuse) records the groups in the graph's metadata,
which the printer shows as `group(g0)` on every member line and `.snnir` files keep:

    meta["fusion_groups"] = {"g0": ["conv1", "conv1_in", "conv1_if"], ...}   members in order
    meta["fusion_kinds"]  = {"g0": "conv2d+scale+if", ...}                   member kinds, '+'-joined

Runtimes read the record (`live_groups`) or, for a graph that did not go
through the pass, compute the groups (`fusion_groups`). The patterns are
described in snnc.passes.fuse.
"""

from __future__ import annotations

from snnc.ir import ops
from snnc.ir.graph import Graph

ELEMENTWISE = (ops.Scale, ops.ReLU, ops.Identity, ops.Add)
_NOT_PRODUCERS = (ops.Input, ops.Output, ops.NeuronOp, ops.LayoutCast)


def _single_user(g: Graph, name: str) -> ops.OpBase | None:
    users = g.users(name)
    return users[0] if len(users) == 1 else None


def _is_repeat(g: Graph, op: ops.OpBase) -> bool:
    """A LayoutCast from one step (NX) to a time layout: the same input at every step."""
    return isinstance(op, ops.LayoutCast) and not g.type_of(op.inputs[0]).layout.has_time


def _chain_into_neuron(g: Graph, neuron: ops.NeuronOp, taken: set[str], producers: bool) -> list[str]:
    """The members before `neuron`: elementwise ops, then optionally one stateless producer."""
    chain: list[str] = []
    cur = neuron
    while True:
        src = g.nodes[cur.inputs[0]] if cur.inputs else None
        if src is None or src.name in taken or _single_user(g, src.name) is not cur:
            break
        if isinstance(src, ELEMENTWISE) or _is_repeat(g, src):
            chain.append(src.name)
            cur = src
            continue
        if producers and not isinstance(src, _NOT_PRODUCERS) and not src.stateful:
            chain.append(src.name)
        break
    return chain[::-1]


def fusion_groups(graph: Graph, *, producers: bool = True, count: bool = True) -> dict[str, list[str]]:
    """Compute the groups of `graph` (see the module doc) without changing it."""
    g = graph
    groups: list[list[str]] = []
    taken: set[str] = set()
    outputs = {o.name for o in g.outputs}
    for op in g:
        if not isinstance(op, ops.NeuronOp):
            continue
        members = _chain_into_neuron(g, op, taken, producers) + [op.name]
        users = g.users(op.name)
        counted = count and users and all(u.name in outputs for u in users)
        if len(members) > 1 or counted:
            groups.append(members)
            taken.update(members)
    for op in g:  # elementwise chains not already inside a neuron group
        if not isinstance(op, ELEMENTWISE) or op.name in taken:
            continue
        prev = [g.nodes[i] for i in op.inputs]
        if any(isinstance(p, ELEMENTWISE) and p.name not in taken and _single_user(g, p.name) is op for p in prev):
            continue  # not the head of a chain
        chain, cur = [op.name], op
        while True:
            nxt = _single_user(g, cur.name)
            if not isinstance(nxt, ELEMENTWISE) or nxt.name in taken:
                break
            chain.append(nxt.name)
            cur = nxt
        if len(chain) > 1:
            groups.append(chain)
            taken.update(chain)
    order = {n: i for i, n in enumerate(g.nodes)}
    groups.sort(key=lambda m: order[m[0]])
    return {f"g{i}": m for i, m in enumerate(groups)}


def live_groups(graph: Graph) -> dict[str, list[str]]:
    """The recorded groups that are still chains of existing nodes (a pass after `fuse` may have
    removed or rewired members); a backend runs the others member by member."""
    groups = graph.meta.get("fusion_groups") or {}
    live = {}
    for k, members in groups.items():
        if not all(m in graph.nodes for m in members):
            continue
        if all([u.name for u in graph.users(a)] == [b] and a in graph.nodes[b].inputs
               for a, b in zip(members, members[1:])):
            live[k] = list(members)
    return live
