"""The ONNX operator table (`handles`, filled by snnc.frontends.onnx_ops), its context and value kinds.

snnc.frontends.onnx walks an ONNX graph and calls the handler of each node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import onnx
import torch

from snnc.core.errors import UnsupportedAttributeError, UnsupportedOpError
from snnc.frontends.builder import GraphBuilder
from snnc.ir.graph import Graph
from snnc.ir.ops import SourceLoc


@dataclass(frozen=True)
class _Const:
    """A constant tensor (initializer, Constant node, or a node folded over constants)."""

    array: np.ndarray
    name: str


class _Opaque:
    """A run-time shape computation snnc cannot follow; only Reshape may consume it (via shape inference)."""


@dataclass(frozen=True)
class _ShapeVec:
    """A run-time shape value: dims are ints or "N" (the batch size); `scalar` for a 0-D one."""

    dims: tuple
    scalar: bool = False


class _Refused:
    """An extra output snnc does not represent (BatchNormalization stats, MaxPool indices, Dropout mask)."""

    def __init__(self, what: str):
        self.what = what


Handler = Callable[["_Ctx", onnx.NodeProto, list, dict, SourceLoc], list]
HANDLERS: dict[str, Handler] = {}
# Operators that compute shapes; over run-time values their result is _Opaque.
SHAPE_OPS = {"Shape", "Gather", "Unsqueeze", "Squeeze", "Cast", "Slice", "Concat", "Mul", "Div", "Add", "Sub", "ReduceProd",
             "ConstantOfShape"}


def handles(*op_types: str):
    def deco(fn: Handler) -> Handler:
        for t in op_types:
            HANDLERS[t] = fn
        return fn
    return deco


def supported_ops() -> str:
    return ", ".join(sorted(HANDLERS))


class _Ctx(GraphBuilder):
    def __init__(self, graph: Graph, source: str, shapes: dict[str, list]):
        super().__init__(graph)
        self.source = source
        self.shapes = shapes  # value name -> dims from onnx shape inference (int, str or None)
        self.values: dict[str, Any] = {}

    def where(self, node: onnx.NodeProto) -> str:
        return f"node '{node.name or node.output[0]}' ({node.op_type}) in {self.source}"

    def tensor(self, v: Any, node: onnx.NodeProto, what: str = "input") -> str:
        if isinstance(v, str):
            return v
        if isinstance(v, _Refused):
            raise UnsupportedOpError(f"{self.where(node)} reads {v.what}, which snnc does not represent")
        raise UnsupportedAttributeError(f"{self.where(node)} takes a constant as its {what}; only values "
                                        "computed from the graph inputs are supported there")

    def param(self, v: Any, node: onnx.NodeProto, what: str, array: np.ndarray | None = None) -> str | None:
        if v is None:
            return None
        if not isinstance(v, _Const):
            raise UnsupportedAttributeError(f"{self.where(node)} computes its {what} at run time; snnc needs a "
                                            "constant (an initializer)")
        arr = v.array if array is None else array
        return self.param_once(arr, v.name, lambda: torch.from_numpy(
            np.array(arr, dtype=np.float32 if arr.dtype == np.float64 else arr.dtype, copy=True)))

    def name(self, node: onnx.NodeProto) -> str:
        base = node.name.strip("/").split("/")[-1] if node.name else node.op_type
        return self.graph.fresh_name(base.lower())
