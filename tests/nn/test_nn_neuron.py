"""Neuron layers: the three equations, options, custom neurons, backends, NeuronParams."""

from __future__ import annotations

import math

import pytest
import torch

from snnc.core.dynamics import NeuronKind, NeuronParams, ResetMode
from snnc.nn import functional, neuron, surrogate
from snnc.nn.errors import BackendError, ConfigError, NoNeuronParamsError


class SquareIFNode(neuron.BaseNode):
    """The seed's custom neuron: only neuronal_charge is defined."""

    def neuronal_charge(self, x: torch.Tensor) -> None:
        self.v = self.v + x**2


def test_square_if_node_in_both_step_modes():
    x_seq = torch.tensor([[0.7452], [0.8062], [0.6730], [0.0942]])  # the seed's input
    node = SquareIFNode()
    vs, ys = [], []
    for t in range(4):
        ys.append(node(x_seq[t]))
        vs.append(node.v.clone())
    node.reset()
    node.step_mode = "m"
    y_seq = node(x_seq)
    expected_v = [0.7452**2, 0.0, 0.6730**2, 0.6730**2 + 0.0942**2]  # seed: 0.5554, 0., 0.4529, 0.4618
    torch.testing.assert_close(torch.cat(vs), torch.tensor(expected_v))
    assert y_seq.flatten().tolist() == [0.0, 1.0, 0.0, 0.0]
    assert torch.equal(torch.stack(ys), y_seq)


def test_if_hard_and_soft_reset():
    x = torch.tensor([0.6, 0.6, 0.6, 0.6])
    hard = neuron.IFNode(step_mode="m", store_v_seq=True)
    soft = neuron.IFNode(v_reset=None, step_mode="m", store_v_seq=True)
    assert hard(x[:, None]).flatten().tolist() == [0, 1, 0, 1]
    torch.testing.assert_close(hard.v_seq.flatten(), torch.tensor([0.6, 0.0, 0.6, 0.0]))
    assert soft(x[:, None]).flatten().tolist() == [0, 1, 0, 1]
    torch.testing.assert_close(soft.v_seq.flatten(), torch.tensor([0.6, 0.2, 0.8, 0.4]))


@pytest.mark.parametrize("decay_input", [True, False])
@pytest.mark.parametrize("v_reset", [0.0, -0.2, None])
def test_lif_charge(decay_input, v_reset):
    tau, v0, x = 3.0, 0.3, 0.4
    node = neuron.LIFNode(tau=tau, decay_input=decay_input, v_reset=v_reset, v_threshold=10.0)
    node.v = torch.tensor([v0])
    node(torch.tensor([x]))
    vr = 0.0 if v_reset is None else v_reset
    expected = v0 + (x - (v0 - vr)) / tau if decay_input else v0 - (v0 - vr) / tau + x
    assert node.v.item() == pytest.approx(expected, rel=1e-6)


def test_detach_reset_cuts_the_reset_gradient():
    x = torch.tensor([0.5, 1.5], requires_grad=True)
    node = neuron.IFNode(detach_reset=True)
    node(x)
    node.v.sum().backward()
    # V = H (1 - S) + V_reset S with S detached: dV/dX = 1 - S
    assert x.grad.tolist() == [1.0, 0.0]
    x.grad = None
    node = neuron.IFNode(detach_reset=False)
    node(x)
    node.v.sum().backward()
    assert x.grad[1] != 0.0  # (V_reset - H) * surrogate'(H - V_th) flows back


def test_store_v_seq():
    node = neuron.LIFNode(step_mode="m", store_v_seq=True)
    x_seq = torch.rand([5, 2, 3])
    node(x_seq)
    assert node.v_seq.shape == (5, 2, 3)
    assert torch.equal(node.v_seq[-1], node.v)
    node.reset()
    assert node.v_seq is None
    node.store_v_seq = False
    node(x_seq)
    assert node.v_seq is None


