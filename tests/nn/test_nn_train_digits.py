"""A small convolutional SNN trains with surrogate gradients: its gradients are the right ones, and it learns.

Neither test depends on what a particular training run reaches (which differs between CPUs): the gradients are
compared with an independently written BPTT on a forward pass that is exact by construction (dyadic weights and
inputs, tests/nets.py, so both compute the same spikes), and learning is shown on a problem whose classes are so
far apart that any working training run separates them.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from snnc.nn import functional, layer, neuron, surrogate
from tests.nets import set_bn, set_layer

T = 4


def _net(channels: int = 8) -> nn.Sequential:
    net = nn.Sequential(
        layer.Conv2d(1, channels, 3, padding=1, bias=False),
        layer.BatchNorm2d(channels),
        neuron.IFNode(surrogate_function=surrogate.ATan(), detach_reset=True),
        layer.MaxPool2d(2),
        layer.Flatten(),
        layer.Linear(channels * 4 * 4, 10),
        neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan(), detach_reset=True),
    )
    functional.set_step_mode(net, "m")
    return net


def _rates(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Direct encoding: the image is the input current at every step; the output is the firing rate."""
    out = net(x.unsqueeze(0).expand(T, *x.shape)).mean(0)
    functional.reset_net(net)
    return out


def _spike(x: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """Theta(x) (1 where x >= 0) forward; the ATan surrogate's derivative alpha / (2 (1 + (pi/2 alpha x)^2))
    backward, written as a straight-through sum."""
    g = torch.atan(math.pi / 2 * alpha * x) / math.pi + 0.5
    return (x >= 0).to(x) + (g - g.detach())


def _reference_rates(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """The same network written out step by step: IF and LIF (tau 2) with hard reset to 0, reset detached."""
    conv, bn, _, _, _, fc, _ = net
    v1 = v2 = 0.0
    out = []
    for _ in range(T):
        h = F.conv2d(x, conv.weight, padding=1)
        h = (h - bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(bn.running_var.view(1, -1, 1, 1) + bn.eps) \
            * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
        v1 = v1 + h
        s1 = _spike(v1 - 1.0)
        v1 = v1 * (1 - s1.detach())
        h = F.linear(F.max_pool2d(s1, 2).flatten(1), fc.weight, fc.bias)
        v2 = v2 + (h - v2) / 2.0
        s2 = _spike(v2 - 1.0)
        v2 = v2 * (1 - s2.detach())
        out.append(s2)
    return torch.stack(out).mean(0)


def test_surrogate_gradients_equal_a_hand_written_bptt():
    from snnc.core import datasets

    data = datasets.digits()
    x, y = data.x_train[:64], data.y_train[:64]  # pixels k/16
    gen = torch.Generator().manual_seed(0)
    net = _net()
    conv, bn, _, _, _, fc, _ = net
    set_layer(conv, gen, (-4, 4, 2), (0, 0, 0))
    set_bn(bn, gen)
    set_layer(fc, gen, (-4, 4, 2), (-2, 2, 3))
    net.eval()  # BatchNorm on its (exact) running statistics
    target = F.one_hot(y, 10).float()

    ours = _rates(net, x)
    F.mse_loss(ours, target).backward()
    grads = {k: p.grad.clone() for k, p in net.named_parameters()}
    net.zero_grad()
    ref = _reference_rates(net, x)
    F.mse_loss(ref, target).backward()

    # every value of the forward pass is exact (dyadic), so both made the same spikes, bit for bit
    assert torch.equal(ours, ref)
    assert 0.05 < float(ours.detach().mean()) < 0.95, "the output layer barely fires; the comparison would be weak"
    for k, p in net.named_parameters():
        assert float(grads[k].abs().max()) > 0, f"{k}: no gradient reached it"
        torch.testing.assert_close(grads[k], p.grad, rtol=1e-4, atol=1e-7, msg=k)


def _separable(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """10 classes of 8x8 binary images: class k is a fixed random pattern with about 3 of 64 pixels flipped."""
    patterns = (torch.rand(10, 64, generator=gen) < 0.5).float()
    y = torch.arange(n) % 10
    flips = (torch.rand(n, 64, generator=gen) < 0.05).float()
    return (patterns[y] - flips).abs().view(n, 1, 8, 8), y


@pytest.mark.timeout(60)
def test_conv_snn_learns_classes_with_a_wide_margin():
    gen = torch.Generator().manual_seed(0)
    x, y = _separable(800, gen)
    x_train, y_train, x_test, y_test = x[:600], y[:600], x[600:], y[600:]
    patterns = x[:10].flatten(1)  # class k's first sample
    # the margin: any two classes differ in about 32 pixels, a sample from its class in about 3
    assert float(torch.cdist(patterns, patterns, p=1).add(torch.eye(10) * 64).min()) >= 16
    torch.manual_seed(0)
    net = _net()

    def accuracy() -> float:
        net.eval()
        with torch.no_grad():
            return (_rates(net, x_test).argmax(1) == y_test).float().mean().item()

    before = accuracy()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _epoch in range(3):
        net.train()
        for idx in torch.randperm(len(x_train), generator=gen).split(64):
            loss = F.mse_loss(_rates(net, x_train[idx]), F.one_hot(y_train[idx], 10).float())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    after = accuracy()
    assert before < 0.5 and after >= 0.95, (before, after)
