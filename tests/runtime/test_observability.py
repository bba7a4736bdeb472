"""Probes, firing rates, spike counts and op counts on hand-computed examples."""

import pytest
import torch

from snnc.core.errors import InputError
from snnc.ir import Graph, Layout, TensorType, ops
from snnc.runtime import Session, stats


def two_layer() -> Graph:
    """x[2] -> linear(3) -> IF -> linear(2) -> IF, soft reset, threshold 1."""
    g = Graph("two_layer")
    g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", 2), layout=Layout.TNX)))
    g.params["w1"] = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 0.25]])
    g.params["w2"] = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    g.add(ops.Linear(name="l1", inputs=("x",), weight="w1"))
    g.add(ops.IF(name="n1", inputs=("l1",), reset=ops.SoftReset()))
    g.add(ops.Linear(name="l2", inputs=("n1",), weight="w2"))
    g.add(ops.IF(name="n2", inputs=("l2",), reset=ops.SoftReset()))
    g.add(ops.Output(name="out", inputs=("n2",)))
    return g


@pytest.mark.parametrize("chunk", [None, 1, 3])
def test_two_layer_probes_rates_and_op_counts(chunk):
    # l1 = [0.6, 0.4, 0.05] every step (computed once: the input is constant)
    # n1 spikes: a 0,1,0,1 | b 0,0,1,0 | c never      -> 3 spikes over 4 steps x 3 neurons
    # l2 = [a + b, c] = [0,0],[1,0],[1,0],[1,0];  n2: 0,1,1,1 | never  -> 3 spikes over 4 x 2
    x = torch.tensor([[0.6, 0.2], [0.6, 0.2]])  # two identical samples
    r = Session(two_layer(), progress=False).observe(x, 4, probes=["l1", "n1", "n1:v", "n2"], chunk=chunk)
    n1 = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0]]
    assert r.probes["n1"][:, 0].tolist() == n1 and torch.equal(r.probes["n1"][:, 1], r.probes["n1"][:, 0])
    assert r.probes["n2"][:, 0].tolist() == [[0, 0], [1, 0], [1, 0], [1, 0]]
    assert torch.equal(r.outputs["out"], r.probes["n2"])
    assert torch.allclose(r.probes["l1"][:, 0], torch.tensor([0.6, 0.4, 0.05]).expand(4, 3))
    v = [[0.6, 0.4, 0.05], [0.2, 0.8, 0.1], [0.8, 0.2, 0.15], [0.4, 0.6, 0.2]]
    assert torch.allclose(r.probes["n1:v"][:, 0], torch.tensor(v), atol=1e-6)

    st = r.stats
    assert st.T == 4 and st.batch == 2
    assert st.rates == pytest.approx({"n1": 3 / 12, "n2": 3 / 8})
    assert [ly.spikes_per_step.tolist() for ly in st.layers] == [[0, 2, 2, 2], [0, 2, 2, 2]]
    assert st.spikes_per_step.tolist() == [0, 4, 4, 4]
    l1, l2 = st.synapses
    assert (l1.event_driven, l1.ann_macs, l1.macs, l1.sops) == (False, 6, 12, 0)  # once, for 2 samples
    assert (l2.event_driven, l2.ann_macs, l2.macs, l2.sops) == (True, 6, 0, 12)  # 3 spikes x fan-out 2, x2
    snn, ann = st.energy_pj()
    assert snn == pytest.approx(4.6 * 6 + 0.9 * 6) and ann == pytest.approx(4.6 * 12)
    d = st.to_dict()
    assert d["sops_per_sample"] == 6 and d["energy_pj_per_sample"]["ann"] == pytest.approx(55.2)
    assert "n1" in st.table() and "Horowitz" in st.table()


def test_a_sequence_input_costs_macs_every_step():
    x = torch.tensor([[[0.6, 0.2]], [[0.3, 0.1]], [[0.6, 0.2]]])  # analog, changes over time
    st = Session(two_layer(), progress=False).observe(x).stats
    assert (st.synapses[0].macs, st.synapses[0].event_driven) == (3 * 6, False)


def test_conv_fanout_and_sops():
    g = Graph("conv")
    g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", 1, 3, 3), layout=Layout.TNX)))
    g.params["w"] = torch.ones(2, 1, 3, 3)
    g.add(ops.Conv2d(name="conv", inputs=("x",), weight="w", padding=(1, 1)))
    g.add(ops.IF(name="n", inputs=("conv",)))
    g.add(ops.Output(name="out", inputs=("n",)))
    fan = stats.synaptic_ops(g)["conv"]
    assert fan.macs == 2 * 9 * 9
    assert fan.fanout[0].tolist() == [[8, 12, 8], [12, 18, 12], [8, 12, 8]]
    spikes = torch.zeros(2, 1, 1, 3, 3)
    spikes[0, 0, 0, 1, 1] = 1  # the centre at step 0
    spikes[1, 0, 0, 0, 0] = 1  # a corner at step 1
    st = Session(g, progress=False).observe(spikes).stats
    assert st.synapses[0].event_driven and st.synapses[0].sops == 18 + 8 and st.synapses[0].macs == 0


def test_probe_errors_name_the_problem():
    s = Session(two_layer(), progress=False)
    with pytest.raises(InputError, match="no such node"):
        s.observe(torch.rand(1, 2), 2, probes=["nope"])
    with pytest.raises(InputError, match="not a neuron"):
        s.observe(torch.rand(1, 2), 2, probes=["l1:v"])
    with pytest.raises(InputError, match="unknown quantity"):
        s.observe(torch.rand(1, 2), 2, probes=["n1:u"])


def test_graph_ann_macs_of_a_converted_network(small_cnn_graph):
    # SmallCNN(c=4): conv1 1->4 3x3 on 8x8, conv2 4->8 3x3 on 4x4, fc 8->10
    assert stats.ann_macs(small_cnn_graph) == 4 * 64 * 9 + 8 * 16 * 4 * 9 + 8 * 10
