"""The op kinds of the hybrid conversion's `analog=` / `--analog` (passes/analog.py), parsed once."""

from __future__ import annotations

from typing import Iterable

from snnc.ir import ops

# the op kinds `--analog` names, in the order the help lists them; "matmul" is a product of two rate-coded
# values (self-attention's q k^T), run on both decoded rates (passes/analog.py, product_of_rates)
ANALOG_KINDS = ("silu", "sigmoid", "hardswish", "hardsigmoid", "gelu", "tanh", "softmax", "layer_norm", "matmul")


def analog_kind(op: ops.OpBase) -> str | None:
    """The `--analog` name of an op that has no rate code (None for any other op)."""
    if isinstance(op, ops.Activation):
        return op.fn.analog_name
    if isinstance(op, (ops.Softmax, ops.LayerNorm)):
        return op.kind
    return None


def parse_analog(value: "str | Iterable[str] | None") -> frozenset[str]:
    """The analog op kinds from 'silu,Sigmoid', ['silu', 'gelu'] or 'all' (case-insensitive); ValueError otherwise."""
    if value is None:
        return frozenset()
    items = value.split(",") if isinstance(value, str) else list(value)
    names = {str(v).strip().lower().replace("-", "_") for v in items} - {""}
    if "all" in names:
        return frozenset(ANALOG_KINDS)
    unknown = sorted(names - set(ANALOG_KINDS))
    if unknown:
        raise ValueError(f"unknown analog op {', '.join(map(repr, unknown))}: expected some of "
                         f"{', '.join(ANALOG_KINDS)}, or all")
    return frozenset(names)
