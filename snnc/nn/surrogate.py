"""Surrogate gradients: Heaviside forward, smooth derivative backward.

Every surrogate g comes in two styles, as in SpikingJelly:

* module style, e.g. `Sigmoid(alpha=4.0, spiking=True)`: with `spiking=True`
  the forward is Theta(x) = (x >= 0) and the backward is g'(x); with
  `spiking=False` the forward is the smooth primitive g(x) itself;
* functional style, e.g. `sigmoid.apply(x, alpha)`: a torch.autograd.Function.

Default shape parameters make the peak of g' exactly 1 (at x = 0), which keeps
gradients from exploding or vanishing through many layers.  Two defaults
therefore differ from SpikingJelly's: Erf uses alpha = sqrt(pi) (SJ: 2, peak
1.13) and PiecewiseLeakyReLU uses w = 0.5 (SJ: 1, peak 0.5).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from snnc.nn.errors import ConfigError

__all__ = [
    "heaviside",
    "SurrogateFunctionBase",
    "Sigmoid", "sigmoid",
    "ATan", "atan",
    "PiecewiseQuadratic", "piecewise_quadratic",
    "SoftSign", "soft_sign",
    "Erf", "erf",
    "PiecewiseLeakyReLU", "piecewise_leaky_relu",
    "PiecewiseExp", "piecewise_exp",
]


def heaviside(x: Tensor) -> Tensor:
    """Theta(x) = 1 where x >= 0, else 0, in x's dtype."""
    return (x >= 0).to(x)


