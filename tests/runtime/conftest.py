"""Small converted networks for the runtime tests (IF as converted, and a LIF variant)."""

import pytest
import torch
import torch.nn as nn

import snnc
from snnc.ir import ops
from snnc.ir.graph import Graph


class TinyVGG(nn.Module):
    """conv-bn-relu-maxpool x2 -> flatten -> linear-relu -> linear (8x8 inputs, 2 channels)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64, 20), nn.ReLU(), nn.Linear(20, 5))

    def forward(self, x):
        return self.head(self.features(x))


def to_lif(graph: Graph, **lif) -> Graph:
    """The same network with every IF replaced by a LIF neuron."""
    g = graph.copy()
    for op in list(g):
        if isinstance(op, ops.IF):
            g.replace_op(ops.LIF(name=op.name, inputs=op.inputs, loc=op.loc, v_threshold=op.v_threshold, **lif))
    return g


@pytest.fixture(scope="module")
def tiny_vgg_graph():
    from tests.conftest import randomize_bn

    torch.manual_seed(3)
    model = randomize_bn(TinyVGG())
    return snnc.convert(model, torch.rand(64, 2, 8, 8), "99%", show_progress=False)


@pytest.fixture(scope="module")
def small_cnn_graph():
    from tests.conftest import SmallCNN, randomize_bn

    torch.manual_seed(4)
    return snnc.convert(randomize_bn(SmallCNN()), torch.rand(64, 1, 8, 8), "99.9%", show_progress=False)
