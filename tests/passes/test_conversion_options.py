"""Conversion options: v_init, channel-wise lambdas, mse lambdas, bias correction; API and CLI."""

import re
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import snnc
from snnc.core.errors import InputError
from snnc.frontends import trace
from snnc.ir import Graph, Layout, TensorType, load, ops, save
from snnc.passes import QuantileSketch, fuse_bn, parse_norm_mode
from snnc.passes.norm_modes import MinError, min_error_scale, rate_code
from snnc.runtime import Session


@settings(max_examples=25, deadline=None)
@given(a=st.lists(st.integers(-8, 40), min_size=1, max_size=6), lam=st.sampled_from([0.5, 1.0, 2.0, 4.0]),
       T=st.integers(1, 16), v_init=st.sampled_from([0.0, 0.25, 0.5]))
def test_rate_code_is_what_the_if_neuron_computes(a, lam, T, v_init):
    """Scale(1/l) -> IF(soft, v_init) -> Scale(l), averaged over T, equals rate_code exactly (dyadic values)."""
    g = Graph("code")
    g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", len(a)), layout=Layout.TNX)))
    g.add(ops.Scale(name="pre", inputs=("x",), factor=1 / lam))
    g.add(ops.IF(name="n", inputs=("pre",), reset=ops.SoftReset(), v_init=v_init or None))
    g.add(ops.Scale(name="post", inputs=("n",), factor=lam))
    g.add(ops.Output(name="out", inputs=("post",)))
    x = torch.tensor([a], dtype=torch.float32) / 8
    count = Session(g).run(x, T).sum(0).double() / lam  # exact: dyadic values, power-of-two lambda
    want = rate_code(x.double(), torch.tensor(lam, dtype=torch.float64), T, v_init) * T / lam
    assert torch.equal(count, torch.floor(count)) and torch.allclose(count, want, rtol=0, atol=1e-9)


def test_min_error_lambda_beats_max_on_the_data_and_shrinks_with_T():
    x = torch.distributions.Exponential(2.0).sample((20000,)).clamp(max=4.0)  # a long-tailed ReLU output
    s = QuantileSketch()
    s.add(x)

    def err(lam, T):
        return float(((x.double() - rate_code(x.double(), torch.tensor(lam), T, 0.5)) ** 2).mean())

    lams = {T: float(min_error_scale(s, T, 0.5)) for T in (2, 4, 16, 64)}
    for T, lam in lams.items():
        assert 0 < lam <= s.max and err(lam, T) <= err(s.max, T) and err(lam, T) <= err(s.quantile(0.999), T)
    assert lams[2] < lams[16] <= lams[64]


def test_options_reach_the_graph(small_cnn):
    x = torch.rand(48, 1, 8, 8)
    g = snnc.convert(small_cnn, x)
    neurons = [op for op in g if isinstance(op, ops.NeuronOp)]
    assert all(n.v_init == 0.5 for n in neurons)
    assert g.meta["conversion"]["mode"] == "99.9%" and g.meta["conversion"]["v_init"] == 0.5
    assert all(n.v_init is None for n in snnc.convert(small_cnn, x, v_init=0.0) if isinstance(n, ops.NeuronOp))

    cw = snnc.convert(small_cnn, x, "max", channelwise=True)
    layer = snnc.convert(small_cnn, x, "max").meta["conversion"]["scales"]
    for k, lams in cw.meta["conversion"]["scales"].items():
        assert isinstance(lams, list) and max(lams) == pytest.approx(layer[k])  # the layer max is a channel's max
    assert any(op.kind == "scale" and op.weight is not None for op in cw)

    mse = snnc.convert(small_cnn, x, "mse", time_steps=4)
    assert mse.meta["conversion"]["mode"] == "mse" and mse.meta["conversion"]["time_steps"] == 4
    assert all(mse.meta["conversion"]["scales"][k] <= layer[k] for k in layer)


