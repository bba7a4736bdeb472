"""Time-layout conversions as plain functions (the seed's TNX_to_NXT / NXT_to_TNX, and folding)."""

from __future__ import annotations

from torch import Tensor

from snnc.ir.types import Layout


def tnx_to_nxt(x: Tensor) -> Tensor:
    """[T, N, *] -> [N, *, T]."""
    return x.movedim(0, -1)


def nxt_to_tnx(x: Tensor) -> Tensor:
    """[N, *, T] -> [T, N, *]."""
    return x.movedim(-1, 0)


def tnx_to_tn(x: Tensor) -> Tensor:
    """[T, N, *] -> [T*N, *]."""
    return x.flatten(0, 1)


def tn_to_tnx(x: Tensor, T: int) -> Tensor:
    """[T*N, *] -> [T, N, *]."""
    if x.shape[0] % T:
        raise ValueError(f"folded dim {x.shape[0]} is not a multiple of T={T}")
    return x.unflatten(0, (T, x.shape[0] // T))


def to_tnx(x: Tensor, layout: Layout, T: int) -> Tensor:
    if layout is Layout.TNX:
        return x
    if layout is Layout.NXT:
        return nxt_to_tnx(x)
    if layout is Layout.TN:
        return tn_to_tnx(x, T)
    raise ValueError(f"layout {layout.value} has no time dimension")


def from_tnx(x: Tensor, layout: Layout) -> Tensor:
    if layout is Layout.TNX:
        return x
    if layout is Layout.NXT:
        return tnx_to_nxt(x)
    if layout is Layout.TN:
        return tnx_to_tn(x)
    raise ValueError(f"layout {layout.value} has no time dimension")
