"""Explicit layout changes between NX, TNX, NXT and TN."""

from __future__ import annotations

from typing import Literal, Mapping

from snnc.ir.ops.base import OpBase, ParamInfo, need, register
from snnc.ir.types import Layout, TensorType


@register
class LayoutCast(OpBase):
    """Re-arrange batch/time dims: TNX [T,N,*] <-> NXT [N,*,T] <-> TN [T*N,*].

    NX -> a time layout repeats the single step T times (a constant input).
    """

    kind: Literal["layout_cast"] = "layout_cast"
    to: Layout

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        x = ins[0]
        need(self.to.has_time, f"cannot cast {x.layout.value} to NX: that would drop the time dimension")
        return x.with_layout(self.to)
