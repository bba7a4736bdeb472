"""Surrogate gradients: the spec parsed at the API boundary, and the Triton device functions.

The forward pass is the Heaviside step; the backward pass replaces its
derivative by g'(x) with x = H - V_th:

    sigmoid:  g'(x) = alpha * sig(alpha x) * (1 - sig(alpha x))      (default alpha = 4)
    atan:     g'(x) = (alpha / 2) / (1 + (pi/2 * alpha * x)^2)        (default alpha = 2)
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

import triton
import triton.language as tl

from .errors import KernelInputError


class SurrogateKind(str, enum.Enum):
    SIGMOID = "sigmoid"
    ATAN = "atan"


_DEFAULT_ALPHA = {SurrogateKind.SIGMOID: 4.0, SurrogateKind.ATAN: 2.0}
# The kernel's SURROGATE constexpr; keep in step with `surrogate_grad` below.
_CODES = {SurrogateKind.SIGMOID: 0, SurrogateKind.ATAN: 1}


@dataclass(frozen=True)
class Surrogate:
    """A surrogate-gradient function and its sharpness alpha."""

    kind: SurrogateKind = SurrogateKind.SIGMOID
    alpha: float | None = None  # None: the kind's default

    @property
    def code(self) -> int:
        return _CODES[self.kind]

    @property
    def alpha_value(self) -> float:
        return _DEFAULT_ALPHA[self.kind] if self.alpha is None else float(self.alpha)

    def kernel_args(self) -> dict[str, float]:
        """`sg_a`, `sg_b` for `surrogate_grad`, folded in double precision as torch code folds them."""
        a = self.alpha_value
        if self.kind is SurrogateKind.SIGMOID:
            return {"sg_a": a, "sg_b": 0.0}
        return {"sg_a": a / 2, "sg_b": math.pi / 2 * a}


def is_supported_surrogate(spec: Any) -> bool:
    """True when `parse_surrogate(spec)` succeeds (a backend's `supports` check)."""
    try:
        parse_surrogate(spec)
    except KernelInputError:
        return False
    return True


def parse_surrogate(spec: Any) -> Surrogate:
    """Read a surrogate given as a `Surrogate`, a name, `(name, alpha)`, or an object with `.alpha`.

    The object form accepts e.g. `snnc.nn.surrogate.Sigmoid(alpha=4.0)` or
    SpikingJelly's `surrogate.ATan()`: the class name picks the kind.
    """
    if isinstance(spec, Surrogate):
        return spec
    name: Any
    alpha: Any = None
    if isinstance(spec, str):
        name = spec
    elif isinstance(spec, tuple) and len(spec) == 2:
        name, alpha = spec
    elif hasattr(spec, "alpha"):
        name, alpha = type(spec).__name__, spec.alpha
    else:
        raise KernelInputError(
            f"surrogate {spec!r} is invalid: expected a name, (name, alpha), or an object with .alpha; "
            f"known names: {[k.value for k in SurrogateKind]}"
        )
    try:
        kind = SurrogateKind(str(name).lower())
    except ValueError:
        raise KernelInputError(
            f"surrogate {name!r} has no Triton kernel; supported: {[k.value for k in SurrogateKind]}"
        ) from None
    if alpha is not None:
        alpha = float(alpha)
        if not math.isfinite(alpha) or alpha <= 0.0:
            raise KernelInputError(f"surrogate alpha must be a positive finite number, got {alpha}")
    return Surrogate(kind, alpha)


@triton.jit
def surrogate_grad(x, sg_a, sg_b, SURROGATE: tl.constexpr):
    """g'(x) in fp32. sigmoid (0): sg_a = alpha. atan (1): sg_a = alpha/2, sg_b = pi/2 alpha."""
    if SURROGATE == 0:
        sg = tl.sigmoid(sg_a * x)
        g = sg_a * sg * (1.0 - sg)
    else:
        z = sg_b * x
        g = sg_a / (1.0 + z * z)
    return g
