"""Surrogate functions: Heaviside forward, backward = derivative of the smooth primitive, peak 1."""

from __future__ import annotations

import pytest
import torch

from snnc.nn import surrogate
from snnc.nn.errors import ConfigError

MODULES = [
    (surrogate.Sigmoid, surrogate.sigmoid),
    (surrogate.ATan, surrogate.atan),
    (surrogate.PiecewiseQuadratic, surrogate.piecewise_quadratic),
    (surrogate.SoftSign, surrogate.soft_sign),
    (surrogate.Erf, surrogate.erf),
    (surrogate.PiecewiseLeakyReLU, surrogate.piecewise_leaky_relu),
    (surrogate.PiecewiseExp, surrogate.piecewise_exp),
]
IDS = [m.__name__ for m, _ in MODULES]


def _points() -> torch.Tensor:
    # Off the kinks of the piecewise surrogates (|x| = 0, 0.5, 1 for the defaults).
    return torch.tensor([-2.3, -1.2, -0.7, -0.33, -0.11, 0.07, 0.21, 0.45, 0.61, 0.9, 1.3, 2.2], dtype=torch.float64)


@pytest.mark.parametrize("cls,_fn", MODULES, ids=IDS)
def test_primitive_gradcheck(cls, _fn):
    smooth = cls(spiking=False)
    x = _points().requires_grad_(True)
    assert torch.autograd.gradcheck(smooth, (x,))


@pytest.mark.parametrize("cls,_fn", MODULES, ids=IDS)
def test_spiking_backward_equals_primitive_derivative(cls, _fn):
    x1 = _points().requires_grad_(True)
    x2 = _points().requires_grad_(True)
    y = cls()(x1)
    assert torch.equal(y, (x1 >= 0).to(x1))
    y.sum().backward()
    cls(spiking=False)(x2).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls,_fn", MODULES, ids=IDS)
def test_default_peak_gradient_is_one(cls, _fn):
    x = torch.linspace(-3, 3, 6001, dtype=torch.float64, requires_grad=True)
    cls()(x).sum().backward()
    assert x.grad.max().item() == pytest.approx(1.0, abs=1e-12)
    assert x.grad[3000].item() == pytest.approx(1.0, abs=1e-12)  # at x = 0


@pytest.mark.parametrize("cls,fn", MODULES, ids=IDS)
def test_functional_style_equals_module_style(cls, fn):
    m = cls()
    x1 = _points().requires_grad_(True)
    x2 = _points().requires_grad_(True)
    m(x1).sum().backward()
    fn.apply(x2, *m.params).sum().backward()
    assert torch.equal(x1.grad, x2.grad)


def test_seed_sigmoid_example():
    x = torch.tensor([-0.1303, 0.4976, 0.3364, 0.4296, 0.2779, 0.4580, 0.4447, 0.2466], requires_grad=True)
    y = surrogate.Sigmoid(alpha=4.0)(x)
    y.sum().backward()
    assert y.tolist() == [0.0, 1, 1, 1, 1, 1, 1, 1]
    seed = torch.tensor([0.9351, 0.4231, 0.6557, 0.5158, 0.7451, 0.4759, 0.4943, 0.7913])
    torch.testing.assert_close(x.grad, seed, atol=2e-4, rtol=0)


def test_alpha_can_be_changed_later():
    m = surrogate.Sigmoid()
    m.alpha = 0.5
    x = torch.zeros(1, requires_grad=True)
    m(x).sum().backward()
    assert x.grad.item() == pytest.approx(0.125)
    assert repr(m) == "Sigmoid(alpha=0.5, spiking=True)"
    m.set_spiking_mode(False)
    assert m(torch.zeros(1)).item() == pytest.approx(0.5)


@pytest.mark.parametrize("make", [lambda: surrogate.SoftSign(alpha=0), lambda: surrogate.PiecewiseLeakyReLU(w=-1),
                                  lambda: surrogate.Sigmoid(spiking="yes")])
def test_bad_parameters_raise(make):
    with pytest.raises(ConfigError):
        make()
