"""The Container seed (000) and the functional seed (003), run with snnc.nn."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from snnc.nn import functional, layer, neuron
from snnc.nn.errors import StepModeError

T, N, C, H, W = 4, 1, 3, 8, 8


def test_multi_step_forward_equals_container_equals_loop():
    torch.manual_seed(0)
    x_seq = torch.rand([T, N, C, H, W]) * 2
    net_s = neuron.IFNode(step_mode="s")
    y_seq = functional.multi_step_forward(x_seq, net_s)
    assert y_seq.shape == (T, N, C, H, W)
    net_s.reset()
    z_seq = layer.MultiStepContainer(net_s)(x_seq)
    net_s.reset()
    loop = torch.stack([net_s(x_seq[t]) for t in range(T)])
    assert torch.equal(y_seq, z_seq)
    assert torch.equal(y_seq, loop)
    assert 0 < y_seq.mean() < 1


def test_stateless_containers_agree():
    torch.manual_seed(0)
    x_seq = torch.rand([T, N, C, H, W])
    conv = nn.Conv2d(C, 8, kernel_size=3, padding=1, bias=False)
    bn = nn.BatchNorm2d(8).eval()  # per-step and [T*N] batch statistics differ in training mode
    with torch.no_grad():
        y_seq = functional.multi_step_forward(x_seq, (conv, bn))
        z_seq = layer.MultiStepContainer(conv, bn)(x_seq)
        p_seq = functional.seq_to_ann_forward(x_seq, (conv, bn))
        q_seq = layer.SeqToANNContainer(conv, bn)(x_seq)
    assert y_seq.shape == (T, N, 8, H, W) and p_seq.shape == (T, N, 8, H, W)
    assert torch.equal(y_seq, z_seq)
    assert torch.equal(p_seq, q_seq)
    torch.testing.assert_close(p_seq, y_seq, rtol=1e-6, atol=1e-6)


def test_seq_to_ann_in_training_mode_uses_all_steps_as_batch():
    torch.manual_seed(0)
    x_seq = torch.rand([T, 2, 4])
    bn = nn.BatchNorm1d(4)
    y = functional.seq_to_ann_forward(x_seq, bn)
    torch.testing.assert_close(y, nn.functional.batch_norm(x_seq.flatten(0, 1), None, None, training=True).view(T, 2, 4))


def test_state_dict_keys_of_containers_and_layers():
    ann = nn.Sequential(nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
    net_container = nn.Sequential(
        layer.SeqToANNContainer(nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(8)),
        neuron.IFNode(step_mode="m"),
    )
    net_origin = nn.Sequential(
        layer.Conv2d(3, 8, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(8), neuron.IFNode(step_mode="m")
    )
    keys = ["0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked"]
    assert list(ann.state_dict()) == keys
    assert list(net_container.state_dict()) == ["0." + k for k in keys]
    assert list(net_origin.state_dict()) == keys
    with pytest.raises(RuntimeError, match="Missing key"):
        net_container.load_state_dict(ann.state_dict())
    net_origin.load_state_dict(ann.state_dict())


def test_step_mode_container_stateless():
    torch.manual_seed(0)
    x_seq = torch.rand([T, 2, 4, H, W])
    conv, bn = nn.Conv2d(4, 4, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(4)
    net = layer.StepModeContainer(False, conv, bn)
    with torch.no_grad():
        net.step_mode = "m"
        y_seq = net(x_seq)
        assert torch.equal(y_seq, functional.seq_to_ann_forward(x_seq, (conv, bn)))
        net.step_mode = "s"
        y = net(x_seq[0])
    assert y_seq.shape == (T, 2, 4, H, W) and y.shape == (2, 4, H, W)


def test_step_mode_container_stateful():
    torch.manual_seed(0)
    x_seq = torch.rand([T, 2, 4, H, W]) * 2
    net = layer.StepModeContainer(True, neuron.IFNode())
    net.step_mode = "m"
    y_seq = net(x_seq)
    functional.reset_net(net)
    net.step_mode = "s"
    y_steps = torch.stack([net(x_seq[t]) for t in range(T)])
    functional.reset_net(net)
    assert y_seq.shape == (T, 2, 4, H, W)
    assert torch.equal(y_seq, y_steps)


def test_set_step_mode_leaves_wrapped_modules_single_step():
    net = nn.Sequential(layer.StepModeContainer(True, neuron.IFNode()), neuron.IFNode())
    functional.set_step_mode(net, "m")
    assert net[0].step_mode == "m" and net[1].step_mode == "m"
    assert net[0][0].step_mode == "s"


def test_multi_step_containers_refuse_single_step():
    c = layer.MultiStepContainer(neuron.IFNode())
    assert c.step_mode == "m"
    with pytest.raises(StepModeError, match="supports step_mode 'm' only"):
        c.step_mode = "s"
    with pytest.raises(StepModeError, match="must be single-step"):
        layer.SeqToANNContainer(layer.Linear(2, 2, step_mode="m"))


def test_chunk_multi_step_forward_equals_one_call():
    torch.manual_seed(0)
    net = nn.Sequential(layer.Linear(8, 4), neuron.IFNode(), layer.Linear(4, 2), neuron.IFNode())
    for p in net.parameters():
        p.data.abs_()
    functional.set_step_mode(net, "m")
    x_seq = torch.rand([1024, 8])  # the seed's example: T = 1024, N = 8
    with torch.no_grad():
        y_seq = functional.chunk_multi_step_forward(16, x_seq, net)
        functional.reset_net(net)
        whole = net(x_seq)
    assert y_seq.shape == (1024, 2)
    assert torch.equal(y_seq, whole)


def test_t_last_forwards():
    torch.manual_seed(0)
    x_seq = torch.rand([T, 2, 5]) * 2
    fc = nn.Linear(5, 3)
    x_last = x_seq.permute(1, 2, 0)  # [N, C, T]
    with torch.no_grad():
        assert torch.equal(functional.t_last_multi_step_forward(x_last, fc), functional.multi_step_forward(x_seq, fc).permute(1, 2, 0))
        torch.testing.assert_close(functional.t_last_seq_to_ann_forward(x_last, [fc]), fc(x_seq).permute(1, 2, 0))
    sn = neuron.IFNode()
    a = layer.TLastMultiStepContainer(sn)(x_last)
    sn.reset()
    assert torch.equal(a, functional.multi_step_forward(x_seq, sn).permute(1, 2, 0))
