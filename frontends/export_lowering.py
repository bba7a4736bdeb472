"""The torch.export lowering table (`lowers`, filled by snnc.frontends.aten_ops), its context and value kinds.

snnc.frontends.torch_export walks an ExportedProgram and calls the lowering of each ATen call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.fx as fx

from snnc.core.errors import UnsupportedAttributeError
from snnc.frontends.builder import GraphBuilder
from snnc.ir.graph import Graph
from snnc.ir.ops import SourceLoc


@dataclass(frozen=True)
class _Const:
    """A constant tensor (a weight, or a call folded over weights); `name` is its state-dict name."""

    tensor: torch.Tensor
    name: str


@dataclass(frozen=True)
class _Tuple:
    """The results of an op returning several values; None marks results snnc cannot represent."""

    items: tuple[Any, ...]
    op: str


class _Sym:
    """A symbolic size (aten.sym_size): only used by views, which read shapes from node metadata."""


Lowering = Callable[["_Ctx", fx.Node, dict[str, Any], SourceLoc], Any]
ATEN_LOWERINGS: dict[Any, Lowering] = {}


def lowers(*packets: Any):
    def deco(fn: Lowering) -> Lowering:
        for p in packets:
            ATEN_LOWERINGS[p] = fn
        return fn
    return deco


class _Ctx(GraphBuilder):
    """`symbolic_lead`: the program was captured by snnc.trace with symbolic T and N (torch_capture),
    so a tensor's leading symbolic dims are exactly its batch/time dims; a `.pt2` file has one (N)."""

    symbolic_lead = False

    def __init__(self, graph: Graph):
        super().__init__(graph)
        self.values: dict[fx.Node, Any] = {}
        # IR values that torch sees reduced over time ([N, *]) but the IR keeps per step: a TimeMean's
        # running mean and what is computed from it (snnc.frontends.torch_capture checks them)
        self.time_reduced: set[str] = set()

    def lead(self, node: Any) -> int:
        """How many leading (batch/time) dims the ATen value of `node` has: [N, *] -> 1, [T, N, *] -> 2,
        [T*N, *] -> 1. ATen dim indices count them; IR ops index the features only."""
        if isinstance(node, (list, tuple)):
            node = node[0]
        if not self.symbolic_lead or not isinstance(node, fx.Node):
            return 1
        shape = getattr(node.meta.get("val"), "shape", ())
        n = 0
        while n < len(shape) and not isinstance(shape[n], int):
            n += 1
        return n

    def tensor(self, v: Any, what: str, node: fx.Node, loc: SourceLoc) -> str:
        if not isinstance(v, str):
            raise UnsupportedAttributeError(f"{_op_name(node)} in {loc.describe()} takes a constant as {what}; "
                                            "only values computed from the inputs are supported there")
        return v

    def param(self, v: Any, what: str, node: fx.Node, loc: SourceLoc) -> str | None:
        if v is None:
            return None
        if not isinstance(v, _Const):
            raise UnsupportedAttributeError(f"{_op_name(node)} in {loc.describe()} computes its {what} from the "
                                            "inputs; snnc needs it to be a weight (a constant)")
        return self.param_once(v.tensor, v.name, lambda: v.tensor.detach().clone().contiguous())


def _op_name(node: fx.Node) -> str:
    t = node.target
    return f"aten.{t._overloadpacket.__name__}" if hasattr(t, "_overloadpacket") else getattr(t, "__name__", str(t))


def _packet(target: Any) -> Any:
    return getattr(target, "overloadpacket", target)


def supported_ops() -> str:
    return ", ".join(sorted({f"aten.{p.__name__}" if hasattr(p, "__name__") else str(p) for p in ATEN_LOWERINGS}))
