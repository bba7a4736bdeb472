"""Models and helpers shared by the frontend tests."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from snnc.ir.graph import Graph


class ResNetish(nn.Module):
    """conv/BN/ReLU blocks with a residual add, a concat, average pooling and a linear head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.conv_a, self.bn_a = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv_b, self.bn_b = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.branch = nn.Sequential(nn.Conv2d(8, 4, 1), nn.BatchNorm2d(4), nn.ReLU())
        self.pool = nn.AvgPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, 10)

    def forward(self, x):
        x = self.stem(x)
        y = F.relu(self.bn_a(self.conv_a(x)))
        y = F.relu(self.bn_b(self.conv_b(y)) + x)
        y = torch.cat([y, self.branch(y)], dim=1)
        return self.fc(torch.flatten(self.gap(self.pool(y)), 1))


class TwoHeads(nn.Module):
    """Two inputs, two outputs, one Linear used twice (its parameters shared)."""

    def __init__(self):
        super().__init__()
        self.shared = nn.Linear(6, 6)
        self.a, self.b = nn.Linear(4, 6), nn.Linear(6, 3)

    def forward(self, x, y):
        h = torch.relu(self.shared(self.a(x)) + self.shared(y))
        return self.b(h), h


def canonical(graph: Graph) -> list[tuple]:
    """The graph with value names replaced by positions and parameters by shapes: equal means 'same IR up to names'."""
    index: dict[str, int] = {}
    rows = []
    for op in graph:
        index[op.name] = len(index)
        params = tuple((f, tuple(graph.params[p].shape)) for f, p in op.param_refs().items())
        rows.append((op.kind, tuple(index[i] for i in op.inputs), tuple(op.attributes().items()), params))
    return rows


def same_params(a: Graph, b: Graph) -> bool:
    """Every op's parameters are bit-identical (ops matched by position)."""
    for x, y in zip(a, b):
        for f, p in x.param_refs().items():
            if not torch.equal(a.params[p], b.params[y.param_refs()[f]]):
                return False
    return True


def boost(net: nn.Module, gain: float, bias: float = 0.0) -> nn.Module:
    """Scale conv/linear weights (and shift biases) so every spiking layer is active in short tests."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.mul_(gain)
                if m.bias is not None:
                    m.bias.add_(bias)
    return net


def ref_if(x: torch.Tensor) -> torch.Tensor:
    """Forward-Euler IF over [T, ...]: V += X; fire at V >= 1; hard reset to 0 (snnc.nn's IFNode defaults)."""
    v, out = torch.zeros_like(x[0]), []
    for t in range(x.shape[0]):
        v = v + x[t]
        s = (v >= 1.0).float()
        v = torch.where(s > 0, torch.zeros_like(v), v)
        out.append(s)
    return torch.stack(out)


class RefIF(nn.Module):
    """ref_if as a module, standing where a multi-step IFNode stands in a reference model."""

    def forward(self, x):
        return ref_if(x)
