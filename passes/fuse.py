"""fuse: group ops into kernels a backend can run as one pass over memory.

Groups are recorded in the graph's metadata, which the printer shows as
`group(g0)` on every member line and `.snnir` files keep:

    meta["fusion_groups"] = {"g0": ["conv1", "conv1_in", "conv1_if"], ...}   members in order
    meta["fusion_kinds"]  = {"g0": "conv2d+scale+if", ...}                   member kinds, '+'-joined

Patterns, each a chain in which every member but the last has exactly one user,
the next member (so a group reads its inputs and writes one value):

    [stateless op] -> elementwise* -> neuron [-> count]   e.g. conv2d+scale+if, linear+if, scale+if
                                                          (a repeat cast NX -> TNX counts as elementwise:
                                                          the kernel reads the one step T times)
    elementwise -> elementwise+                           e.g. scale+add+relu
    neuron -> count                                       the neuron's spikes are only read by graph
                                                          outputs, whose readout is a spike count / rate

`+count` marks a neuron whose spikes are a graph output: a backend that fuses it
also returns the spike count over T from the same pass. A backend that cannot
run a group runs its members one by one; the CPU runtime ignores groups.
"""

from __future__ import annotations

from snnc.ir import ops
from snnc.ir.fusion import fusion_groups
from snnc.ir.graph import Graph
from snnc.passes.manager import PassSpec, register_pass


def fuse(graph: Graph, *, producers: bool = True, count: bool = True) -> Graph:
    """Record the fusion groups of `graph` in its metadata (replacing any earlier grouping)."""
    g = graph.copy()
    groups = fusion_groups(g, producers=producers, count=count)
    outputs = {o.name for o in g.outputs}
    kinds = {}
    for name, members in groups.items():
        kinds[name] = "+".join(g.nodes[m].kind for m in members)
        last = g.nodes[members[-1]]
        if count and isinstance(last, ops.NeuronOp) and all(u.name in outputs for u in g.users(last.name)):
            kinds[name] += "+count"
    g.meta = {**g.meta, "fusion_groups": groups, "fusion_kinds": kinds}
    return g


@register_pass("fuse")
class Fuse(PassSpec):
    """Group ops into fused kernels (stateless op + scale + neuron, elementwise chains, neuron + count)."""

    producers: bool = True  # include the conv/linear/pool before a neuron in its group
    count: bool = True  # mark neurons read only by graph outputs as neuron + spike count

    def __call__(self, graph: Graph) -> Graph:
        return fuse(graph, producers=self.producers, count=self.count)
