"""benchmarks/cpu_runtime.py --layers (benchmarks/cpu_layers.py) names the kernel each layer really runs on."""

import pytest
import torch
import torch.nn as nn

import snnc
from snnc.runtime import Session, event_conv, native
from tests.scripts import load_script

pytestmark = pytest.mark.skipif(not native.available(), reason="no C compiler for the native kernels")


@pytest.mark.parametrize("pool", [False, True])
def test_a_fused_layer_with_too_few_pixels_a_step_is_labelled_apart(pool):
    cpu_layers = load_script("benchmarks/cpu_layers.py")
    torch.manual_seed(0)
    c = event_conv.TILE  # a full tile of output channels: the event kernel pays (event_conv.pays)
    tail = [nn.MaxPool2d(2), nn.Flatten(), nn.Linear(c * 2 * 2, 4)] if pool else [nn.Flatten(), nn.Linear(c * 4 * 4, 4)]
    model = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
                          *tail).eval()
    graph = snnc.convert(model, torch.rand(16, 3, 4, 4), "max", show_progress=False)
    first, second = (op.name for op in graph if op.kind == "conv2d")
    s = Session(graph, progress=False)
    small = 2  # 2 x 4 x 4 output pixels a step: below fused_min_pixels, the executor runs them apart
    big = event_conv.fused_min_pixels() // 16
    assert small * 16 < event_conv.fused_min_pixels() <= big * 16
    assert cpu_layers.kernel_labels(s, graph, small)[second] == "event, neuron apart"
    labels = cpu_layers.kernel_labels(s, graph, big)
    assert labels[second] == ("event+pool+neuron" if pool else "event+neuron")
    assert first not in labels  # the analog first layer runs dense