def test_plif_tau_is_learnable():
    node = neuron.ParametricLIFNode(init_tau=3.0, step_mode="m")
    assert node.w.item() == pytest.approx(-math.log(2.0))
    assert node.tau == pytest.approx(3.0)
    assert node.neuron_params().tau == pytest.approx(3.0)
    x_seq = torch.rand([6, 4, 5]) * 2
    node(x_seq).sum().backward()
    assert node.w.grad is not None and node.w.grad != 0
    with torch.no_grad():
        node.w.fill_(0.0)
    assert node.neuron_params().tau == pytest.approx(2.0)
    assert list(dict(node.named_parameters())) == ["w"]


def test_neuron_params():
    assert neuron.IFNode(v_threshold=0.5, v_reset=None).neuron_params() == NeuronParams(
        NeuronKind.IF, 0.5, ResetMode.SOFT, 0.0)
    p = neuron.LIFNode(tau=4.0, decay_input=False, v_reset=-0.1).neuron_params()
    assert (p.kind, p.tau, p.decay_input, p.reset, p.v_reset) == (NeuronKind.LIF, 4.0, False, ResetMode.HARD, -0.1)
    with pytest.raises(NoNeuronParamsError, match="custom neuron"):
        SquareIFNode().neuron_params()

    class LeakyPlus(neuron.LIFNode):
        def neuronal_charge(self, x):
            super().neuronal_charge(x)
            self.v = self.v + 0.1

    node = LeakyPlus()
    node(torch.zeros(2))  # the subclass may call LIFNode's charge ...
    with pytest.raises(NoNeuronParamsError, match="overrides neuronal_charge"):
        node.neuron_params()  # ... but is no longer a plain LIF


@pytest.mark.parametrize("kwargs", [{"tau": 1.0}, {"tau": "2"}, {"v_threshold": "1"}, {"v_reset": True},
                                    {"detach_reset": 1}])
def test_bad_options_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        neuron.LIFNode(**kwargs)


def test_each_neuron_gets_its_own_surrogate():
    a, b = neuron.IFNode(), neuron.IFNode()
    assert isinstance(a.surrogate_function, surrogate.Sigmoid)
    assert a.surrogate_function is not b.surrogate_function


def test_repr_matches_the_seeds():
    text = repr(neuron.IFNode(step_mode="m"))
    assert "v_threshold=1.0, v_reset=0.0, detach_reset=False, step_mode=m, backend=torch" in text
    assert "(surrogate_function): Sigmoid(alpha=4.0, spiking=True)" in text
    assert "tau=2.0" in repr(neuron.LIFNode())


def test_backend_hook(monkeypatch):
    monkeypatch.setattr(neuron, "_BACKENDS", dict(neuron._BACKENDS))  # undo the registration below
    node = neuron.IFNode(step_mode="m")
    assert node.backend == "torch" and "torch" in node.supported_backends
    with pytest.raises(BackendError, match="not available"):
        node.backend = "cupy"

    calls = []

    def fake_impl(n, x_seq):
        calls.append(type(n).__name__)
        return torch.zeros_like(x_seq)

    neuron.register_backend("fake", fake_impl, supports=lambda n: type(n) is neuron.IFNode)
    node.backend = "fake"
    assert node.supported_backends[0] == "torch" and node.supported_backends[-1] == "fake"
    assert torch.equal(node(torch.ones(3, 2)), torch.zeros(3, 2)) and calls == ["IFNode"]
    functional.set_backend(node, "torch")
    assert node.backend == "torch"
    with pytest.raises(BackendError):
        neuron.LIFNode().backend = "fake"
    with pytest.raises(BackendError, match="not registered"):
        neuron.IFNode(backend="nope")
    lif = neuron.LIFNode(step_mode="m", backend="fake")  # the constructor checks the name only ...
    with pytest.raises(BackendError, match="cannot run this neuron"):
        lif(torch.ones(3, 2))  # ... support is checked on use


def test_register_backend_public_api(monkeypatch):
    monkeypatch.setattr(neuron, "_BACKENDS", dict(neuron._BACKENDS))
    neuron.register_backend("echo", lambda n, x_seq: x_seq, supports=lambda n: isinstance(n, neuron.LIFNode))
    assert "echo" in neuron.registered_backends()
    node = neuron.LIFNode(step_mode="m", backend="echo")
    x = torch.rand(2, 3)
    assert node(x) is x
    node.step_mode = "s"  # single-step mode always runs the torch equations
    assert node(x[0]).shape == (3,)
