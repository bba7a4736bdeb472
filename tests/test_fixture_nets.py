"""What the tests rely on about the networks in tests/nets.py (see that module), checked rather than assumed."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import snnc
from snnc.core import datasets
from snnc.demo import accuracy
from snnc.ir import IF, Graph, Input, Layout, Linear, Output, Scale, TensorType
from tests.nets import BN_EPS, digits_cnn, exactness_bits, snap_scales, unit


def _reduction_bits(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Per layer of the stored CNN, the significant bits its sums need on the data x: log2(max over outputs of
    sum |term| / u), u the power of two every term is a multiple of. All in float64, where these are exact."""
    bits, h = {}, x.double()
    for name, m in model.requires_grad_(False).named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            w, b = m.weight.double(), m.bias.double()
            if isinstance(m, nn.Conv2d):
                total = F.conv2d(h.abs(), w.abs(), b.abs(), padding=m.padding)
                out = F.conv2d(h, w, b, padding=m.padding)
            else:
                total, out = F.linear(h.flatten(1).abs(), w.abs(), b.abs()), F.linear(h.flatten(1), w, b)
            bits[name] = math.log2(float(total.max()) / min(unit(h) * unit(w), unit(b)))
            h = out
        elif isinstance(m, nn.BatchNorm2d):
            assert m.eps == BN_EPS and bool((m.running_var == 4).all())  # so the division is by exactly 2
            c = (1, -1, 1, 1)
            z = (h - m.running_mean.double().view(c)) / 2
            bits[name] = math.log2(float((z.abs() * m.weight.double().abs().view(c)).max() + m.bias.abs().max())
                                   / min(unit(z * m.weight.double().view(c)), unit(m.bias)))
            h = z * m.weight.double().view(c) + m.bias.double().view(c)
        elif isinstance(m, nn.AvgPool2d):
            bits[name] = math.log2(float(F.avg_pool2d(h.abs(), m.kernel_size).max()) * 4 / unit(h))
            h = F.avg_pool2d(h, m.kernel_size)
        elif isinstance(m, nn.ReLU):
            h = h.clamp(min=0)
    return bits


@pytest.fixture(scope="module")
def data():
    return datasets.digits()


def test_stored_digits_cnn_predicts_the_same_on_every_cpu(data):
    """Every sum the stored CNN computes on the digits data fits float32's 24 bits, so each partial sum is
    exact in any order: its float32 logits are the exact ones on every machine, and so are its predictions."""
    model = digits_cnn()
    x = torch.cat([data.x_train, data.x_test])
    bits = _reduction_bits(model, x)
    assert len(bits) == 7 and max(bits.values()) <= 24, bits
    with torch.no_grad():
        assert torch.equal(model(x).double(), model.double()(x.double()))


def test_stored_digits_cnn_is_a_good_classifier_with_clear_margins(data):
    """The numbers the accuracy tests build on: 99.56% on the test split, no near ties."""
    model = digits_cnn()
    with torch.no_grad():
        logits = model(data.x_test)
    assert accuracy(logits.argmax(-1), data.y_test) > 99.0
    top2 = logits.topk(2, -1).values
    assert float((top2[:, 0] - top2[:, 1]).min()) > 0.1
    assert digits_cnn() is not digits_cnn()  # a fresh module each time: a test may change its own


def _scaled_graph(factor: float) -> Graph:
    g = Graph("s")
    g.add(Input(name="x", type=TensorType(shape=("T", "N", 4), layout=Layout.TNX)))
    g.params["w"] = torch.tensor([[0.5, -0.25, 0.75, 1.0]] * 3)
    g.add(Linear(name="fc", inputs=("x",), weight="w"))
    g.add(Scale(name="in", inputs=("fc",), factor=factor))
    g.add(IF(name="n", inputs=("in",)))
    g.add(Output(name="out", inputs=("n",)))
    return g


def test_exactness_bits_bound_sums_and_membranes():
    bits = exactness_bits(_scaled_graph(0.5), time_steps=4)  # inputs: multiples of 1/16 in [-1, 1]
    assert bits["x"] == (math.log2(17), 1 / 16)
    # fc: |sum| <= 2.5, every term a multiple of 1/16 * 1/4
    assert bits["fc"] == (math.log2(2.5 * 64 + 1), 1 / 64)
    assert bits["in"] == (math.log2(1.25 * 128 + 1), 1 / 128)
    # the membrane: |v| <= 4 steps * (1.25 + threshold 1), in units of 1/128
    assert bits["n"] == (math.log2(4 * 2.25 * 128 + 1), 1 / 128)
    assert exactness_bits(_scaled_graph(0.7), time_steps=4)["in"][0] > 24  # 0.7 is no short dyadic number


def test_unit_and_snap_scales():
    assert unit(torch.tensor([0.75, -1.5, 3.0])) == 0.25 and unit(torch.zeros(3)) == math.inf
    assert unit(torch.tensor([0.7])) <= 2.0 ** -23  # float32's 0.7 uses all 24 bits
    assert snap_scales(_scaled_graph(0.6))["in"].factor == 0.5 and snap_scales(_scaled_graph(3.1))["in"].factor == 4
    with pytest.raises(AssertionError, match="midpoint"):
        snap_scales(_scaled_graph(2 ** -0.5))  # log2 = -0.5: either power of two is as near


def test_converted_constructed_network_is_exact_after_snapping(data):
    """The premise of the lynxi equality tests, on the digits-shaped constructed network."""
    from tests.backends.lynxi.conftest import assert_exact, digits_shaped

    g = snnc.convert(digits_shaped(), data.x_train[:256], "99.9%")
    with pytest.raises(AssertionError, match="significant bits"):
        assert_exact(g, "f32")  # the scales from calibration are not
    for dtype in ("f32", "f16"):
        assert_exact(snap_scales(g), dtype)
