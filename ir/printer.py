"""The stable, human-readable text form of a graph (used by goldens and `snnc inspect`).

    graph digits(%x: f32[N,1,8,8] NX) -> (%out)
      @conv1.weight: f32[16,1,3,3]
      %conv1: f32[N,16,8,8] NX = conv2d(%x, @conv1.weight, @conv1.bias) {stride=(1, 1), ...} loc("features.0")
      return %out

One op per line in node order; attributes in declared order, floats as repr;
parameters as typed references, never values; no ids or addresses.
"""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel

from snnc.ir.ops import OpBase
from snnc.ir.types import DType, TensorType


def format_value(v: Any) -> str:
    if isinstance(v, enum.Enum):
        return str(v.value)
    if isinstance(v, TensorType):
        return str(v)
    if isinstance(v, BaseModel) and type(v).__str__ is not BaseModel.__str__:
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, tuple):
        return "(" + ", ".join(format_value(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return repr(v)


def format_op_line(op: OpBase, types: dict[str, TensorType] | None, groups: dict[str, str] | None) -> str:
    ty = f": {types[op.name]}" if types and op.name in types else ""
    operands = [f"%{i}" for i in op.inputs] + [f"@{p}" for p in op.param_refs().values()]
    attrs = {k: v for k, v in op.attributes().items()
             if v is not None and not (k == "type" and op.kind in ("input", "recur"))}
    # a field naming another node (a neuron's state_from) prints as a value reference
    attr_s = " {" + ", ".join(f"{k}=%{v}" if k == "state_from" else f"{k}={format_value(v)}"
                              for k, v in attrs.items()) + "}" if attrs else ""
    loc = f" {op.loc}" if op.loc and op.loc.module_path else ""
    grp = f" group({groups[op.name]})" if groups and op.name in groups else ""
    if op.kind == "recur" and not ty:  # its declared type, which inference would give
        ty = f": {op.attributes()['type']}"
    return f"%{op.name}{ty} = {op.kind}({', '.join(operands)}){attr_s}{grp}{loc}"


def print_graph(graph, *, with_types: bool = True) -> str:
    """The text form of `graph` (a snnc.ir.graph.Graph, which imports this module for its __str__)."""
    types = graph.types if with_types else None
    ins = ", ".join(f"%{op.name}: {op.type}" for op in graph.inputs)
    outs = ", ".join(f"%{op.name}" for op in graph.outputs)
    lines = [f"graph {graph.name}({ins}) -> ({outs})"]
    for name, t in graph.params.items():
        dt = DType.from_torch(t.dtype).value if t.is_floating_point() else str(t.dtype).replace("torch.", "")
        lines.append(f"  @{name}: {dt}[{','.join(str(d) for d in t.shape)}]")
    groups = graph.meta.get("fusion_groups") or {}
    member_of = {m: g for g, members in groups.items() for m in members} if isinstance(groups, dict) else {}
    for op in graph:
        if op.kind == "input":
            continue
        lines.append("  " + format_op_line(op, types, member_of))
    return "\n".join(lines) + "\n"
