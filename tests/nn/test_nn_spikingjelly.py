"""IF / LIF / PLIF against SpikingJelly's on the same inputs (optional: needs spikingjelly)."""

from __future__ import annotations

import pytest
import torch

sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")

from snnc.nn import neuron  # noqa: E402

pytestmark = pytest.mark.spikingjelly

CONFIGS = [
    ("IFNode", "IFNode", {}),
    ("IFNode", "IFNode", {"v_reset": None, "v_threshold": 0.8}),
    ("IFNode", "IFNode", {"v_reset": -0.2, "detach_reset": True}),
    ("LIFNode", "LIFNode", {"tau": 2.0}),
    ("LIFNode", "LIFNode", {"tau": 3.0, "decay_input": False}),
    ("LIFNode", "LIFNode", {"tau": 1.5, "v_reset": None, "v_threshold": 0.6}),
    ("LIFNode", "LIFNode", {"tau": 4.0, "v_reset": 0.1, "detach_reset": True}),
    ("ParametricLIFNode", "ParametricLIFNode", {"init_tau": 2.0}),
    ("ParametricLIFNode", "ParametricLIFNode", {"init_tau": 3.0, "v_reset": None}),
    ("ParametricLIFNode", "ParametricLIFNode", {"init_tau": 5.0, "decay_input": False}),
]
IDS = [f"{ours}-{kw}" for ours, _, kw in CONFIGS]


def _run(node: torch.nn.Module, x_seq: torch.Tensor, step_mode: str):
    node.step_mode = step_mode
    x = x_seq.clone().requires_grad_(True)
    if step_mode == "m":
        spikes = node(x)
        v_seq = node.v_seq
    else:
        spikes, v_seq = [], []
        for t in range(x.shape[0]):
            spikes.append(node(x[t]))
            v_seq.append(node.v)
        spikes, v_seq = torch.stack(spikes), torch.stack(v_seq)
    weights = torch.linspace(-1.0, 1.0, spikes.numel()).view_as(spikes)
    (spikes * weights).sum().backward()
    params = [p.grad for p in node.parameters()]
    return spikes.detach(), v_seq.detach(), node.v.detach(), x.grad, params


@pytest.mark.parametrize("step_mode", ["s", "m"])
@pytest.mark.parametrize("ours,theirs,kwargs", CONFIGS, ids=IDS)
def test_same_spikes_potentials_and_gradients(ours, theirs, kwargs, step_mode):
    torch.manual_seed(0)
    x_seq = torch.randn(12, 4, 9) * 1.2 + 0.2
    a = _run(getattr(neuron, ours)(store_v_seq=True, **kwargs), x_seq, step_mode)
    b = _run(getattr(sj_neuron, theirs)(store_v_seq=True, **kwargs), x_seq, step_mode)
    assert 0 < a[0].mean() < 1
    assert torch.equal(a[0], b[0]), "spikes"
    assert torch.equal(a[1], b[1]), "membrane potential sequence"
    assert torch.equal(a[2], b[2]), "final membrane potential"
    torch.testing.assert_close(a[3], b[3], rtol=1e-5, atol=1e-6, msg="input gradient")
    for ga, gb in zip(a[4], b[4], strict=True):
        torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-5, msg="parameter gradient")