def _spike_function(name: str, derivative: Callable[..., Tensor]) -> type[torch.autograd.Function]:
    """An autograd.Function: heaviside forward, `grad * derivative(x, *params)` backward."""

    def forward(ctx: Any, x: Tensor, *params: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.params = params
        return heaviside(x)

    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        (x,) = ctx.saved_tensors
        return (grad_output * derivative(x, *ctx.params), *([None] * len(ctx.params)))

    doc = f"Functional surrogate `{name}.apply(x, *params)`: heaviside forward, surrogate backward."
    return type(name, (torch.autograd.Function,), {
        "forward": staticmethod(forward), "backward": staticmethod(backward), "__doc__": doc,
    })


class SurrogateFunctionBase(nn.Module):
    """A surrogate spiking function with shape parameters `param_names`.

    Subclasses set `primitive` g, `derivative` g' and `spike_function`; the
    parameters are plain attributes and may be changed at any time
    (`m.alpha = 0.5`).
    """

    param_names: ClassVar[tuple[str, ...]] = ()
    primitive: ClassVar[Callable[..., Tensor]]
    derivative: ClassVar[Callable[..., Tensor]]
    spike_function: ClassVar[type[torch.autograd.Function]]

    def __init__(self, spiking: bool = True, **params: float) -> None:
        super().__init__()
        if not isinstance(spiking, bool):
            raise ConfigError(f"{type(self).__name__}: spiking must be a bool, got {spiking!r}")
        self.spiking = spiking
        for name, value in params.items():
            setattr(self, name, float(value))

    @property
    def params(self) -> tuple[float, ...]:
        """The shape parameters in declaration order (what `spike_function.apply` takes after x)."""
        return tuple(getattr(self, name) for name in self.param_names)

    def set_spiking_mode(self, spiking: bool) -> None:
        self.spiking = spiking

    def forward(self, x: Tensor) -> Tensor:
        if self.spiking:
            return self.spike_function.apply(x, *self.params)
        return type(self).primitive(x, *self.params)

    def extra_repr(self) -> str:
        parts = [f"{name}={getattr(self, name)}" for name in self.param_names]
        return ", ".join([*parts, f"spiking={self.spiking}"])


def _positive(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ConfigError(f"{owner}: {name} must be > 0, got {value!r}")


# ---- Sigmoid: g = sigmoid(a x), g' = a s (1 - s); peak a/4 ---------------------------
def _sigmoid_primitive(x: Tensor, alpha: float) -> Tensor:
    return torch.sigmoid(alpha * x)


def _sigmoid_derivative(x: Tensor, alpha: float) -> Tensor:
    s = torch.sigmoid(alpha * x)
    return alpha * s * (1.0 - s)


sigmoid = _spike_function("sigmoid", _sigmoid_derivative)


class Sigmoid(SurrogateFunctionBase):
    """g(x) = sigmoid(alpha x); g'(x) = alpha sigmoid(alpha x) (1 - sigmoid(alpha x)); peak alpha/4."""

    param_names = ("alpha",)
    primitive = staticmethod(_sigmoid_primitive)
    derivative = staticmethod(_sigmoid_derivative)
    spike_function = sigmoid

    def __init__(self, alpha: float = 4.0, spiking: bool = True) -> None:
        super().__init__(spiking, alpha=alpha)


# ---- ATan: g = atan(pi/2 a x)/pi + 1/2, g' = a / (2 (1 + (pi/2 a x)^2)); peak a/2 -----
def _atan_primitive(x: Tensor, alpha: float) -> Tensor:
    return torch.atan(math.pi / 2 * alpha * x) / math.pi + 0.5


def _atan_derivative(x: Tensor, alpha: float) -> Tensor:
    ax = math.pi / 2 * alpha * x
    return alpha / 2 / (1.0 + ax * ax)


atan = _spike_function("atan", _atan_derivative)


class ATan(SurrogateFunctionBase):
    """g(x) = atan(pi/2 alpha x)/pi + 1/2; g'(x) = alpha / (2 (1 + (pi/2 alpha x)^2)); peak alpha/2."""

    param_names = ("alpha",)
    primitive = staticmethod(_atan_primitive)
    derivative = staticmethod(_atan_derivative)
    spike_function = atan

    def __init__(self, alpha: float = 2.0, spiking: bool = True) -> None:
        super().__init__(spiking, alpha=alpha)


# ---- PiecewiseQuadratic: g' = a - a^2 |x| on |x| <= 1/a, else 0; peak a ----------------
def _pq_primitive(x: Tensor, alpha: float) -> Tensor:
    inner = -0.5 * alpha * alpha * x.abs() * x + alpha * x + 0.5
    return torch.where(x > 1.0 / alpha, torch.ones_like(x), torch.where(x < -1.0 / alpha, torch.zeros_like(x), inner))


def _pq_derivative(x: Tensor, alpha: float) -> Tensor:
    return torch.clamp(alpha - alpha * alpha * x.abs(), min=0.0)


piecewise_quadratic = _spike_function("piecewise_quadratic", _pq_derivative)


class PiecewiseQuadratic(SurrogateFunctionBase):
    """g'(x) = alpha - alpha^2 |x| for |x| <= 1/alpha, else 0; g is its integral from -inf; peak alpha."""

    param_names = ("alpha",)
    primitive = staticmethod(_pq_primitive)
    derivative = staticmethod(_pq_derivative)
    spike_function = piecewise_quadratic

    def __init__(self, alpha: float = 1.0, spiking: bool = True) -> None:
        _positive("PiecewiseQuadratic", alpha=alpha)
        super().__init__(spiking, alpha=alpha)


# ---- SoftSign: g = (a x / (1 + |a x|) + 1)/2, g' = a / (2 (1 + |a x|)^2); peak a/2 ------
def _soft_sign_primitive(x: Tensor, alpha: float) -> Tensor:
    ax = alpha * x
    return 0.5 * (ax / (1.0 + ax.abs()) + 1.0)


def _soft_sign_derivative(x: Tensor, alpha: float) -> Tensor:
    d = 1.0 + (alpha * x).abs()
    return alpha / (2.0 * d * d)


soft_sign = _spike_function("soft_sign", _soft_sign_derivative)


class SoftSign(SurrogateFunctionBase):
    """g(x) = (alpha x / (1 + |alpha x|) + 1) / 2; g'(x) = alpha / (2 (1 + |alpha x|)^2); peak alpha/2."""

    param_names = ("alpha",)
    primitive = staticmethod(_soft_sign_primitive)
    derivative = staticmethod(_soft_sign_derivative)
    spike_function = soft_sign

    def __init__(self, alpha: float = 2.0, spiking: bool = True) -> None:
        _positive("SoftSign", alpha=alpha)
        super().__init__(spiking, alpha=alpha)


# ---- Erf: g = erfc(-a x)/2, g' = a/sqrt(pi) exp(-(a x)^2); peak a/sqrt(pi) -------------
def _erf_primitive(x: Tensor, alpha: float) -> Tensor:
    return torch.erfc(-alpha * x) / 2.0


def _erf_derivative(x: Tensor, alpha: float) -> Tensor:
    return alpha / math.sqrt(math.pi) * torch.exp(-(alpha * x) ** 2)


erf = _spike_function("erf", _erf_derivative)


class Erf(SurrogateFunctionBase):
    """g(x) = erfc(-alpha x) / 2; g'(x) = alpha/sqrt(pi) exp(-alpha^2 x^2); peak alpha/sqrt(pi)."""

    param_names = ("alpha",)
    primitive = staticmethod(_erf_primitive)
    derivative = staticmethod(_erf_derivative)
    spike_function = erf

    def __init__(self, alpha: float = math.sqrt(math.pi), spiking: bool = True) -> None:
        super().__init__(spiking, alpha=alpha)


# ---- PiecewiseLeakyReLU: g' = 1/(2w) on |x| <= w, else c; peak 1/(2w) ------------------
def _plr_primitive(x: Tensor, w: float, c: float) -> Tensor:
    inner = x / (2.0 * w) + 0.5
    return torch.where(x < -w, c * x + c * w, torch.where(x > w, c * x - c * w + 1.0, inner))


def _plr_derivative(x: Tensor, w: float, c: float) -> Tensor:
    return torch.where(x.abs() <= w, torch.full_like(x, 1.0 / (2.0 * w)), torch.full_like(x, c))


piecewise_leaky_relu = _spike_function("piecewise_leaky_relu", _plr_derivative)


class PiecewiseLeakyReLU(SurrogateFunctionBase):
    """g'(x) = 1/(2w) for |x| <= w, else c; g(x) is linear in each piece, 0.5 at 0; peak 1/(2w)."""

    param_names = ("w", "c")
    primitive = staticmethod(_plr_primitive)
    derivative = staticmethod(_plr_derivative)
    spike_function = piecewise_leaky_relu

    def __init__(self, w: float = 0.5, c: float = 0.01, spiking: bool = True) -> None:
        _positive("PiecewiseLeakyReLU", w=w)
        super().__init__(spiking, w=w, c=c)


# ---- PiecewiseExp: g' = a/2 exp(-a |x|); peak a/2 ---------------------------------------
def _pe_primitive(x: Tensor, alpha: float) -> Tensor:
    half = 0.5 * torch.exp(-alpha * x.abs())
    return torch.where(x < 0, half, 1.0 - half)


def _pe_derivative(x: Tensor, alpha: float) -> Tensor:
    return alpha / 2.0 * torch.exp(-alpha * x.abs())


piecewise_exp = _spike_function("piecewise_exp", _pe_derivative)


class PiecewiseExp(SurrogateFunctionBase):
    """g(x) = exp(alpha x)/2 for x < 0, 1 - exp(-alpha x)/2 otherwise; g'(x) = alpha/2 exp(-alpha |x|); peak alpha/2."""

    param_names = ("alpha",)
    primitive = staticmethod(_pe_primitive)
    derivative = staticmethod(_pe_derivative)
    spike_function = piecewise_exp

    def __init__(self, alpha: float = 2.0, spiking: bool = True) -> None:
        _positive("PiecewiseExp", alpha=alpha)
        super().__init__(spiking, alpha=alpha)
