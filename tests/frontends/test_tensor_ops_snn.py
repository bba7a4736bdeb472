"""Tensor ops inside multi-step SNNs ([T, N, *] values): against a hand-written forward-Euler reference and
against SpikingJelly's own forward (the optional `spikingjelly` marker).

The attention block is the spikformer pattern: spike x spike matmuls of Q, K^T
and V, a transpose of the feature dims, a scale, a mean over tokens and the
SEW-ResNet AND/IAND products of spikes; batch and time stay in place.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from snnc.frontends import trace
from snnc.ir import load, save
from snnc.nn.neuron import IFNode
from snnc.runtime import Session
from tests.frontends.models import RefIF

T, N, L, D = 6, 3, 5, 8


class SpikingAttention(nn.Module):
    def __init__(self, neuron):
        super().__init__()
        self.q, self.k, self.v = (nn.Linear(D, D) for _ in range(3))
        self.q_sn, self.k_sn, self.v_sn, self.attn_sn, self.out_sn = (neuron() for _ in range(5))
        with torch.no_grad():
            for lin in (self.q, self.k, self.v):
                lin.weight.uniform_(-0.2, 0.8)  # so that Q, K and V spike

    def forward(self, x):  # [T, N, L, D]
        q, k, v = self.q_sn(self.q(x)), self.k_sn(self.k(x)), self.v_sn(self.v(x))
        attn = q @ k.transpose(-2, -1) * 0.25  # spike x spike: [T, N, L, L]
        y = self.attn_sn(attn @ v)  # [T, N, L, D]
        both = y * v  # SEW AND
        only_y = y * (1.0 - v)  # SEW IAND
        return self.out_sn(((both + only_y).mean(2) + q.mean(2)) * 0.3)  # [T, N, D]


def _attention(neuron):
    torch.manual_seed(0)
    return SpikingAttention(neuron).eval()


def test_spiking_attention_matches_a_hand_written_reference(tmp_path):
    model = _attention(lambda: IFNode(step_mode="m"))
    ref_model = _attention(RefIF)
    x = torch.rand(T, N, L, D) * 1.5
    g = trace(model, (L, D))
    kinds = [op.kind for op in g]
    assert kinds.count("matmul") == 2 and {"permute", "mul", "mean", "add_scalar"} <= set(kinds)
    with torch.no_grad():
        want = ref_model(x)
    assert 0.05 < float(want.mean()) < 0.95, "the reference barely (or always) fires; the test would be weak"
    got = Session(g, channels_last=False, event_conv=False).run(x)
    assert torch.equal(got, want), f"{int((got != want).sum())} of {want.numel()} spikes differ"
    save(g, tmp_path / "attn.snnir")  # and the ops survive .snnir
    back = load(tmp_path / "attn.snnir")
    assert list(back) == list(g)
    assert torch.equal(Session(back).run(x), want)


def test_a_transpose_of_time_and_batch_is_refused_naming_the_module():
    class SwapTN(nn.Module):
        def __init__(self):
            super().__init__()
            self.sn = IFNode(step_mode="m")

        def forward(self, x):
            return self.sn(x).transpose(0, 1)

    with pytest.raises(Exception, match=r"moves the batch/time dims") as e:
        trace(SwapTN(), (4,))
    assert "SwapTN" in str(e.value)


# ---------------------------------------------------------------- SpikingJelly (optional)
def _sj():
    pytest.importorskip("spikingjelly.activation_based.neuron")
    from spikingjelly.activation_based import functional, layer, neuron, surrogate
    return functional, layer, neuron, surrogate


def _fire_often(net: nn.Module) -> nn.Module:
    """Constructed statistics (no training): BN and linear layers scaled so that every layer fires."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.fill_(0.05)
                m.weight.fill_(2.0)
            if isinstance(m, nn.Linear):
                m.weight.mul_(8.0)
    return net.eval()


PLIF_NETS = {"MNISTNet": (1, 28, 28), "FashionMNISTNet": (1, 28, 28), "NMNISTNet": (2, 34, 34),
             "CIFAR10Net": (3, 32, 32), "CIFAR10DVSNet": (2, 128, 128), "DVSGestureNet": (2, 128, 128)}


