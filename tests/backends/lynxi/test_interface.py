"""Interface options (a rate readout, a hoisted constant input) and `snnc compile --target lynxi`."""

from __future__ import annotations

import json

import onnx
import pytest
import torch
from typer.testing import CliRunner

import snnc
from snnc.cli import app
from snnc.core.errors import LoweringError
from snnc.ir import IF, Graph, Input, Layout, Linear, Output, TensorType, save
from snnc.passes import PIPELINES, hoist_constant_input
from snnc.runtime import Session
from tests.backends.lynxi.conftest import ENGINES, T, onnx_value_types


def test_mean_readout_returns_rates(compiled, tmp_path):
    g, x = compiled.graph("digits", "raw"), compiled.x
    ref = compiled.reference("digits", "raw")
    art = snnc.compile(g, "lynxi", tmp_path / "mean", time_steps=T, batch_size=x.shape[0], readout="mean")
    names = [s["name"] for s in art.manifest["interface"]["outputs"]]
    assert all(s["shape"][0] == x.shape[0] for s in art.manifest["interface"]["outputs"])
    out = dict(zip(names, ENGINES["torch"](art.path, [x])))
    for k, seq in ref.items():  # every value of the constructed network, and its mean over T=8, is exact
        assert out[k].shape == seq.shape[1:]
        assert torch.equal(out[k], seq.mean(0)), k
    assert torch.equal(out["out"].argmax(-1), ref["out"].mean(0).argmax(-1))


def _snn_file(path, batch) -> None:
    g = Graph("tiny")
    g.add(Input(name="x", type=TensorType(shape=("T", batch, 6), layout=Layout.TNX)))
    g.params["fc.weight"] = torch.randint(-8, 9, (4, 6), generator=torch.Generator().manual_seed(0)) / 8.0  # exact sums
    g.add(Linear(name="fc", inputs=("x",), weight="fc.weight"))
    g.add(IF(name="n", inputs=("fc",), v_threshold=0.5))
    g.add(Output(name="out", inputs=("n",)))
    save(g, path)


def test_cli_compiles_with_the_lynxi_pipeline(tmp_path):
    _snn_file(tmp_path / "tiny.snnir", 3)
    r = CliRunner().invoke(app, ["compile", str(tmp_path / "tiny.snnir"), "--target", "lynxi", "-T", "4",
                                 "-o", str(tmp_path / "out"), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["target"] == "lynxi" and summary["passes"] == PIPELINES["lynxi"].split(",")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert (manifest["time_steps"], manifest["batch_size"]) == (4, 3)
    assert manifest["interface"]["outputs"][0]["shape"] == [12, 4]


def test_cli_without_a_static_batch_fails_at_compile_time(tmp_path):
    _snn_file(tmp_path / "tiny.snnir", "N")
    r = CliRunner().invoke(app, ["compile", str(tmp_path / "tiny.snnir"), "--target", "lynxi", "-T", "4",
                                 "-o", str(tmp_path / "out")])
    assert isinstance(r.exception, LoweringError) and "--batch-size" in str(r.exception)  # the flag, on the CLI
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("engine", ["onnx", "torch"])
def test_cli_artifact_runs(tmp_path, engine):
    _snn_file(tmp_path / "tiny.snnir", 2)
    r = CliRunner().invoke(app, ["compile", str(tmp_path / "tiny.snnir"), "--target", "lynxi", "-T", "3",
                                 "-o", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    x = torch.randint(-8, 9, (2, 6), generator=torch.Generator().manual_seed(1)) / 8.0  # constant over T; dyadic
    session = snnc.load(tmp_path / "out")
    want = session.run(x, 3)
    got = ENGINES[engine](tmp_path / "out", [x])[0]
    assert torch.equal(got.reshape(want.shape), want) and 0 < float(want.mean()) < 1


@pytest.mark.parametrize("engine", ["onnx", "torch"])
def test_a_hoisted_constant_prefix_runs_once_per_sample(compiled, tmp_path, engine):
    g = hoist_constant_input(compiled.graph("digits", "lynxi"))  # conv on [N, *], then repeated over T
    x = compiled.x[:16]
    ref = Session(g).run(x, 4)
    art = snnc.compile(g, "lynxi", tmp_path / "hoisted", time_steps=4, batch_size=16)
    assert art.manifest["interface"]["inputs"][0] == {"name": "x", "shape": [16, 1, 8, 8], "dtype": "float32",
                                                      "value": "x", "layout": "NX"}
    dims = onnx_value_types(onnx.load(str(art.path / "model.onnx"))).values()
    assert [16, 16, 8, 8] in dims and [64, 16, 8, 8] in dims  # the first conv once, its result repeated
    names = [s["name"] for s in art.manifest["interface"]["outputs"]]
    out = dict(zip(names, ENGINES[engine](art.path, [x])))
    for k in (k for k in ref if k.startswith("spk_")):
        assert torch.equal(out[k].reshape(ref[k].shape), ref[k]), k
