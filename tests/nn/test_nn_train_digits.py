"""A small convolutional SNN learns the scikit-learn digits with surrogate gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from snnc.nn import functional, layer, neuron, surrogate

T = 4


def _digits() -> tuple[torch.Tensor, ...]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0  # [1797, 1, 8, 8] in [0, 1]
    y = torch.tensor(d.target)
    return tuple(train_test_split(x, y, test_size=0.25, random_state=0, stratify=y))


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


@pytest.mark.timeout(60)
def test_conv_snn_learns_digits():
    torch.manual_seed(0)
    x_train, x_test, y_train, y_test = _digits()
    net = _net()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _epoch in range(4):
        net.train()
        for idx in torch.randperm(len(x_train)).split(64):
            loss = F.mse_loss(_rates(net, x_train[idx]), F.one_hot(y_train[idx], 10).float())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    net.eval()
    with torch.no_grad():
        accuracy = (_rates(net, x_test).argmax(1) == y_test).float().mean().item()
    print(f"digits test accuracy: {accuracy:.3f}")
    assert accuracy > 0.8, f"test accuracy {accuracy:.3f} (chance is 0.1)"
