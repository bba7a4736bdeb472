"""Step-mode layouts: give every timed tensor a target's layout, and cancel redundant casts.

Targets run in one time layout (see ir/types.py):

    cpu, triton  TNX  [T, N, *]
    lava         NXT  [N, *, T]
    lynxi        TN   [T*N, *]

`assign_layout(graph, Layout.TN)` retypes the timed graph inputs to the target
layout (the runtime converts the caller's [N, *] or [T, N, *] data on input),
turns every existing LayoutCast into the one the target needs (or drops it) and,
unless `keep_outputs=False`, casts each output back to its original layout so
callers see the same interface. `cancel_casts` then removes casts to the layout
a value already has and composes chains of casts. Every stateless op runs in any
layout, so no other op changes.
"""

from __future__ import annotations

from snnc.core.errors import PassError
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.types import Layout
from snnc.passes.manager import PassSpec, register_pass

TARGET_LAYOUTS: dict[str, Layout] = {"cpu": Layout.TNX, "triton": Layout.TNX, "lava": Layout.NXT,
                                     "lynxi": Layout.TN}


def assign_layout(graph: Graph, layout: Layout | str, *, keep_outputs: bool = True) -> Graph:
    """Every tensor with a time dimension gets `layout`; NX (single-step) tensors stay NX."""
    layout = _parse(layout)
    g = graph.copy()
    before = graph.types
    for name in list(g.nodes):
        op = g.nodes[name]  # fresh: earlier removals rewire inputs
        if isinstance(op, ops.Input) and op.type.layout.has_time and op.type.layout is not layout:
            g.replace_op(op.replace(type=op.type.with_layout(layout)))
        elif isinstance(op, ops.LayoutCast):
            src = g.nodes[op.inputs[0]]
            # the input was already re-laid out (nodes are visited in order)
            src_layout = Layout.NX if not before[src.name].layout.has_time else layout
            if src_layout is layout:
                g.replace_uses(op.name, op.inputs[0])
                g.remove(op.name)
            elif op.to is not layout:
                g.replace_op(op.replace(to=layout))
    if keep_outputs:
        for out in list(g.outputs):
            want = before[out.name].layout
            if want.has_time and want is not layout:
                cast = g.fresh_name(f"{out.inputs[0]}_{want.value.lower()}")
                g.insert_after(out.inputs[0], ops.LayoutCast(name=cast, inputs=out.inputs, to=want, loc=out.loc))
                g.replace_op(out.replace(inputs=(cast,)))
    meta = dict(g.meta)
    meta["layout"] = layout.value
    g.meta = meta
    return cancel_casts(g)


@register_pass("cancel-casts")
def cancel_casts(graph: Graph) -> Graph:
    """Drop layout casts to the layout a value already has; compose chains of casts into one."""
    g = graph.copy()
    for name in list(g.nodes):
        op = g.nodes[name]  # fresh: earlier removals rewire inputs
        if not isinstance(op, ops.LayoutCast):
            continue
        src = g.nodes[op.inputs[0]]
        while isinstance(src, ops.LayoutCast):  # cast(cast(x, A), B) == cast(x, B)
            src = g.nodes[src.inputs[0]]
        if g.type_of(src.name).layout is op.to:
            g.replace_uses(op.name, src.name)
            g.remove(op.name)
        elif src.name != op.inputs[0]:
            g.replace_op(op.replace(inputs=(src.name,)))
    _drop_dead_casts(g)
    return g


def _drop_dead_casts(g: Graph) -> None:
    changed = True
    while changed:
        changed = False
        for op in list(g):
            if isinstance(op, ops.LayoutCast) and not g.users(op.name):
                g.remove(op.name)
                changed = True


def _parse(layout: Layout | str) -> Layout:
    try:
        layout = Layout(layout.upper()) if isinstance(layout, str) else Layout(layout)
    except ValueError:
        raise PassError(f"unknown layout {layout!r}", hint="use one of TNX, NXT, TN") from None
    if not layout.has_time:
        raise PassError("the layout pass assigns a time layout; NX has no time dimension",
                        hint="use TNX (cpu, triton), NXT (lava) or TN (lynxi)")
    return layout


@register_pass("layout")
class AssignLayout(PassSpec):
    """Give every timed tensor one layout (TNX, NXT or TN), inserting and cancelling LayoutCasts."""

    to: Layout = Layout.TNX
    keep_outputs: bool = True

    def __call__(self, graph: Graph) -> Graph:
        return assign_layout(graph, self.to, keep_outputs=self.keep_outputs)
