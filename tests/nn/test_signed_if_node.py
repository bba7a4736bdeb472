"""snnc.nn.neuron.SignedIFNode: the signed IF neuron of the conversion (`signed=True`) as a module: its steps
are snnc.core.dynamics.signed_if_step exactly, its surrogate gradient flows, and traced it is the IR's
signed_if, which the runtime runs spike for spike like the module."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from snnc.core import dynamics
from snnc.core.errors import UnsupportedOpError
from snnc.frontends import trace
from snnc.nn import functional, layer, neuron
from snnc.nn.errors import ConfigError
from snnc.runtime import Interpreter, Session
from tests.nets import dyadic_, dyadic_inputs


def _reference(x_seq: torch.Tensor, v_threshold: float, v_init: float) -> torch.Tensor:
    v, count, out = torch.full_like(x_seq[0], v_init), torch.zeros_like(x_seq[0]), []
    for x in x_seq:
        s, v, count = dynamics.signed_if_step(v, count, x, v_threshold)
        out.append(s)
    return torch.stack(out)


def test_the_steps_are_the_dynamics_and_take_back_cancelled_spikes():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(12, 3, 20, generator=gen)
    node = neuron.SignedIFNode(v_threshold=0.5, v_init=0.25, step_mode="m")
    out = node(x)
    assert torch.equal(out, _reference(x, 0.5, 0.25))
    assert (out == -1).any() and (out == 1).any()  # both signs occur on this input
    # after every step the spikes sum to floor((v_init + summed input) / V_th), never below 0, while one
    # spike a step keeps up (inputs below V_th in size)
    small = torch.rand(16, 2, 50, generator=gen) * 0.8 - 0.3
    functional.reset_net(node)
    count = node(small).cumsum(0)
    want = torch.clamp(torch.floor((0.25 + small.cumsum(0)) / 0.5), min=0)
    assert torch.equal(count, want)


def test_single_and_multi_step_agree_and_reset_starts_again():
    x = torch.randn(6, 4, 5, generator=torch.Generator().manual_seed(1))
    multi = neuron.SignedIFNode(v_init=0.5, step_mode="m")
    single = neuron.SignedIFNode(v_init=0.5)
    want = multi(x)
    assert torch.equal(torch.stack([single(xt) for xt in x]), want)
    functional.reset_net(multi)
    assert torch.equal(multi(x), want)


def test_the_surrogate_gradient_reaches_the_input():
    x = torch.randn(8, 2, 6, generator=torch.Generator().manual_seed(2), requires_grad=True)
    out = neuron.SignedIFNode(step_mode="m")(x)
    (out * torch.arange(6.0)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="v_threshold must be > 0"):
        neuron.SignedIFNode(v_threshold=0.0)
    with pytest.raises(ConfigError, match="v_init must be a real number"):
        neuron.SignedIFNode(v_init="half")


@pytest.mark.parametrize("step_mode", ["m", "s"])
def test_traced_it_is_the_irs_signed_if_and_runs_like_the_module(step_mode):
    net = dyadic_(nn.Sequential(layer.Linear(8, 16), neuron.SignedIFNode(v_threshold=0.5, v_init=0.25),
                                layer.Linear(16, 4), neuron.SignedIFNode()))
    functional.set_step_mode(net, step_mode)
    x = dyadic_inputs((10, 3, 8), torch.Generator().manual_seed(3), hi=2.0) - 1.0
    want = net(x) if step_mode == "m" else torch.stack([net(xt) for xt in x])
    graph = trace(net, (8,))
    signed = [op for op in graph if op.kind == "signed_if"]
    assert [(op.v_threshold, op.v_init) for op in signed] == [(0.5, 0.25), (1.0, 0.0)]
    got = Interpreter(graph).run({graph.inputs[0].name: x})[graph.outputs[0].name]
    assert (want != 0).any() and torch.equal(got, want)
    assert torch.equal(Session(graph).run(x), want)


def test_one_module_called_on_two_sequences_is_refused():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.sif = layer.Linear(4, 4, step_mode="m"), neuron.SignedIFNode(step_mode="m")

        def forward(self, x):
            return self.sif(self.fc(self.sif(x)))

    with pytest.raises(UnsupportedOpError, match="starts every sequence from v_init"):
        trace(Twice(), (4,))