def test_bias_correction_removes_the_mean_rate_code_error(small_cnn):
    x = torch.rand(64, 1, 8, 8)
    ann = fuse_bn(trace(small_cnn, (1, 8, 8)))
    relus = [op.name for op in ann if op.kind == "relu"]
    plain = snnc.convert(small_cnn, x, "99.9%", v_init=0.0)
    fixed = snnc.convert(small_cnn, x, "99.9%", v_init=0.0, time_steps=4, bias_correction=True)
    assert fixed.meta["conversion"]["bias_correction"] is True

    def mean_error(g, r):
        from snnc.runtime.interpreter import Interpreter

        want = Interpreter(ann).run({"x": x}, keep={r})[r].mean((0, 2, 3))
        got = Interpreter(g).run({"x": x}, 4, keep={r})[r].mean((0, 1, 3, 4))
        return float((want - got).abs().mean())

    first = relus[0]
    assert mean_error(fixed, first) < 0.3 * mean_error(plain, first)
    assert mean_error(fixed, relus[1]) < mean_error(plain, relus[1])


@pytest.mark.parametrize("kwargs,match", [({"bogus": 1}, "bogus"), ({"v_init": 1.5}, "v_init"),
                                          ({"bias_correction": True}, "time_steps"), ({"time_steps": 0}, "time_steps")])
def test_bad_options_are_input_errors(small_cnn, kwargs, match):
    with pytest.raises(InputError, match=match):
        snnc.convert(small_cnn, torch.rand(8, 1, 8, 8), **kwargs)
    with pytest.raises(InputError, match="time_steps"):
        snnc.convert(small_cnn, torch.rand(8, 1, 8, 8), "mse")
    assert parse_norm_mode("MSE") == MinError()


def test_defaults_beat_the_textbook_at_low_T_on_digits():
    """The issue's target as a regression test: default conversion within 2 points of the ANN at T=4
    (benchmarks/conversion.py measures it on the fully trained demo network). On the stored digits CNN
    (tests/nets.py; nothing trains here), all 450 test images: measured ANN 99.56, default 99.11, textbook
    73.1, so each bound keeps a margin of 7 samples or more against last-bit differences between CPUs."""
    from snnc.core import datasets
    from snnc.demo import accuracy
    from tests.nets import digits_cnn

    data = datasets.digits()
    model = digits_cnn()
    x, y = data.x_test, data.y_test
    with torch.no_grad():
        ann = accuracy(model(x).argmax(-1), y)
    default = accuracy(Session(snnc.convert(model, data.x_train[:256])).predict(x, 4), y)
    textbook = accuracy(Session(snnc.convert(model, data.x_train[:256], v_init=0.0)).predict(x, 4), y)
    assert default >= ann - 2.0 and default > textbook + 4, (ann, default, textbook)


def test_cli_flags(tmp_path, small_cnn):
    from snnc.cli import app

    save(trace(small_cnn, (1, 8, 8), name="small"), tmp_path / "ann.snnir")
    np.save(tmp_path / "calib.npy", np.random.rand(32, 1, 8, 8).astype(np.float32))
    runner = CliRunner()
    r = runner.invoke(app, ["convert", str(tmp_path / "ann.snnir"), "--calib", str(tmp_path / "calib.npy"),
                            "--mode", "mse", "-T", "4", "--channelwise", "--v-init", "0.25", "--bias-correction",
                            "-o", str(tmp_path / "snn.snnir")])
    assert r.exit_code == 0, r.output
    conv = load(tmp_path / "snn.snnir").meta["conversion"]
    assert conv["mode"] == "mse" and conv["channelwise"] and conv["v_init"] == 0.25 and conv["bias_correction"]

    r = runner.invoke(app, ["-v", "compile", str(tmp_path / "snn.snnir"), "-o", str(tmp_path / "out"),
                            "--passes", "fold-scales,layout{to=TN},fuse", "--print-after", "fuse", "--verify-each"])
    assert r.exit_code == 0, r.output
    assert "// after fuse" in r.output and "group(g0)" in r.output and "TN = " in r.output
    assert all(re.search(rf"pass {p} +[0-9.]+ ms", r.output) for p in ("fold-scales", "layout", "fuse"))
    r = runner.invoke(app, ["passes"])
    assert all(p in r.output for p in ("fold-scales", "layout", "fuse", "hoist-constant-input", "pipeline cpu:"))
