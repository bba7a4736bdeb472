"""dce: remove nodes whose values no output depends on, and identity ops."""

from __future__ import annotations

import networkx as nx

from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.passes.manager import register_pass


@register_pass("dce")
def dce(graph: Graph) -> Graph:
    """Drop dead nodes (not reaching an output) and Identity ops; inputs are kept."""
    g = graph.copy()
    for name in list(g.nodes):
        op = g.nodes[name]  # fresh: earlier removals rewire inputs
        if isinstance(op, ops.Identity):
            g.replace_uses(op.name, op.inputs[0])
            g.remove(op.name)
    nxg = g.to_networkx()
    live: set[str] = set()
    for out in g.outputs:
        live |= nx.ancestors(nxg, out.name) | {out.name}
    for name in [n for n, op in g.nodes.items() if n not in live and not isinstance(op, ops.Input)]:
        del g.nodes[name]
    g._types = None
    g.drop_unused_params()
    return g
