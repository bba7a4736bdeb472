"""Issue 19: bounded activations (ReLU6, hardtanh(0, a), clamp(0, a)) convert to IF neurons capped at the bound.

The networks are constructed (tests/nets.py: dyadic weights), never trained.
"""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import snnc
from snnc.core.errors import PassError
from snnc.frontends import load as load_model
from snnc.frontends import trace
from snnc.ir import load, ops, save
from snnc.runtime import Session
from snnc.runtime.interpreter import Interpreter
from tests.nets import set_layer


def _net(act: nn.Module) -> nn.Sequential:
    """Linear(6, 16) -> act -> Linear(16, 4), with a third of the hidden pre-activations above 6."""
    g = torch.Generator().manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 16), act, nn.Linear(16, 4)).eval()
    set_layer(m[0], g, (-8, 16, 0), (-4, 4, 0))
    set_layer(m[2], g, (-8, 8, 4), (-4, 4, 4))
    return m


def _x(n: int = 64) -> torch.Tensor:
    return torch.rand(n, 6, generator=torch.Generator().manual_seed(1))


def test_relu6_rate_saturates_at_6_and_matches_the_ann():
    model, x = _net(nn.ReLU6()), _x()
    with torch.no_grad():
        pre, ann = model[0](x), model(x)
    assert float((pre > 6).float().mean()) > 0.2  # the bound matters on this data
    g = snnc.convert(model, x, "max")
    assert g.meta["conversion"]["scales"] == {"_1": 6.0}  # lambda = min(6, calibrated max > 6)
    s = Session(g)
    T = 256
    hidden = s.execute(x, T, probes=["_1"]).probes["_1"].mean(0)
    assert float(hidden.max()) == 6.0  # one spike per step times lambda = 6: the cap
    sat = pre >= 6.5
    assert bool((hidden[sat] == 6.0).all())
    # independent reference: a soft-reset IF, v_init 0.5, fires clip(floor(T a / lambda + 0.5), 0, T) times
    expect = 6.0 / T * torch.clamp(torch.floor(T * pre.double() / 6.0 + 0.5), 0, T)
    torch.testing.assert_close(hidden.double(), expect, atol=1e-5, rtol=0)
    cos = [float(F.cosine_similarity(s.run(x, t).mean(0).flatten(), ann.flatten(), 0)) for t in (4, 32, T)]
    assert cos[0] < cos[1] <= cos[2] + 1e-6 and cos[2] > 0.9999, cos


def test_the_bound_changes_the_result():
    """The same weights with a ReLU convert to an SNN whose hidden rate exceeds 6: dropping the bound shows."""
    x = _x()
    bounded = Session(snnc.convert(_net(nn.ReLU6()), x, "max")).execute(x, 64, probes=["_1"]).probes["_1"].mean(0)
    plain = Session(snnc.convert(_net(nn.ReLU()), x, "max")).execute(x, 64, probes=["_1"]).probes["_1"].mean(0)
    assert float(bounded.max()) == 6.0 and float(plain.max()) > 7.0


def test_percentile_below_the_bound_keeps_the_calibrated_scale_channelwise_too():
    model, x = _net(nn.Hardtanh(0.0, 40.0)), _x()
    g = snnc.convert(model, x, "99%")
    lam = g.meta["conversion"]["scales"]["_1"]
    assert 6.0 < lam < 40.0  # min(a, lambda): the calibrated lambda where it is lower
    with torch.no_grad():
        top = model[0](x).amax(0).double()
    a = float(top[top > 0].median())  # a bound between the channels' maxima
    per_channel = snnc.convert(_net(nn.Hardtanh(0.0, a)), x, "max", channelwise=True).meta["conversion"]["scales"]
    expect = torch.where(top > 0, torch.clamp(top, max=a), torch.full_like(top, a))  # a dead channel: the layer's
    assert bool((top > a).any() and (top[top > 0] < a).any())
    assert torch.allclose(torch.tensor(per_channel["_1"], dtype=torch.float64), expect, atol=1e-5)


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(6, 8), nn.Linear(8, 8)

    def forward(self, x):
        y = F.relu6(self.a(x))
        y = F.hardtanh(self.b(y), 0.0, 3.0)
        return torch.clamp(y, 0, 2) + y.clip(min=0.0, max=1.5)


@pytest.mark.parametrize("path", ["fx", "pt2"])
def test_frontends_lower_relu6_hardtanh_clamp_to_clamp(tmp_path, path):
    model = Functional().eval()
    x = torch.randn(8, 6) * 4
    if path == "fx":
        g = trace(model, (6,))
    else:
        torch.export.save(torch.export.export(model, (x,)), tmp_path / "m.pt2")
        g = load_model(tmp_path / "m.pt2")
    bounds = sorted((op.min, op.max) for op in g if isinstance(op, ops.Clamp))
    assert bounds == [(0.0, 1.5), (0.0, 2.0), (0.0, 3.0), (0.0, 6.0)]
    out = Interpreter(g).run({g.inputs[0].name: x})[g.outputs[0].name]
    with torch.no_grad():
        assert torch.equal(out, model(x))
    snn = snnc.convert(g, torch.rand(32, 6))
    assert not any(isinstance(op, ops.Clamp) for op in snn)
    assert sum(isinstance(op, ops.IF) for op in snn) == 4


@pytest.mark.parametrize("act,why", [(nn.Hardtanh(), "lower bound -1.0 is not 0"),
                                     (nn.Hardtanh(0.5, 6.0), "lower bound 0.5 is not 0")])
def test_a_lower_bound_other_than_0_is_refused_by_name(act, why):
    with pytest.raises(PassError, match=rf"%_1 \(clamp\) from '1' \(torch.nn.Hardtanh\).*{why}"):
        snnc.convert(_net(act), _x())


def test_clamp_without_a_lower_bound_is_refused():
    class Top(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(6, 4)

        def forward(self, x):
            return self.a(x).clamp(max=3.0)

    with pytest.raises(PassError, match=r"\(clamp\).*lower bound None is not 0"):
        snnc.convert(Top().eval(), _x())


def test_clamp_round_trips_and_other_targets_refuse_it_by_name(tmp_path):
    from snnc.backends.lynxi.legalize import op_problems
    from snnc.backends.nir.export import refusal

    g = trace(_net(nn.ReLU6()), (6,))
    save(g, tmp_path / "a.snnir")
    back = load(tmp_path / "a.snnir")
    assert str(back) == str(g) and back["_1"] == g["_1"] and "clamp(%_0) {min=0.0, max=6.0}" in str(g)
    assert not any("'clamp'" in p for p in op_problems(g))  # lynxi lowers a clamp (torch.clamp in its program)
    assert "(clamp)" in refusal(g["_1"], g, None)[0]
