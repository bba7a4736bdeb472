"""What the Lynxi style cannot express fails at compile time, naming each node and the reason."""

from __future__ import annotations

import importlib
import json

import pydantic
import pytest
import torch

import snnc
from snnc.backends import lynxi
from snnc.core.errors import LoweringError
from snnc.ir import (IF, AdaptiveAvgPool2d, CubaLIF, Flatten, Graph, HardReset, Input, Layout, Output, Scale,
                     SourceLoc, TensorType)


def _graph(shape, *ops, layout=Layout.TNX) -> Graph:
    g = Graph("g")
    g.add(Input(name="x", type=TensorType(shape=shape, layout=layout)))
    for op in ops:
        g.add(op)
    return g


def _if_graph(shape=("T", "N", 4)) -> Graph:
    return _graph(shape, IF(name="n", inputs=("x",)), Output(name="out", inputs=("n",)))


def test_a_5d_intermediate_is_reported_for_every_node_that_has_one(tmp_path):
    g = _graph(("T", "N", 2, 3, 4, 4),
               Scale(name="s", inputs=("x",), factor=0.5, loc=SourceLoc(module_path="enc", module_type="Scale")),
               IF(name="n", inputs=("s",)),
               Flatten(name="f", inputs=("n",)),  # [T*N, 96]: fine again
               Output(name="out", inputs=("f",)))
    with pytest.raises(LoweringError) as e:
        snnc.compile(g, "lynxi", tmp_path / "a", time_steps=4, batch_size=2, passes="")
    msg = str(e.value)
    for node in ("%x (input)", "%s (scale) from 'enc'", "%n (if)"):
        assert node in msg
    assert "5-D tensor [T*N, 2, 3, 4, 4]" in msg and "at most 4-D" in msg and "%f " not in msg
    assert not (tmp_path / "a").exists()


def test_unsupported_op_and_bad_attribute_are_reported_together():
    g = _graph(("T", "N", 3, 5, 5),
               CubaLIF(name="cuba", inputs=("x",), reset=HardReset(v_reset=0.0)),
               AdaptiveAvgPool2d(name="pool", inputs=("cuba",), output_size=(2, 2)),
               Output(name="out", inputs=("pool",)))
    with pytest.raises(LoweringError) as e:
        lynxi.legalize(g)
    msg = str(e.value)
    assert "%cuba (cuba_lif)" in msg and "no lowering for 'cuba_lif'" in msg and "supported: " in msg
    assert "%pool (adaptive_avg_pool2d)" in msg and "5x5 to 2x2" in msg


def test_dynamic_T_and_missing_batch_are_compile_time_errors(tmp_path):
    with pytest.raises(LoweringError) as e:
        snnc.compile(_if_graph(), "lynxi", tmp_path / "b")
    msg = str(e.value)
    assert "time steps T is dynamic (%x: 'T')" in msg and "time_steps=<int>" in msg
    assert "batch size N is dynamic (%x: 'N')" in msg and "batch_size=<int>" in msg
    with pytest.raises(LoweringError, match="time steps T is dynamic") as e:
        snnc.compile(_if_graph(), "lynxi", tmp_path / "b", batch_size=2)
    assert "batch size" not in str(e.value)
    with pytest.raises(LoweringError, match=r"input %x has time steps T 4 but time_steps=8"):
        snnc.compile(_if_graph((4, "N", 4)), "lynxi", tmp_path / "b", time_steps=8, batch_size=2)
    assert not (tmp_path / "b").exists()


def test_static_dims_of_the_graph_fix_the_shapes(tmp_path):
    g = _if_graph((4, 3, 6))
    before = str(g)
    art = snnc.compile(g, "lynxi", tmp_path / "c")
    assert str(g) == before  # the backend lowers a copy
    assert (art.manifest["time_steps"], art.manifest["batch_size"]) == (4, 3)
    assert art.manifest["interface"]["outputs"][0]["shape"] == [12, 6]


def test_a_failed_export_leaves_the_previous_artifact_untouched(tmp_path, monkeypatch):
    out = tmp_path / "d"
    snnc.compile(_if_graph(), "lynxi", out, time_steps=2, batch_size=1)
    before = (out / "manifest.json").read_text()

    def broken(*args, **kwargs):
        raise LoweringError("ONNX export of the lowered network failed: simulated")

    # the module, not the function `lower` the package re-exports under the same name
    monkeypatch.setattr(importlib.import_module("snnc.backends.lynxi.lower"), "export_onnx", broken)
    with pytest.raises(LoweringError, match="simulated"):
        snnc.compile(_if_graph(), "lynxi", out, time_steps=3, batch_size=1)
    assert (out / "manifest.json").read_text() == before and json.loads(before)["time_steps"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no temporary folder left behind


def test_options_are_validated():
    assert lynxi.Options(dtype="float16").dtype.value == "f16"
    assert lynxi.Options(dtype=torch.float16).torch_dtype == torch.float16
    with pytest.raises(pydantic.ValidationError, match="float32 or float16"):
        lynxi.Options(dtype="i8")
    with pytest.raises(pydantic.ValidationError):
        lynxi.Options(time_steps=0)
    with pytest.raises(pydantic.ValidationError):
        lynxi.Options(batch=4)  # a typo is not silently ignored
