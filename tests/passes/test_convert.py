import pytest
import torch
import torch.nn as nn

import snnc
from snnc.core.errors import InputError
from snnc.ir import ops
from snnc.passes import FixedScale, MaxNorm, Percentile, parse_norm_mode
from snnc.runtime import Session
from tests.conftest import randomize_bn


@pytest.mark.parametrize("text,expected", [("max", MaxNorm()), ("MAX", MaxNorm()), ("99.9%", Percentile(p=99.9)),
                                           ("100%", Percentile(p=100)), ("50 %", Percentile(p=50)),
                                           (0.5, FixedScale(s=0.5)), ("0.25", FixedScale(s=0.25)), (1, FixedScale(s=1.0))])
def test_norm_mode_parsing(text, expected):
    assert parse_norm_mode(text) == expected


@pytest.mark.parametrize("bad", ["99.9", "120%", "0%", 1.5, 0.0, -0.1, "maximum", True, None, float("nan")])
def test_bad_norm_mode_names_the_value_and_the_valid_forms(bad):
    with pytest.raises(InputError) as e:
        parse_norm_mode(bad)
    assert repr(bad) in str(e.value) and "'max'" in str(e.value) and "(0, 1]" in str(e.value)


def test_relu_becomes_scaled_soft_reset_if(small_cnn):
    g = snnc.convert(small_cnn, torch.rand(64, 1, 8, 8), "max")
    neurons = [op for op in g if isinstance(op, ops.NeuronOp)]
    assert len(neurons) == 2 and not any(op.kind in ("relu", "batch_norm") for op in g)
    assert all(isinstance(n.reset, ops.SoftReset) and n.v_threshold == 1.0 and n.fire.value == "ge" for n in neurons)
    assert g.inputs[0].type.layout.value == "TNX"
    assert g.meta["conversion"]["mode"] == "max"


def test_converted_rates_approach_ann_outputs_as_T_grows():
    torch.manual_seed(0)
    model = randomize_bn(nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4)))
    x = torch.rand(64, 6)
    g = snnc.convert(model, x, "max")
    s = Session(g)
    with torch.no_grad():
        ann = model(x)
    errs = [float((s.run(x, T).mean(0) - ann).abs().mean()) for T in (4, 32, 256)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 0.02 * float(ann.abs().mean()) + 0.01


def test_convert_empty_calibration_set_is_clear(small_cnn):
    with pytest.raises(InputError, match="empty"):
        snnc.convert(small_cnn, torch.zeros(0, 1, 8, 8))
    with pytest.raises(InputError, match="empty"):
        snnc.convert(small_cnn, [])


def test_dead_layer_warns_and_names_node():
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.fill_(-1.0)
    with pytest.warns(UserWarning, match="dead layer"):
        snnc.convert(model, torch.rand(10, 3), "max")


@pytest.mark.parametrize("tiny", [False, True])
def test_a_layer_quiet_at_the_percentile_uses_its_maximum_not_a_made_up_scale(tiny):
    """More than 0.1% of the values positive is what a 99.9% scale needs; a layer active on fewer (or whose
    values all lie below the sketch's resolution, 1e-9, as in a deep network whose signal vanished) fired
    all the same: its scale is its maximum, said in a warning, so the SNN carries its signal."""
    torch.manual_seed(0)
    unit = 1e-10 if tiny else 1.0
    model = nn.Sequential(nn.Linear(1, 1), nn.ReLU(), nn.Linear(1, 1))
    with torch.no_grad():
        model[0].weight.fill_(unit)
        model[0].bias.fill_(-0.9995 * unit)  # positive only for inputs above 0.9995: 1 in 2000 values, or tiny
        model[2].weight.fill_(1 / unit)
        model[2].bias.zero_()
    x = torch.linspace(0, 1, 4001).unsqueeze(1)  # two inputs above 0.9995
    mode = "99%" if tiny else "99.9%"  # tiny: every positive value is below 1e-9, so any percentile is 0
    with pytest.warns(UserWarning, match=rf"the '{mode}' scale of its activations is 0 .*using their maximum") as seen:
        g = snnc.convert(model, x, mode, show_progress=False)
    assert not any("dead layer" in str(w.message) for w in seen)
    (lam,) = g.meta["conversion"]["scales"].values()
    assert lam == pytest.approx(0.0005 * unit, rel=1e-3)  # the largest value, at x = 1
    top = x[-1:]
    with torch.no_grad():
        want = model(top)
    got = Session(g).run(top, 64).mean(0)
    assert float(want) > 0.0004 and float(got) == pytest.approx(float(want), rel=0.05)


def test_percentile_scale_not_above_max(small_cnn):
    x = torch.rand(128, 1, 8, 8)
    gmax = snnc.convert(small_cnn, x, "max").meta["conversion"]["scales"]
    gp = snnc.convert(small_cnn, x, "99%").meta["conversion"]["scales"]
    ghalf = snnc.convert(small_cnn, x, 0.5).meta["conversion"]["scales"]
    for k in gmax:
        assert 0 < gp[k] <= gmax[k] and ghalf[k] == pytest.approx(0.5 * gmax[k])