@pytest.mark.spikingjelly
@pytest.mark.parametrize("name", list(PLIF_NETS))
def test_parametric_lif_nets_with_their_voting_layer_match_spikingjelly(name):
    functional, layer, neuron, surrogate = _sj()
    from spikingjelly.activation_based.model import parametric_lif_net

    torch.manual_seed(0)
    shape = PLIF_NETS[name]
    net = getattr(parametric_lif_net, name)(channels=8, spiking_neuron=neuron.LIFNode,
                                            surrogate_function=surrogate.ATan(), detach_reset=True)
    functional.set_step_mode(_fire_often(net), "m")
    x = torch.rand(4, 1, *shape)
    g = trace(net, shape)
    assert "avg_pool1d" in {op.kind for op in g}  # the VotingLayer
    with torch.no_grad():
        functional.reset_net(net)
        want = net(x)
    assert float(want.abs().mean()) > 0.05
    got = Session(g, channels_last=False, event_conv=False).run(x)
    assert (got - want).abs().max() <= 1e-5


@pytest.mark.spikingjelly
@pytest.mark.parametrize("cnf", ["ADD", "AND", "IAND"])
def test_sew_connect_functions_match_spikingjelly(cnf):
    functional, layer, neuron, _ = _sj()

    class SEWBlock(nn.Module):  # sew_resnet.BasicBlock's connect functions on a two-conv block
        def __init__(self):
            super().__init__()
            self.conv1 = layer.Conv2d(4, 4, 3, padding=1, bias=False)
            self.sn1 = neuron.IFNode()
            self.conv2 = layer.Conv2d(4, 4, 3, padding=1, bias=False)
            self.sn2 = neuron.IFNode()
            with torch.no_grad():  # weights that make both layers fire about half the time
                self.conv1.weight.uniform_(-0.05, 0.15)
                self.conv2.weight.uniform_(-0.05, 0.15)

        def forward(self, x):
            out = self.sn2(self.conv2(self.sn1(self.conv1(x))))
            if cnf == "ADD":
                return out + x
            if cnf == "AND":
                return out * x
            return x * (1.0 - out)

    torch.manual_seed(0)
    net = SEWBlock().eval()
    functional.set_step_mode(net, "m")
    x = (torch.rand(T, 2, 4, 6, 6) > 0.5).float()
    g = trace(net, (4, 6, 6))
    with torch.no_grad():
        functional.reset_net(net)
        want = net(x)
    assert 0.05 < float((want > 0).float().mean()) < 0.95
    assert torch.equal(Session(g, channels_last=False, event_conv=False).run(x), want)


def test_spikes_times_a_weight_parameter_is_a_linear_and_other_uses_are_refused():
    class SpikeWeight(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(D, 4))
            self.sn = IFNode(step_mode="m")

        def forward(self, x):
            s = self.sn(x)
            return s @ self.w + torch.matmul(s, self.w)  # one parameter, used twice

    torch.manual_seed(0)
    model = SpikeWeight()
    g = trace(model, (L, D))
    assert [op.kind for op in g].count("linear") == 2 and len(g.params) == 1
    x = torch.rand(T, N, L, D) * 2
    torch.testing.assert_close(Session(g).run(x), RefSpikeWeight(model)(x), atol=1e-5, rtol=1e-5)

    class AddWeight(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(D))

        def forward(self, x):
            return x + self.w

    add = AddWeight()  # a sum with a weight is an AddConst (ViT's position embedding)
    g = trace(add, (L, D))
    assert [op.kind for op in g].count("add_const") == 1
    x = torch.randn(N, L, D)
    torch.testing.assert_close(Session(g).run(x), add(x).detach())

    class SubWeight(AddWeight):
        def forward(self, x):
            return x - self.w

    with pytest.raises(Exception, match=r"'w' read as a tensor attribute"):
        trace(SubWeight(), (L, D))


class RefSpikeWeight(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.w = model.w.detach()

    def forward(self, x):
        s = RefIF()(x)
        return s @ self.w + s @ self.w
