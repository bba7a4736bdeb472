"""Step modes, states and propagation patterns (seeds 001 and 002, 'Basic Conception')."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from snnc.nn import StepMode, functional, layer, neuron
from snnc.nn.errors import StateError, StepModeError


def test_step_mode_set_at_construction_and_later():
    node = neuron.IFNode(step_mode="m")
    assert node.step_mode == "m" and node.step_mode is StepMode.MULTI
    node.step_mode = "s"
    assert node.step_mode == "s" and f"{node.step_mode}" == "s"
    with pytest.raises(StepModeError, match="expected 's'"):
        node.step_mode = "multi"
    with pytest.raises(ValueError):  # StepModeError is a ValueError, as in SpikingJelly
        layer.Conv2d(1, 1, 3, step_mode="x")


def test_state_starts_as_float_and_broadcasts_to_the_input():
    node = neuron.IFNode()
    assert node.v == 0.0
    x = torch.rand([2, 3])
    node(x)
    assert node.v.shape == (2, 3)
    torch.testing.assert_close(node.v, x)  # below threshold: V = X
    node.reset()
    assert node.v == 0.0
    node(torch.rand([4, 5, 6]))
    assert node.v.shape == (4, 5, 6)


def test_initial_state_is_v_reset():
    node = neuron.LIFNode(v_reset=-0.5)
    assert node.v == -0.5
    node(torch.zeros(3))
    node.reset()
    assert node.v == -0.5
    assert neuron.IFNode(v_reset=None).v == 0.0


def test_forgetting_to_reset_with_a_new_shape_raises():
    node = neuron.IFNode()
    node(torch.rand([4, 8]))
    with pytest.raises(StateError, match="reset_net"):
        node(torch.rand([2, 8]))


def test_if_node_wrapped_by_container_equals_step_loop():
    """Seed 001: an IF node stepped by hand and wrapped by MultiStepContainer give the same spikes."""
    torch.manual_seed(0)
    if_node = neuron.IFNode()
    x = torch.rand([8, 4]) * 2
    stepped = torch.stack([if_node(x[t]) for t in range(8)])
    functional.reset_net(if_node)
    wrapped = layer.MultiStepContainer(if_node)(x)
    assert torch.equal(stepped, wrapped)


def test_multi_step_forward_and_multi_step_mode_agree():
    torch.manual_seed(0)
    if_layer = neuron.IFNode(step_mode="s")
    x_seq = torch.rand([8, 2]) * 2
    y_seq = functional.multi_step_forward(x_seq, if_layer)
    if_layer.reset()
    if_layer.step_mode = "m"
    assert torch.equal(if_layer(x_seq), y_seq)


def _seed_net(H: int, W: int) -> nn.Sequential:
    return nn.Sequential(
        layer.Conv2d(3, 8, kernel_size=3, padding=1, stride=1, bias=False),
        neuron.IFNode(),
        layer.MaxPool2d(2, 2),
        neuron.IFNode(),
        layer.Flatten(start_dim=1),
        layer.Linear(8 * H // 2 * W // 2, 10),
        neuron.IFNode(),
    )


def test_step_by_step_equals_layer_by_layer_exactly():
    """Seed 002, 'Propagation Patterns': max_error = 0."""
    torch.manual_seed(0)
    T, N, C, H, W = 4, 2, 3, 8, 8
    x_seq = torch.rand([T, N, C, H, W]) * 64.0
    net = _seed_net(H, W)
    with torch.no_grad():
        step_by_step = torch.stack([net(x_seq[t]) for t in range(T)])
        functional.reset_net(net)
        via_helper = functional.multi_step_forward(x_seq, net)
        functional.reset_net(net)
        functional.set_step_mode(net, step_mode="m")
        layer_by_layer = net(x_seq)
        functional.reset_net(net)
        manual = x_seq
        for i in range(len(net)):
            manual = net[i](manual)
    assert step_by_step.shape == (T, N, 10)
    assert 0 < step_by_step.mean() < 1
    assert torch.equal(step_by_step, via_helper)
    assert torch.equal(step_by_step, layer_by_layer)
    assert torch.equal(layer_by_layer, manual)


def test_linear_if_net_layer_by_layer():
    torch.manual_seed(0)
    T, N, C = 4, 2, 8
    x_seq = torch.rand([T, N, C]) * 64.0
    net = nn.Sequential(layer.Linear(C, 4), neuron.IFNode(), layer.Linear(4, 2), neuron.IFNode())
    with torch.no_grad():
        sbs = functional.multi_step_forward(x_seq, net)
        functional.reset_net(net)
        functional.set_step_mode(net, step_mode="m")
        lbl = net(x_seq)
    assert torch.equal(sbs, lbl)


def test_set_step_mode_reaches_nested_modules():
    net = nn.Sequential(nn.Sequential(layer.Conv2d(1, 2, 3), neuron.LIFNode()), layer.BatchNorm2d(2), nn.ReLU())
    functional.set_step_mode(net, "m")
    assert all(m.step_mode == "m" for m in net.modules() if hasattr(m, "step_mode"))


def test_migration_example_runs_in_both_modes():
    """Seed 002, 'Migrate From Old Versions': a net runs step-by-step, then layer-by-layer."""
    torch.manual_seed(0)
    T, N, C, H, W = 4, 2, 4, 8, 8
    x_seq = torch.rand([T, N, C, H, W])
    net = nn.Sequential(layer.Conv2d(C, C, kernel_size=3, padding=1, bias=False), layer.BatchNorm2d(C), neuron.IFNode())
    net.eval()  # fixed BN statistics, so both propagation patterns compute the same function
    with torch.no_grad():
        y_sbs = functional.multi_step_forward(x_seq, net)
        functional.reset_net(net)
        functional.set_step_mode(net, step_mode="m")
        y_lbl = net(x_seq)
    assert y_sbs.shape == y_lbl.shape == (T, N, C, H, W)
    assert torch.equal(y_sbs, y_lbl)
