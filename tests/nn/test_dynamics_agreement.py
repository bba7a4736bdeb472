"""The snnc.nn neurons compute exactly `snnc.core.dynamics.multi_step` (the one semantics)."""

from __future__ import annotations

import pytest
import torch

from snnc.core import dynamics
from snnc.nn import neuron

CONFIGS = [
    (neuron.IFNode, {}),
    (neuron.IFNode, {"v_reset": None, "v_threshold": 0.7}),
    (neuron.IFNode, {"v_reset": -0.3, "v_threshold": 0.4}),
    (neuron.LIFNode, {}),
    (neuron.LIFNode, {"tau": 3.0, "decay_input": False}),
    (neuron.LIFNode, {"tau": 1.7, "v_reset": None, "v_threshold": 0.6}),
    (neuron.LIFNode, {"tau": 5.0, "v_reset": 0.2, "decay_input": False, "v_threshold": 0.9}),
    (neuron.LIFNode, {"tau": 2.5, "v_reset": -0.1}),
    # sigmoid(w) = 0.5 exactly, so multiplying by it equals dividing by tau = 2.
    (neuron.ParametricLIFNode, {"init_tau": 2.0}),
    (neuron.ParametricLIFNode, {"init_tau": 2.0, "v_reset": None, "decay_input": False}),
]
IDS = [f"{cls.__name__}-{kw}" for cls, kw in CONFIGS]


def _x_seq() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(16, 3, 7) * 0.8 + 0.3


@pytest.mark.parametrize("step_mode", ["s", "m"])
@pytest.mark.parametrize("cls,kwargs", CONFIGS, ids=IDS)
def test_forward_equals_dynamics_multi_step(cls, kwargs, step_mode):
    x_seq = _x_seq()
    node = cls(step_mode=step_mode, store_v_seq=True, **kwargs)
    with torch.no_grad():
        if step_mode == "m":
            spikes = node(x_seq)
            v_seq = node.v_seq
        else:
            spikes, v_seq = [], []
            for t in range(x_seq.shape[0]):
                spikes.append(node(x_seq[t]))
                v_seq.append(node.v)
            spikes, v_seq = torch.stack(spikes), torch.stack(v_seq)
    ref_spikes, ref_v, ref_v_seq = dynamics.multi_step(node.neuron_params(), x_seq, return_v_seq=True)
    assert 0 < ref_spikes.mean() < 1
    assert torch.equal(spikes, ref_spikes)
    assert torch.equal(v_seq, ref_v_seq)
    assert torch.equal(node.v, ref_v)


def test_initial_v_matches():
    for cls, kwargs in CONFIGS:
        node = cls(**kwargs)
        assert node.v == node.neuron_params().initial_v


def test_plif_with_any_tau_follows_the_decay_form():
    """For tau other than 2, PLIF multiplies by sigmoid(w): dynamics.charge(..., decay=) is that form."""
    x_seq = _x_seq()
    node = neuron.ParametricLIFNode(init_tau=3.0, step_mode="m", store_v_seq=True)
    with torch.no_grad():
        spikes = node(x_seq)
        p = node.neuron_params()
        decay = node.w.sigmoid()
        v = torch.full_like(x_seq[0], p.initial_v)
        for t in range(x_seq.shape[0]):
            h = dynamics.charge(p, v, x_seq[t], decay=decay)
            s = dynamics.fire(p, h)
            v = dynamics.reset(p, h, s)
            assert torch.equal(spikes[t], s) and torch.equal(node.v_seq[t], v)
        # dividing by the float tau instead is equal up to rounding
        ref_spikes, _, ref_v_seq = dynamics.multi_step(p, x_seq, return_v_seq=True)
    torch.testing.assert_close(node.v_seq, ref_v_seq, rtol=1e-5, atol=1e-5)
