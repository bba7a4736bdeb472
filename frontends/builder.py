"""What the file frontends' contexts share: the graph being built, op emission, types,
and parameters stored once per source object (a weight used twice is one parameter)."""

from __future__ import annotations

from typing import Callable

import torch

from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.types import TensorType


class GraphBuilder:
    def __init__(self, graph: Graph):
        self.graph = graph
        self._params: dict[int, tuple[object, str]] = {}  # id(source) -> (source kept alive, param name)

    def param_once(self, source: object, name: str, make: Callable[[], torch.Tensor]) -> str:
        """The parameter made from `source`, added on first use (keeping `source` alive keeps its id unique)."""
        key = id(source)
        if key not in self._params:
            self._params[key] = (source, self.graph.add_param(name, make()))
        return self._params[key][1]

    def emit(self, op: ops.OpBase) -> str:
        self.graph.add(op)
        return op.name

    def type_of(self, v: str) -> TensorType:
        return self.graph.type_of(v)
