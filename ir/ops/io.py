"""Graph inputs and outputs."""

from __future__ import annotations

from typing import Literal, Mapping

from snnc.ir.ops.base import OpBase, ParamInfo, register
from snnc.ir.types import TensorType


@register
class Input(OpBase):
    """A graph input of a declared type."""

    kind: Literal["input"] = "input"
    type: TensorType
    arity = 0

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        return self.type


@register
class Output(OpBase):
    """A graph output; its value is its single input's."""

    kind: Literal["output"] = "output"

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        return ins[0]
