"""compact-layout: run a reshape -> permute -> reshape chain at the lowest rank that computes it.

Dims of the permuted value that stay next to each other, in order, under the
permutation move as one block, so they can be one dim. ShuffleNet's channel
shuffle on [C, H, W] features

    reshape [g, C/g, H, W] -> permute (1, 0, 2, 3) -> flatten to [C, H, W]

becomes

    reshape [g, C/g, H*W]  -> permute (1, 0, 2)    -> reshape [C, H, W]

which computes the same elements (a permutation of blocks) with 4-D instead of
5-D tensors once time and batch fold into one dim, as the Lynxi chip needs.
The chain is rewritten only where the permute is the only user of the reshape
before it and a reshape or flatten is its only user; names and locs are kept.

A reshape or flatten of a reshape or flatten reads the first one's input instead
(one reshape to its own features: the same elements in the same row-major order).
The attention of the SpikingJelly transformers splits QKV as

    reshape [3C, L] -> [3, H, C/H, L] -> flatten 0..1 to [3H, C/H, L] -> slices

whose middle value is 5-D once time and batch fold; it becomes one reshape
[3C, L] -> [3H, C/H, L], and dce drops the 5-D value when nothing else reads it.
"""

from __future__ import annotations

import math

from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.passes.manager import register_pass

_RESHAPES = (ops.Reshape, ops.Flatten)


def merged_blocks(perm: tuple[int, ...]) -> list[list[int]]:
    """The runs of input dims that stay adjacent and in order under `perm`, in output order."""
    blocks: list[list[int]] = []
    for p in perm:
        if blocks and p == blocks[-1][-1] + 1:
            blocks[-1].append(p)
        else:
            blocks.append([p])
    return blocks


def _merge_reshape_chains(g: Graph) -> None:
    """Each reshape/flatten of a reshape/flatten becomes one reshape of the first one's input (in place)."""
    features = {op.name: tuple(g.type_of(op.name).features) for op in g if isinstance(op, _RESHAPES)}
    for op in list(g):
        if not isinstance(op, _RESHAPES):
            continue
        src = g[op.inputs[0]]
        if not isinstance(src, _RESHAPES):
            continue  # node order is topological: src already reads the start of its chain
        g.replace_op(ops.Reshape(name=op.name, inputs=src.inputs, shape=features[op.name], loc=op.loc))


@register_pass("compact-layout")
def compact_layout(graph: Graph) -> Graph:
    """Merge the dims that a permute moves together (reshape -> permute -> reshape chains), and chains of
    reshapes into one."""
    g = graph.copy()
    for op in list(g):
        if not isinstance(op, ops.Permute):
            continue
        src, users = g[op.inputs[0]], g.users(op.name)
        if not (isinstance(src, _RESHAPES) and len(g.users(src.name)) == 1 and len(users) == 1
                and isinstance(users[0], _RESHAPES)):
            continue
        blocks = merged_blocks(op.perm)
        if len(blocks) == len(op.perm):
            continue  # nothing moves together
        shape = g.type_of(src.name).features
        in_order = sorted(blocks, key=lambda b: b[0])
        merged = tuple(math.prod(shape[d] for d in b) for b in in_order)
        out_features = g.type_of(users[0].name).features
        g.replace_op(ops.Reshape(name=src.name, inputs=src.inputs, shape=merged, loc=src.loc))
        g.replace_op(op.replace(perm=tuple(in_order.index(b) for b in blocks)))
        g.replace_op(ops.Reshape(name=users[0].name, inputs=users[0].inputs, shape=tuple(out_features),
                                 loc=users[0].loc))
    # after the permutes: merging first could give a permute a second reshape user and keep it 5-D
    _merge_reshape_chains(g)
    return g
