"""Bad inputs give the specific error naming the file, node or module, never a crash or a hang."""

from __future__ import annotations

import shutil
import zipfile

import h5py
import nir
import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn

import snnc
from snnc.core.errors import (FrontendError, MalformedFileError, SnncError, UnsupportedOpError,
                         UntrustedPickleError)
from snnc.frontends import load, trace
from snnc.ir import save

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning",
                                         "ignore::FutureWarning")]


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 2, 3), nn.Linear(2 * 4 * 4, 3)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


class WithElu(Small):  # an activation no frontend reads (sigmoid was one before the hybrid mode, issue 19)
    def forward(self, x):
        return self.fc(torch.flatten(torch.nn.functional.elu(self.conv(x)), 1))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One good file of every kind."""
    d = tmp_path_factory.mktemp("files")
    model, x = Small().eval(), torch.rand(2, 1, 6, 6)
    torch.onnx.export(model, (x,), str(d / "m.onnx"), dynamo=False, input_names=["x"])
    torch.export.save(torch.export.export(model, (x,)), d / "m.pt2")
    g = trace(model, (1, 6, 6))
    save(g, d / "m.snnir")
    snn = nir.NIRGraph(nodes={"i": nir.Input(input_type={"input": np.array([3])}),
                              "fc": nir.Affine(weight=np.ones((2, 3), np.float32), bias=np.zeros(2, np.float32)),
                              "o": nir.Output(output_type={"output": np.array([2])})},
                       edges=[("i", "fc"), ("fc", "o")])
    nir.write(d / "m.nir", snn)
    return d


def truncated(src, dst, fraction=0.5):
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


@pytest.mark.parametrize("name", ["m.onnx", "m.pt2", "m.snnir", "m.nir"])
def test_good_files_load_and_truncated_ones_name_the_file(files, tmp_path, name):
    assert len(load(files / name)) > 2
    bad = truncated(files / name, tmp_path / name)
    with pytest.raises(MalformedFileError) as e:
        load(bad)
    assert str(bad) in str(e.value)


@pytest.mark.parametrize("suffix", [".onnx", ".pt2", ".nir", ".snnir"])
def test_wrong_magic_is_a_malformed_file(tmp_path, suffix):
    p = tmp_path / f"model{suffix}"
    p.write_bytes(b"GIF89a not a model at all" * 4)
    with pytest.raises(MalformedFileError, match="wrong magic"):
        load(p)


def test_unknown_content_lists_the_kinds_snnc_reads(tmp_path):
    p = tmp_path / "model.bin"
    p.write_bytes(b"\x00\x01garbage")
    with pytest.raises(FrontendError) as e:
        load(p)
    assert not isinstance(e.value, MalformedFileError)
    assert all(k in str(e.value) for k in ("ONNX", "NIR", "torch.export", ".snnir", "package.module:attribute"))


def test_content_decides_not_the_suffix(files, tmp_path):
    for name in ("m.onnx", "m.pt2", "m.nir", "m.snnir"):
        shutil.copy(files / name, tmp_path / f"{name}.bin")
        assert len(load(tmp_path / f"{name}.bin")) > 2


def test_missing_tensors_name_the_node(files, tmp_path):
    p = tmp_path / "noweight.nir"
    shutil.copy(files / "m.nir", p)
    with h5py.File(p, "r+") as f:
        del f["node/nodes/fc/weight"]
    with pytest.raises(MalformedFileError, match=r"node 'fc' \(Affine\) is missing its weight"):
        load(p)

    model = onnx.load(str(files / "m.onnx"))
    kept = [t for t in model.graph.initializer if t.name != "fc.weight"]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    onnx.save(model, str(tmp_path / "noweight.onnx"))
    with pytest.raises(MalformedFileError, match=r"node '/fc/Gemm' \(Gemm\).*reads tensor 'fc.weight'"):
        load(tmp_path / "noweight.onnx")

    with zipfile.ZipFile(files / "m.pt2") as src, zipfile.ZipFile(tmp_path / "noweight.pt2", "w") as dst:
        for item in src.infolist():
            if not item.filename.endswith("weight_0"):
                dst.writestr(item, src.read(item.filename))
    with pytest.raises(MalformedFileError, match="noweight.pt2"):
        load(tmp_path / "noweight.pt2")


def test_a_zero_conv_stride_is_one_line_naming_the_node(files, tmp_path):
    model = onnx.load(str(files / "m.onnx"))
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    strides = next(a for a in conv.attribute if a.name == "strides") if any(
        a.name == "strides" for a in conv.attribute) else conv.attribute.add()
    strides.name, strides.type = "strides", onnx.AttributeProto.INTS
    del strides.ints[:]
    strides.ints.extend([0, 1])
    onnx.save(model, str(tmp_path / "stride0.onnx"))
    with pytest.raises(MalformedFileError, match=rf"node '{conv.name}' \(Conv\).*stride\.0: .*greater than or "
                                                 r"equal to 1 \(got 0\)") as e:
        load(tmp_path / "stride0.onnx")
    assert "\n" not in e.value.message


def test_pickled_model_is_never_unpickled(tmp_path):
    torch.save(Small(), tmp_path / "full.pt")
    with pytest.raises(UntrustedPickleError, match=r"full.pt holds a pickled .*Small"):
        load(tmp_path / "full.pt")
    torch.save(Small().state_dict(), tmp_path / "weights.pt")
    with pytest.raises(FrontendError, match="only weights"):
        load(tmp_path / "weights.pt")
    with pytest.raises(UntrustedPickleError):  # also as --weights for a Python spec
        load("tests.frontends.test_errors:Small", input_shape=(1, 6, 6), weights=tmp_path / "full.pt")
    g = load("tests.frontends.test_errors:Small", input_shape=(1, 6, 6), weights=tmp_path / "weights.pt")
    assert len(g.params) == 4


def test_unsupported_ops_name_node_and_alternatives(tmp_path):
    model, x = WithElu().eval(), torch.rand(2, 1, 6, 6)
    torch.export.save(torch.export.export(model, (x,)), tmp_path / "elu.pt2")
    with pytest.raises(UnsupportedOpError, match=r"(?s)aten.elu.*supported ATen ops: .*aten.conv2d"):
        load(tmp_path / "elu.pt2")
    torch.onnx.export(model, (x,), str(tmp_path / "elu.onnx"), dynamo=False, input_names=["x"])
    with pytest.raises(UnsupportedOpError, match=r"(?s)node '/Elu' \(Elu\).*supported operators: .*Conv"):
        load(tmp_path / "elu.onnx")
    with pytest.raises(UnsupportedOpError, match="elu"):
        trace(model, (1, 6, 6))


def test_cli_reports_errors_without_a_traceback(tmp_path):
    from typer.testing import CliRunner

    from snnc.cli import app

    p = tmp_path / "model.onnx"
    p.write_bytes(b"\x08\x07broken")
    res = CliRunner().invoke(app, ["inspect", str(p)])
    assert res.exit_code != 0 and isinstance(res.exception, SnncError)
    assert isinstance(res.exception, MalformedFileError) and str(p) in str(res.exception)


def test_snnc_load_of_a_nir_artifact_runs(tmp_path):
    from snnc.nn import neuron

    g = trace(nn.Sequential(nn.Linear(3, 3), neuron.IFNode(step_mode="m")), (3,))
    art = snnc.compile(g, target="nir", output=tmp_path / "a")
    assert load(art.path).name == g.name  # an artifact folder reads as its graph


def test_load_accepts_in_memory_models(files):
    import onnx as onnx_lib

    assert len(load(onnx_lib.load(str(files / "m.onnx")))) > 2
    assert len(load(torch.export.load(files / "m.pt2"))) > 2
    assert len(load(nir.read(files / "m.nir"), dt=1e-3)) == 3
    assert len(load(Small(), input_shape=(1, 6, 6))) > 2
    with pytest.raises(FrontendError, match="input shape"):
        load(Small())
    with pytest.raises(FrontendError, match="cannot read a model from a int"):
        load(3)
