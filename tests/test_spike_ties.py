"""tests/spike_ties.py: a spike that two runs disagree on is accepted only as a rounding tie.

A two-layer snnc.nn network whose first neuron's input current is exactly its threshold (0.5 + 0.5 =
1.0, exact in any order): the "other run" is the reference with that current one float32 ulp lower
(what another summation order gives for a sum that is not exact) and the neuron silent at that step,
as it would be. A run with a real difference (a wrong threshold on the lynxi target, a neuron that
flips far from its threshold, currents that differ by more than rounding) is refused.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import snnc
from snnc.backends.lynxi import Runner
from snnc.ir import ops
from snnc.nn import functional, layer, neuron
from snnc.passes import PIPELINES, PassManager, parse_pipeline
from snnc.runtime import Session
from tests import spike_ties

T, N = 3, 2


class TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.sn1 = layer.Linear(2, 3, bias=False), neuron.IFNode()
        self.fc2, self.sn2 = layer.Linear(3, 2, bias=False), neuron.IFNode()
        with torch.no_grad():
            self.fc1.weight.copy_(torch.tensor([[0.5, 0.5], [0.25, 0.5], [0.75, 0.125]]))
            self.fc2.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5]]))
        functional.set_step_mode(self, "m")

    def forward(self, x):
        return self.sn2(self.fc2(self.sn1(self.fc1(x))))


@pytest.fixture(scope="module")
def net():
    g = PassManager(parse_pipeline(PIPELINES["cpu"])).run(snnc.trace(TwoLayers().eval(), (2,)))
    x = torch.ones(T, N, 2)
    x[:, 1] = torch.tensor([1.0, 0.0])  # sample 1: currents 0.5, 0.25, 0.75, below the threshold at step 0

    def run(**kw) -> spike_ties.Run:
        return spike_ties.from_values(g, Session(g, **kw).observe(x, probes=spike_ties.probes(g)).probes, T)
    return g, x, run(), run(dtype=torch.float64)


def _clone(r: spike_ties.Run) -> spike_ties.Run:
    return spike_ties.Run({k: v.clone() for k, v in r.spikes.items()}, {k: v.clone() for k, v in r.currents.items()})


def _names(g):
    return [op.name for op in spike_ties.neurons(g)]


def test_the_same_spikes_are_no_flip(net):
    g, _, ref, exact = net
    assert spike_ties.explain(g, ref, _clone(ref), exact) is None


def test_a_flip_on_the_threshold_is_a_tie_and_what_follows_it_is_not_compared(net):
    g, _, ref, exact = net
    first, second = _names(g)
    assert float(ref.currents[first][0, 0, 0]) == 1.0 and float(ref.spikes[first][0, 0, 0]) == 1.0
    got = _clone(ref)
    got.currents[first][0, 0, 0] = torch.nextafter(torch.tensor(1.0), torch.tensor(0.0))
    got.spikes[first][0, 0, 0] = 0.0  # a potential one ulp below the threshold: silent
    got.spikes[second][0, 0, 0] = 1.0 - got.spikes[second][0, 0, 0]  # and the next layer differs after it
    tie = spike_ties.explain(g, ref, got, exact)
    assert (tie.layer, tie.step, tie.flipped, tie.differing, tie.margin, tie.tol) == (first, 0, 1, 2, 0.0, 1e-5)
    assert f"%{first}, step 0" in str(tie)


def test_a_flip_far_from_the_threshold_is_refused(net):
    g, _, ref, exact = net
    first, _ = _names(g)
    got = _clone(ref)
    got.spikes[first][0, 1, 0] = 1.0  # sample 1's first neuron (current 0.5) fires: not rounding
    with pytest.raises(AssertionError, match=f"%{first}.*step 0.*not a rounding tie"):
        spike_ties.explain(g, ref, got, exact)


def test_currents_that_differ_by_more_than_rounding_are_refused(net):
    g, _, ref, exact = net
    first, _ = _names(g)
    got = _clone(ref)
    got.currents[first][0, 0, 0] = 0.999  # a bias folded wrongly, say
    got.spikes[first][0, 0, 0] = 0.0
    with pytest.raises(AssertionError, match="already differ by 0.001.*not rounding"):
        spike_ties.explain(g, ref, got, exact)


def test_a_float64_run_that_differs_earlier_cannot_prove_a_tie(net):
    g, _, ref, exact = net
    first, second = _names(g)
    got, other = _clone(ref), _clone(exact)
    got.spikes[second][1, 0, 1] = 1.0 - got.spikes[second][1, 0, 1]
    other.spikes[first][2, 1, 2] = 1.0 - other.spikes[first][2, 1, 2]
    with pytest.raises(AssertionError, match=f"float64 run differs from the reference before it, at %{first}"):
        spike_ties.explain(g, ref, got, other)


def test_a_wrong_threshold_on_lynxi_is_not_a_tie(net, tmp_path):
    """End to end through Runner.values: the lowered graph with one threshold 1.0 -> 0.6 flips neurons
    whose potential (0.75 on sample 1) is far from the reference's threshold."""
    g, x, ref, exact = net
    lowered = PassManager(parse_pipeline(PIPELINES["lynxi"])).run(snnc.trace(TwoLayers().eval(), (2,)))
    art = snnc.compile(lowered, "lynxi", tmp_path / "ok", time_steps=T, batch_size=N, input_kind="sequence",
                       passes="")
    same = spike_ties.from_values(art.graph(), Runner(art, "torch").values(x.reshape(T * N, 2)), T, folded=True)
    assert spike_ties.explain(g, ref, same, exact) is None  # every spike as the reference's
    first = _names(lowered)[0]
    bad = lowered.copy()
    bad.replace_op(bad[first].model_copy(update={"v_threshold": 0.6}))
    art = snnc.compile(bad, "lynxi", tmp_path / "bad", time_steps=T, batch_size=N, input_kind="sequence", passes="")
    got = spike_ties.from_values(art.graph(), Runner(art, "torch").values(x.reshape(T * N, 2)), T, folded=True)
    assert not torch.equal(got.spikes[first], ref.spikes[first])
    with pytest.raises(AssertionError, match=f"%{first}.*not a rounding tie"):
        spike_ties.explain(g, ref, got, exact)
