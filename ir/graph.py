"""The IR graph: ops in topological order, a parameter table, and inferred types."""

from __future__ import annotations

import re
from typing import Any, Iterable, Iterator

import networkx as nx
import torch

from snnc.core.errors import VerifyError
from snnc.ir.ops import Input, NeuronOp, OpBase, Output, ParamInfo, TypeInferenceError
from snnc.ir.printer import format_op_line, print_graph
from snnc.ir.types import DType, TensorType

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


class Graph:
    """A dataflow graph of IR ops.

    `nodes` maps each value name to the op producing it, in topological order.
    A `recur` op (ir/ops/temporal.py) reads its source one step late: that back
    edge may point forward in the order and is left out of `to_networkx()`, so a
    recurrent cycle closed through it is no cycle of the dataflow.
    Parameters (weights) live in `params`, referenced by name from the ops.
    Passes copy a graph (`copy()`) and edit the copy; ops themselves are immutable.
    """

    def __init__(self, name: str = "main", meta: dict[str, Any] | None = None):
        self.name = name
        self.nodes: dict[str, OpBase] = {}
        self.params: dict[str, torch.Tensor] = {}
        self.meta: dict[str, Any] = dict(meta or {})
        self._types: dict[str, TensorType] | None = None

    # -- building ---------------------------------------------------------
    def add(self, op: OpBase) -> str:
        """Append an op (its inputs must already exist); returns its value name."""
        if not _NAME.fullmatch(op.name):
            raise VerifyError(f"invalid value name {op.name!r} for {op.kind} node",
                              hint="names are identifiers, dots allowed")
        if op.name in self.nodes:
            raise VerifyError(f"value %{op.name} is defined twice")
        self.nodes[op.name] = op
        self._types = None
        return op.name

    def add_param(self, name: str, value: torch.Tensor) -> str:
        """Store a parameter under a fresh name derived from `name`; returns the name used."""
        base = name if _NAME.fullmatch(name) else re.sub(r"[^A-Za-z0-9_.]", "_", name) or "p"
        unique, i = base, 1
        while unique in self.params:
            unique, i = f"{base}_{i}", i + 1
        self.params[unique] = value.detach()
        return unique

    def fresh_name(self, base: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_.]", "_", base) or "v"
        if not (base[0].isalpha() or base[0] == "_"):
            base = "v" + base
        if base not in self.nodes:
            return base
        i = 1
        while f"{base}_{i}" in self.nodes:
            i += 1
        return f"{base}_{i}"

    def replace_op(self, op: OpBase) -> None:
        """Swap the op named op.name for `op` (same name, new attributes/inputs)."""
        if op.name not in self.nodes:
            raise KeyError(op.name)
        self.nodes[op.name] = op
        self._types = None

    def replace_uses(self, old: str, new: str, *, except_in: Iterable[str] = ()) -> None:
        """Make every user of value `old` read `new` instead."""
        skip = set(except_in)
        for name, op in list(self.nodes.items()):
            if name in skip or old not in op.inputs:
                continue
            self.nodes[name] = op.replace(inputs=tuple(new if i == old else i for i in op.inputs))
        self._types = None

    def remove(self, name: str) -> None:
        users = self.users(name) + [self.nodes[n] for n, src in self.state_links().items() if src == name]
        if users:
            raise VerifyError(f"cannot remove %{name}: still used by {', '.join('%' + u.name for u in users)}")
        del self.nodes[name]
        self._types = None

    def insert_after(self, anchor: str, op: OpBase) -> str:
        """Insert `op` right after `anchor` in the node order."""
        if op.name in self.nodes:
            raise VerifyError(f"value %{op.name} is defined twice")
        items = list(self.nodes.items())
        idx = [k for k, _ in items].index(anchor) + 1
        self.nodes = dict(items[:idx] + [(op.name, op)] + items[idx:])
        self._types = None
        return op.name

    def sort(self) -> None:
        """Re-order nodes topologically (stable: ties keep insertion order)."""
        order = {n: i for i, n in enumerate(self.nodes)}
        g = self.to_networkx()
        try:
            names = list(nx.lexicographical_topological_sort(g, key=lambda n: order[n]))
        except nx.NetworkXUnfeasible as e:
            raise VerifyError(self.cycle_message() or f"graph {self.name} has a cycle") from e
        self.nodes = {n: self.nodes[n] for n in names}
        self._types = None

    def drop_unused_params(self) -> None:
        """Forget parameters no op references; order the rest by first use."""
        order = list(dict.fromkeys(p for op in self.nodes.values() for p in op.param_refs().values()))
        self.params = {k: self.params[k] for k in order if k in self.params}

    # -- queries ----------------------------------------------------------
    def __iter__(self) -> Iterator[OpBase]:
        return iter(self.nodes.values())

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, name: str) -> OpBase:
        return self.nodes[name]

    @property
    def inputs(self) -> list[Input]:
        return [op for op in self.nodes.values() if isinstance(op, Input)]

    @property
    def outputs(self) -> list[Output]:
        return [op for op in self.nodes.values() if isinstance(op, Output)]

    def users(self, name: str) -> list[OpBase]:
        return [op for op in self.nodes.values() if name in op.inputs]

    def state_links(self) -> dict[str, str]:
        """Neuron name -> the neuron whose final membrane potential it starts from (`state_from`)."""
        return {op.name: op.state_from for op in self.nodes.values()
                if isinstance(op, NeuronOp) and op.state_from is not None}

    def to_networkx(self) -> nx.DiGraph:
        """The same-step dataflow: an edge per input (except the back edges of `recur` ops), and a state edge
        from each `state_from` neuron to the neuron continuing its state."""
        g = nx.DiGraph()
        g.add_nodes_from(self.nodes)
        for op in self.nodes.values():
            for i in op.forward_inputs():
                g.add_edge(i, op.name)
        for name, src in self.state_links().items():
            if src in self.nodes:
                g.add_edge(src, name)
        return g

    def cycle_message(self) -> str | None:
        """'graph G has a cycle without a one-step delay: %a -> %b -> %a ...', or None when there is none."""
        g = self.to_networkx()
        try:
            edges = nx.find_cycle(g)
        except nx.NetworkXNoCycle:
            return None
        names = [u for u, _ in edges] + [edges[0][0]]
        where = "; ".join(self.nodes[n].where() for n in names[:-1] if n in self.nodes)
        return (f"graph {self.name} has a cycle without a one-step delay: {' -> '.join('%' + n for n in names)} "
                f"({where}); close a recurrent edge through a `recur` op, which reads its source one step late")

    def back_edges(self) -> list[OpBase]:
        """The ops whose inputs are read one step late (`recur`)."""
        return [op for op in self.nodes.values() if op.back_edge]

    def param_info(self) -> dict[str, ParamInfo]:
        return {k: ParamInfo(tuple(v.shape), DType.from_torch(v.dtype).value if v.is_floating_point() else str(v.dtype))
                for k, v in self.params.items()}

    # -- types ------------------------------------------------------------
    @property
    def types(self) -> dict[str, TensorType]:
        """Inferred type of every value (computed once, cached until the graph changes)."""
        if self._types is None:
            self._types = self._infer()
        return self._types

    def type_of(self, name: str) -> TensorType:
        return self.types[name]

    def _infer(self) -> dict[str, TensorType]:
        types = self.infer_forward()
        for op in self.back_edges():  # a back edge reads a value of the type it declares
            for src in op.inputs:
                if src not in types:
                    raise VerifyError(f"{op.where()} reads %{src} one step late, but no node defines %{src}")
                if types[src] != types[op.name]:
                    raise VerifyError(f"{op.where()} declares {types[op.name]} but its source %{src} is "
                                      f"{types[src]}", hint="a recurrent edge carries its source's type")
        return types

    def infer_forward(self) -> dict[str, TensorType]:
        """Every value's type, a back edge's as it declares it (not checked against its source; see `types`)."""
        info = self.param_info()
        types: dict[str, TensorType] = {}
        for op in self.nodes.values():
            missing = [i for i in op.forward_inputs() if i not in types]
            if missing:
                raise VerifyError(f"{op.where()} reads {', '.join('%' + m for m in missing)}, "
                                  "which is not defined before it",
                                  hint="nodes must be in topological order (Graph.sort())")
            bad = [p for p in op.param_refs().values() if p not in info]
            if bad:
                raise VerifyError(f"{op.where()} references missing parameter(s) {', '.join('@' + b for b in bad)}",
                                  hint=f"known parameters: {', '.join(sorted(info)[:12]) or 'none'}")
            try:
                types[op.name] = op.infer([types[i] for i in op.forward_inputs()], info)
            except (TypeInferenceError, ValueError) as e:
                line = format_op_line(op, types, None)
                raise VerifyError(f"{op.where()}: {e}\n    {line}\n    {'^' * (len(op.name) + 1)}") from None
        return types

    # -- copying ----------------------------------------------------------
    def copy(self, name: str | None = None) -> "Graph":
        """A shallow copy: new node/param tables; ops and tensors are shared (both immutable by contract)."""
        g = Graph(name or self.name, self.meta)
        g.nodes = dict(self.nodes)
        g.params = dict(self.params)
        g._types = self._types
        return g

    def __str__(self) -> str:
        return print_graph(self)

    def __repr__(self) -> str:
        return f"<Graph {self.name}: {len(self.nodes)} nodes, {len(self.params)} params>"
