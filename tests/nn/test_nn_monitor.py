"""The Monitor seed (004), run with snnc.nn."""

from __future__ import annotations

import zlib

import pytest
import torch
import torch.nn as nn

from snnc.nn import functional, layer, monitor, neuron, surrogate, tensor_cache

T, N = 4, 1


def _seed_net() -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(layer.Linear(8, 4), neuron.IFNode(), layer.Linear(4, 2), neuron.IFNode())
    for param in net.parameters():
        param.data.abs_()
    functional.set_step_mode(net, "m")
    return net


def _x_seq() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand([T, N, 8])


def test_output_monitor_records_and_names():
    net, x_seq = _seed_net(), _x_seq()
    with torch.no_grad():
        expected = [net[1](net[0](x_seq))]
        expected.append(net[3](net[2](expected[0])))
        functional.reset_net(net)
        mon = monitor.OutputMonitor(net, neuron.IFNode)
        net(x_seq)
    assert mon.monitored_layers == ["1", "3"]
    assert len(mon.records) == 2
    assert torch.equal(mon.records[0], expected[0]) and torch.equal(mon.records[1], expected[1])
    assert mon[0] is mon.records[0]
    assert mon["1"] == [mon.records[0]] and mon["3"] == [mon.records[1]]
    assert mon.records[0].shape == (T, N, 4) and mon.records[1].shape == (T, N, 2)
    with pytest.raises(KeyError, match=r"monitored layers: \['1', '3'\]"):
        mon["0"]
    mon.clear_recorded_data()
    assert mon.records == [] and mon["1"] == []
    mon.remove_hooks()
    with torch.no_grad():
        net(x_seq)
    assert mon.records == []


def test_function_on_output_and_enable_disable():
    net, x_seq = _seed_net(), _x_seq()

    def cal_firing_rate(s_seq):
        return s_seq.flatten(1).mean(1)

    fr = monitor.OutputMonitor(net, neuron.IFNode, cal_firing_rate)
    with torch.no_grad():
        fr.disable()
        net(x_seq)
        functional.reset_net(net)
        assert fr.records == [] and not fr.is_enable()
        fr.enable()
        spikes = net(x_seq)
    assert [r.shape for r in fr.records] == [(T,), (T,)]
    assert torch.equal(fr.records[1], spikes.flatten(1).mean(1))
    fr.remove_hooks()


def test_attribute_and_input_monitors():
    net, x_seq = _seed_net(), _x_seq()
    for m in net.modules():
        if isinstance(m, neuron.IFNode):
            m.store_v_seq = True
    v_mon = monitor.AttributeMonitor("v_seq", pre_forward=False, net=net, instance=neuron.IFNode)
    in_mon = monitor.InputMonitor(net, neuron.IFNode)
    with torch.no_grad():
        out = net(x_seq)
    assert [r.shape for r in v_mon.records] == [(T, N, 4), (T, N, 2)]
    assert torch.equal(v_mon.records[1], net[3].v_seq)
    assert torch.all(v_mon.records[1][out == 1] == 0)  # hard reset to 0 where a spike fired
    with torch.no_grad():
        assert torch.equal(in_mon.records[0], net[0](x_seq))
    v_mon.remove_hooks()
    in_mon.remove_hooks()


def test_grad_output_monitor():
    net, x_seq = _seed_net(), _x_seq()
    mon = monitor.GradOutputMonitor(net, neuron.IFNode)
    net(x_seq).sum().backward()
    assert len(mon.records) == 2
    assert torch.equal(mon.records[0], torch.ones(T, N, 2))  # the last layer comes first: dL/dS = 1
    assert mon.records[1].shape == (T, N, 4)
    assert mon["3"] == [mon.records[0]]
    mon.remove_hooks()


def test_grad_input_monitor_norms_shrink_with_depth_for_small_alpha():
    torch.manual_seed(0)
    net = nn.Sequential(*[m for _ in range(10) for m in (layer.Linear(8, 8), neuron.IFNode())])
    functional.set_step_mode(net, "m")
    x_seq = torch.rand([T, N, 8])
    mon = monitor.GradInputMonitor(net, neuron.IFNode, function_on_grad_input=torch.norm)
    ratios = {}
    for alpha in [0.1, 0.5, 4]:
        for m in net.modules():
            if isinstance(m, surrogate.Sigmoid):
                m.alpha = alpha
        net(x_seq).sum().backward()
        records = [r.item() for r in mon.records]
        assert len(records) == 10 and mon["19"] == [mon.records[0]]
        if alpha < 1:
            # records[0] is the deepest layer; the norm falls at every layer towards the input
            assert all(a > b for a, b in zip(records, records[1:])), records
        ratios[alpha] = records[-1] / records[0]
        functional.reset_net(net)
        for param in net.parameters():
            param.grad.zero_()
        mon.records.clear()  # as in the seed; also clears the per-layer index
        assert mon["19"] == []
    assert ratios[0.1] < ratios[0.5] < ratios[4]
    mon.remove_hooks()


def test_monitor_with_bit_packed_records():
    net, x_seq = _seed_net(), _x_seq()

    def compress(spike):
        spike_b, s_dtype, s_shape, s_padding = tensor_cache.float_spike_to_bool(spike)
        return zlib.compress(spike_b.numpy().tobytes()), s_dtype, s_shape, s_padding

    def decompress(spike_cb, s_dtype, s_shape, s_padding):
        spike_b = torch.frombuffer(bytearray(zlib.decompress(spike_cb)), dtype=torch.uint8)
        return tensor_cache.bool_spike_to_float(spike_b, s_dtype, s_shape, s_padding)

    with monitor.OutputMonitor(net, neuron.IFNode, function_on_output=compress) as mon, torch.no_grad():
        out = net(x_seq)
        assert torch.equal(decompress(*mon.records[1]), out)
    assert mon.hooks == []
