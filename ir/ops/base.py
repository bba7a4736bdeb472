"""The op base class, source locations, state declarations and the op registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from pydantic import BaseModel, ConfigDict

from snnc.ir.types import TensorType


class TypeInferenceError(Exception):
    """Raised by `Op.infer`; the verifier turns it into a VerifyError naming the node."""


class SourceLoc(BaseModel):
    """Where a node came from in the user's model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    module_path: str = ""
    module_type: str = ""

    def __str__(self) -> str:
        return f'loc("{self.module_path}")'

    def describe(self) -> str:
        where = f"'{self.module_path}'" if self.module_path else "<top level>"
        return f"{where} ({self.module_type})" if self.module_type else where


@dataclass(frozen=True)
class StateSpec:
    """A state tensor of a stateful op, shaped like the op's per-step input (`stacked` of them stacked)."""

    name: str
    doc: str = ""
    stacked: int = 1  # per-step tensors stacked in it (memory estimates count them)


@dataclass(frozen=True)
class ParamInfo:
    """What type inference needs to know about a parameter."""

    shape: tuple[int, ...]
    dtype: str = "f32"


class OpBase(BaseModel):
    """One node of the IR: an immutable, typed record producing one value named `name`.

    Subclasses declare `kind` (a Literal used as discriminator), their attributes
    as typed fields, `param_fields` (fields that name entries of the graph's
    parameter table) and `infer`, their type rule.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    inputs: tuple[str, ...] = ()
    loc: SourceLoc | None = None

    arity: ClassVar[int | None] = 1  # number of inputs; None = one or more
    param_fields: ClassVar[tuple[str, ...]] = ()
    state: ClassVar[tuple[StateSpec, ...]] = ()
    stateful: ClassVar[bool] = False
    back_edge: ClassVar[bool] = False  # its inputs are read one step late (ir/ops/temporal.py's Recur)
    # False: the op is not linear in its inputs (a product of two values, softmax, ...), so on rate-coded
    # (ANN-to-SNN converted) inputs its average output is not the ANN's; conversion refuses it by name
    rate_preserving: ClassVar[bool] = True

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        raise NotImplementedError(type(self).__name__)

    def forward_inputs(self) -> tuple[str, ...]:
        """The inputs read at the same time step: all of them, none for a back edge (a `recur`)."""
        return () if self.back_edge else self.inputs

    def param_refs(self) -> dict[str, str]:
        """field name -> parameter name, for the parameter fields that are set."""
        return {f: getattr(self, f) for f in self.param_fields if getattr(self, f) is not None}

    def attributes(self) -> dict[str, Any]:
        """The op's attributes (not name/inputs/loc/kind/params), in declared order."""
        skip = {"name", "inputs", "loc", "kind", *self.param_fields}
        return {k: getattr(self, k) for k in type(self).model_fields if k not in skip}

    def replace(self, **changes: Any) -> "OpBase":
        return self.model_copy(update=changes)

    def where(self) -> str:
        """'%name (kind) from <loc>' for error messages."""
        src = f" from {self.loc.describe()}" if self.loc and (self.loc.module_path or self.loc.module_type) else ""
        return f"%{self.name} ({self.kind}){src}"


REGISTRY: dict[str, type[OpBase]] = {}


def register(cls: type[OpBase]) -> type[OpBase]:
    kind = cls.model_fields["kind"].default
    if kind in REGISTRY:
        raise RuntimeError(f"op kind {kind!r} registered twice")
    REGISTRY[kind] = cls
    return cls


def need(cond: bool, message: str) -> None:
    """Type-rule check: raise TypeInferenceError(message) unless cond."""
    if not cond:
        raise TypeInferenceError(message)
