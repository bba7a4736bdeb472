"""MemoryModule plumbing: states as attributes, reset, detach, copies, device/dtype moves, tracing."""

from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.fx as fx
import torch.nn as nn

from snnc.nn import base, functional, layer, neuron
from snnc.nn.errors import StateError


class Counter(base.MemoryModule):
    def __init__(self) -> None:
        super().__init__()
        self.register_memory("count", 0)

    def single_step_forward(self, x: torch.Tensor) -> torch.Tensor:
        self.count = self.count + 1
        return x * self.count


def test_memories_read_write_and_reset():
    c = Counter()
    assert c(torch.ones(2)).tolist() == [1.0, 1.0]
    c.step_mode = "m"
    assert c(torch.ones(3, 1)).flatten().tolist() == [2.0, 3.0, 4.0]
    assert dict(c.named_memories()) == {"count": 4} and "count" in dir(c)
    functional.reset_net(c)
    assert c.count == 0
    with pytest.raises(StateError, match="name is taken"):
        c.register_memory("count", 1)


def test_detach_cuts_history():
    node = neuron.IFNode()
    x = torch.rand(3, requires_grad=True)
    node(x)
    assert node.v.grad_fn is not None
    functional.detach_net(node)
    assert node.v.grad_fn is None


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(layer.Conv2d(1, 4, 3, padding=1), neuron.IFNode(), layer.Flatten(), layer.Linear(256, 10),
                        neuron.LIFNode())
    functional.set_step_mode(net, "m")
    return net


def test_deepcopy_and_pickle_mid_sequence():
    net = _net()
    x = torch.rand(4, 2, 1, 8, 8)
    net(x)  # states now carry autograd history
    clones = [copy.deepcopy(net), _reload(net)]
    v = net[1].v.detach().clone()
    with torch.no_grad():
        expected = net(x)
        for clone in clones:
            assert isinstance(clone[0], layer.Conv2d) and clone[0].step_mode == "m"
            assert torch.equal(clone[1].v, v)
            assert torch.equal(clone(x), expected)


def _reload(net: nn.Module) -> nn.Module:
    buf = io.BytesIO()
    torch.save(net, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


def test_dtype_moves_states_too():
    node = neuron.IFNode()
    node(torch.rand(3))
    node.double()
    assert node.v.dtype == torch.float64


def test_fx_trace_with_step_modules_as_leaves():
    class Tracer(fx.Tracer):
        def is_leaf_module(self, m: nn.Module, name: str) -> bool:
            return isinstance(m, base.StepModule) or super().is_leaf_module(m, name)

    net = _net()
    gm = fx.GraphModule(net, Tracer().trace(net))
    assert [n.target for n in gm.graph.nodes if n.op == "call_module"] == ["0", "1", "2", "3", "4"]
    x = torch.rand(4, 2, 1, 8, 8)
    with torch.no_grad():
        a = gm(x)
        functional.reset_net(net)
        assert torch.equal(a, net(x))
