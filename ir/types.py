"""Tensor types of the IR: dtype, layout and shape with symbolic batch/time dims."""

from __future__ import annotations

import enum
from typing import Union

import torch
from pydantic import BaseModel, ConfigDict, field_validator

Dim = Union[int, str]  # an int, or a symbol: "N" (batch), "T" (time), "T*N" (folded)


class DType(str, enum.Enum):
    F32 = "f32"
    F16 = "f16"
    BF16 = "bf16"
    SPIKE = "spike"  # values in {0, 1}; stored as a float tensor by the runtimes
    I8 = "i8"
    I16 = "i16"
    I32 = "i32"

    @property
    def torch(self) -> torch.dtype:
        return _TORCH[self]

    @staticmethod
    def from_torch(dtype: torch.dtype) -> "DType":
        for k, v in _TORCH.items():
            if v == dtype and k is not DType.SPIKE:
                return k
        raise ValueError(f"no IR dtype for torch dtype {dtype}")


_TORCH = {
    DType.F32: torch.float32,
    DType.F16: torch.float16,
    DType.BF16: torch.bfloat16,
    DType.SPIKE: torch.float32,
    DType.I8: torch.int8,
    DType.I16: torch.int16,
    DType.I32: torch.int32,
}


class Layout(str, enum.Enum):
    """Where batch and time sit in a tensor's shape."""

    NX = "NX"  # one time step: [N, *X]
    TNX = "TNX"  # time first: [T, N, *X] (multi-step default)
    NXT = "NXT"  # time last: [N, *X, T] (Lava DL)
    TN = "TN"  # time folded into batch: [T*N, *X] (Lynxi)

    @property
    def has_time(self) -> bool:
        return self is not Layout.NX

    def split(self, shape: tuple) -> tuple[tuple, tuple]:
        """(layout dims, feature dims) of a shape in this layout."""
        if self is Layout.TNX:
            return shape[:2], shape[2:]
        if self is Layout.NXT:
            return (shape[0], shape[-1]), shape[1:-1]
        return shape[:1], shape[1:]

    def join(self, batch: Dim, time: Dim, features: tuple) -> tuple:
        if self is Layout.NX:
            return (batch, *features)
        if self is Layout.TNX:
            return (time, batch, *features)
        if self is Layout.NXT:
            return (batch, *features, time)
        return (_fold(time, batch), *features)

    @property
    def n_layout_dims(self) -> int:
        return 2 if self in (Layout.TNX, Layout.NXT) else 1


def _dim(s: str) -> Dim:
    """A dim parsed from a folded symbol: '3' -> 3, 'N' -> 'N'."""
    return int(s) if s.isdigit() else s


def _fold(time: Dim, batch: Dim) -> Dim:
    if isinstance(time, int) and isinstance(batch, int):
        return time * batch
    return f"{time}*{batch}"


class TensorType(BaseModel):
    """shape + dtype + layout. Feature dims are static ints; batch/time may be symbols."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    shape: tuple[Dim, ...]
    dtype: DType = DType.F32
    layout: Layout = Layout.NX

    @field_validator("shape")
    @classmethod
    def _dims_ok(cls, shape: tuple) -> tuple:
        for d in shape:
            if isinstance(d, bool) or (isinstance(d, int) and d < 0):
                raise ValueError(f"dimension {d!r} must be a non-negative int or a symbol")
            if isinstance(d, str) and not d.replace("*", "").isidentifier():
                raise ValueError(f"symbolic dimension {d!r} must be a name such as 'N' or 'T*N'")
        return shape

    def model_post_init(self, _ctx) -> None:
        if len(self.shape) < self.layout.n_layout_dims:
            raise ValueError(f"shape {list(self.shape)} has too few dims for layout {self.layout.value}")
        for d in self.features:
            if not isinstance(d, int):
                raise ValueError(f"feature dims must be static ints, got {list(self.shape)}")

    @property
    def features(self) -> tuple[int, ...]:
        return tuple(self.layout.split(self.shape)[1])

    @property
    def batch(self) -> Dim:
        if self.layout is Layout.TNX:
            return self.shape[1]
        if self.layout is Layout.TN:
            s = self.shape[0]
            return _dim(s.split("*", 1)[1]) if isinstance(s, str) and "*" in s else "N"
        return self.shape[0]

    @property
    def time(self) -> Dim | None:
        if self.layout is Layout.TNX:
            return self.shape[0]
        if self.layout is Layout.NXT:
            return self.shape[-1]
        if self.layout is Layout.TN:
            s = self.shape[0]
            return _dim(s.split("*", 1)[0]) if isinstance(s, str) and "*" in s else "T"
        return None

    def with_features(self, features: tuple[int, ...], dtype: DType | None = None) -> "TensorType":
        if self.layout is Layout.TN:  # keep the folded dim as it is (it may be a concrete int)
            shape = (self.shape[0], *features)
        else:
            shape = self.layout.join(self.batch, self.time or "T", tuple(features))
        return TensorType(shape=shape, dtype=dtype or self.dtype, layout=self.layout)

    def with_dtype(self, dtype: DType) -> "TensorType":
        return TensorType(shape=self.shape, dtype=dtype, layout=self.layout)

    def with_layout(self, layout: Layout, time: Dim = "T") -> "TensorType":
        t = self.time if self.time is not None else time
        return TensorType(shape=layout.join(self.batch, t, self.features), dtype=self.dtype, layout=layout)

    def __str__(self) -> str:
        return f"{self.dtype.value}[{','.join(str(d) for d in self.shape)}] {self.layout.value}"
