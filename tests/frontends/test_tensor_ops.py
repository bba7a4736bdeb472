"""Tensor and layout ops (issues 18, 19): each through torch.fx, .pt2 and ONNX against torch itself.

Every case is a small module whose forward uses the op as people write it;
the IR it becomes must compute what torch computes, on each path, and the op
must be in the graph (so dropping it would fail). Models with two ops of the
same family check that the ops compose (channel shuffle: a 5-D view,
transpose, flatten back).
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from snnc.core.errors import FrontendError
from snnc.frontends import load, trace
from snnc.frontends.torch_export import from_exported_program
from snnc.ir.graph import Graph
from snnc.runtime import Session

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning",
                                        "ignore::torch.jit.TracerWarning")


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: view to 5-D, transpose, flatten back (torchvision's code)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        x = self.conv(x)
        batch, channels, h, w = x.size()
        groups = 2
        x = x.view(batch, groups, channels // groups, h, w)
        x = torch.transpose(x, 1, 2).contiguous()
        return x.view(batch, -1, h, w)


class AttentionLike(nn.Module):
    """x @ x^T / 4, softmax, permute, matmul of two computed values."""

    def forward(self, x):  # [N, 4, 6]
        a = torch.softmax(x @ x.transpose(1, 2) / 4.0, dim=-1)
        return torch.matmul(a, x).permute(0, 2, 1)


class MeanDims(nn.Module):
    def forward(self, x):  # [N, 3, 5, 6]
        return x.mean([2, 3]) - x.mean(-1, keepdim=True).mean((2, 3))


class Arithmetic(nn.Module):
    """SEW-ResNet's AND (a * b) and IAND (a * (1 - b)), OTTT's Scale (x * c), x / c + c, a - b."""

    def forward(self, x):  # [N, 2, 8]
        a, b = torch.relu(x), torch.relu(-x)
        return a * b + a * (1.0 - b) + (x * 0.5) / 4.0 + 0.25 - (a - b) + 2.0 * x


class SqueezeUnsqueeze(nn.Module):
    def forward(self, x):  # [N, 6]
        y = x.unsqueeze(1).unsqueeze(-1)  # [N, 1, 6, 1]
        return y.squeeze(-1).reshape(x.size(0), 2, 3).flatten(1)


class Clamps(nn.Module):
    def __init__(self):
        super().__init__()
        self.act = nn.ReLU6()
        self.tanh = nn.Hardtanh(-0.5, 0.5)

    def forward(self, x):
        return self.act(4 * x) + self.tanh(x) + torch.clamp(x, 0.0, 0.3) + F.hardtanh(x, 0.0, 0.2)


class Seq1d(nn.Module):
    """Conv1d -> BatchNorm1d -> AvgPool1d, the 1-D layers of sdt / spikformer-style models."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 3, padding=1)
        self.bn = nn.BatchNorm1d(6).eval()
        self.pool = nn.AvgPool1d(2)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)
            self.bn.weight.uniform_(0.5, 1.5)

    def forward(self, x):  # [N, 4, 10]
        return self.pool(self.bn(self.conv(x)))


class Norm(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln = nn.LayerNorm(6)
        with torch.no_grad():
            self.ln.weight.uniform_(0.5, 1.5)
            self.ln.bias.uniform_(-0.5, 0.5)

    def forward(self, x):  # [N, 4, 6]
        return self.ln(x)


class Adaptive(nn.Module):
    def forward(self, x):  # [N, 3, 7, 5]: windows that overlap and differ in size
        return F.adaptive_avg_pool2d(x, (3, 2))


class Parts(nn.Module):
    """chunk (uneven: 3 + 3 + 1), split by sizes and by a size, each part used (ShuffleNetV2's channel split)."""

    def forward(self, x):  # [N, 7, 4]
        a, b, c = x.chunk(3, dim=1)
        d, e = torch.split(x, [2, 5], dim=1)
        f, g = x.split(2, dim=-1)
        y = torch.cat([a * 2.0 - b, c, d.mean(1, keepdim=True)], 1) - e  # [N, 5, 4]
        return torch.cat([y.flatten(1), (f - g).flatten(1)], 1)


# name -> (model, per-sample shape, IR kinds the fx graph must contain)
CASES = {
    "channel_shuffle": (ChannelShuffle, (3, 6, 6), {"reshape", "permute", "flatten"}),
    "attention": (AttentionLike, (4, 6), {"matmul", "permute", "softmax", "scale"}),
    "mean": (MeanDims, (3, 5, 6), {"mean", "sub"}),
    "arithmetic": (Arithmetic, (2, 8), {"mul", "sub", "add_scalar", "scale"}),
    "squeeze_unsqueeze": (SqueezeUnsqueeze, (6,), {"reshape"}),
    "clamp": (Clamps, (3, 4), {"clamp"}),
    "conv1d_bn1d_pool1d": (Seq1d, (4, 10), {"conv1d", "batch_norm", "avg_pool1d"}),
    "layer_norm": (Norm, (4, 6), {"layer_norm"}),
    "adaptive_pool": (Adaptive, (3, 7, 5), {"adaptive_avg_pool2d"}),
    "chunk_split": (Parts, (7, 4), {"slice", "concat"}),
}


def _model(name: str) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    cls, shape, _ = CASES[name]
    return cls().eval(), torch.randn(3, *shape)


def _run(g: Graph, x: torch.Tensor) -> torch.Tensor:
    return Session(g).run(x)


@pytest.mark.parametrize("name", list(CASES))
def test_fx_matches_torch_and_keeps_the_op(name):
    model, x = _model(name)
    g = trace(model, tuple(x.shape[1:]))
    kinds = {op.kind for op in g}
    assert CASES[name][2] <= kinds, f"missing {CASES[name][2] - kinds} in {sorted(kinds)}"
    torch.testing.assert_close(_run(g, x), model(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("decompose", [False, True], ids=["pre-dispatch", "core-aten"])
@pytest.mark.parametrize("name", list(CASES))
def test_pt2_matches_torch(name, decompose):
    model, x = _model(name)
    ep = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    g = from_exported_program(ep.run_decompositions() if decompose else ep)
    torch.testing.assert_close(_run(g, x), model(x), atol=1e-5, rtol=1e-5)


# LayerNormalization needs opset 17 (older opsets spell it out with Pow and Sqrt, refused by name); torch's
# TorchScript exporter refuses adaptive pooling to sizes that do not divide the input
TORCHSCRIPT = [(n, 17 if n == "layer_norm" else 13) for n in CASES if n != "adaptive_pool"]


@pytest.mark.parametrize("name,opset", TORCHSCRIPT)
def test_torchscript_onnx_matches_torch(name, opset, tmp_path):
    model, x = _model(name)
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=opset, input_names=["x"],
                      dynamic_axes={"x": {0: "N"}})
    torch.testing.assert_close(_run(load(path), x), model(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dynamo,opset", [(False, 11), (False, 13), (True, 18), (True, 21)])
def test_chunk_and_split_read_from_onnx_on_every_opset(dynamo, opset, tmp_path):
    """Parts: the TorchScript exporter writes Split (sizes as attribute before opset 13, as input after) and
    Slice with bounds from shape arithmetic; the dynamo exporter Split (num_outputs from opset 18)."""
    if dynamo and importlib.util.find_spec("onnxscript") is None:
        pytest.skip("torch's dynamo ONNX exporter needs onnxscript")
    model, x = _model("chunk_split")
    extra = {} if dynamo else {"dynamic_axes": {"x": {0: "N"}}}
    torch.onnx.export(model, (x,), str(tmp_path / "p.onnx"), dynamo=dynamo, opset_version=opset, input_names=["x"],
                      **extra)
    g = load(tmp_path / "p.onnx")
    assert "slice" in {op.kind for op in g}
    torch.testing.assert_close(_run(g, x), model(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("opset,form", [(11, "attribute"), (13, "input"), (18, "num_outputs")])
def test_onnx_split_forms(opset, form, tmp_path):
    """Split of axis 1 (7 channels): sizes [2, 5] as attribute or input, or num_outputs=3 (3 + 3 + 1: the last
    part smaller), each output an output of the graph, against numpy."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    k = 3 if form == "num_outputs" else 2
    outs = [f"y{i}" for i in range(k)]
    nodes, inits = [], []
    if form == "attribute":
        nodes.append(helper.make_node("Split", ["x"], outs, axis=1, split=[2, 5]))
    elif form == "input":
        inits.append(helper.make_tensor("sizes", TensorProto.INT64, [2], [2, 5]))
        nodes.append(helper.make_node("Split", ["x", "sizes"], outs, axis=1))
    else:
        nodes.append(helper.make_node("Split", ["x"], outs, axis=1, num_outputs=3))
    sizes = [3, 3, 1] if form == "num_outputs" else [2, 5]
    graph = helper.make_graph(nodes, "split", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 7, 4])],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["N", s, 4])
                               for o, s in zip(outs, sizes)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), tmp_path / "s.onnx")
    x = torch.randn(3, 7, 4)
    got = Session(load(tmp_path / "s.onnx")).run(x)
    want = np.split(x.numpy(), np.cumsum(sizes)[:-1], axis=1)
    assert len(got) == k
    for y, w in zip(got.values(), want):
        assert torch.equal(y, torch.from_numpy(w))


class Upsampling(nn.Module):
    def __init__(self, size):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(size)

    def forward(self, x):
        return self.pool(torch.relu(x)).flatten(1)


@pytest.mark.parametrize("hw,size", [((1, 1), (7, 7)), ((2, 3), (4, 6)), ((7, 5), (3, 2))])
def test_dynamo_onnx_adaptive_pool_that_does_not_divide_reads_as_the_pool(hw, size, tmp_path):
    """VGG's AdaptiveAvgPool2d((7, 7)) of a 1x1 map: the dynamo exporter writes Transpose (moving the batch
    axis) -> GatherND -> Transpose -> ReduceMean; snnc reads it back as the pool, or refuses it naming the nodes."""
    if importlib.util.find_spec("onnxscript") is None:
        pytest.skip("torch's dynamo ONNX exporter needs onnxscript")
    model, x = Upsampling(size).eval(), torch.randn(3, 2, *hw)
    torch.onnx.export(model, (x,), str(tmp_path / "u.onnx"), dynamo=True, input_names=["x"],
                      dynamic_shapes=({0: torch.export.Dim("N")},))
    g = load(tmp_path / "u.onnx")
    assert "adaptive_avg_pool2d" in {op.kind for op in g}
    torch.testing.assert_close(_run(g, x), model(x), atol=1e-6, rtol=1e-6)


def test_a_gather_through_a_moved_batch_axis_that_is_no_pool_is_refused(tmp_path):
    """Transpose (batch moved) -> GatherND picking two elements -> Transpose back -> ReduceMean: a mean of
    elements that is no adaptive pooling window; refused naming the ReduceMean and the Transpose."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[2, 3, 0, 1], name="moveN"),
             helper.make_node("GatherND", ["t", "idx"], ["g"]),
             helper.make_node("Transpose", ["g"], ["b"], perm=[2, 3, 0, 1]),
             helper.make_node("ReduceMean", ["b"], ["y"], axes=[3], keepdims=0, name="avg")]
    idx = numpy_helper.from_array(np.array([[[0, 1]], [[1, 0]]], dtype=np.int64), "idx")
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [idx])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "g.onnx")
    with pytest.raises(FrontendError, match=r"'avg' \(ReduceMean\).*'moveN' \(Transpose\).*no adaptive average"):
        load(tmp_path / "g.onnx")


class Zoo(nn.Module):
    """Most of the ops in one model, for the exporters that are slow to run per op."""

    def __init__(self):
        super().__init__()
        self.shuffle = ChannelShuffle()
        self.conv1d = nn.Conv1d(8, 8, 3, padding=1)
        self.ln = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = torch.clamp(self.shuffle(x), 0.0, 6.0) * 0.5 - 0.1  # [N, 8, 6, 6]
        seq = x.flatten(2)  # [N, 8, 36]
        att = torch.softmax(seq @ seq.transpose(1, 2) / 4.0, dim=-1)  # [N, 8, 8]
        y = self.ln(x.permute(0, 2, 3, 1)).mean((1, 2))  # [N, 8]
        z = F.avg_pool1d(self.conv1d(seq), 4).mean(-1)  # [N, 8]
        return self.fc(y * (1 - z) + att.mean(-1))


@pytest.mark.parametrize("path", ["fx", "pt2", "onnx-torchscript-17", "onnx-torchscript-21", "onnx-dynamo-18",
                                  "onnx-dynamo-21"])
def test_one_model_gives_the_same_outputs_on_every_path(path, tmp_path):
    torch.manual_seed(0)
    model, x = Zoo().eval(), torch.randn(2, 3, 6, 6)
    if path == "fx":
        g = trace(model, (3, 6, 6))
    elif path == "pt2":
        ep = torch.export.export(model, (x,))
        torch.export.save(ep, tmp_path / "zoo.pt2")
        g = load(tmp_path / "zoo.pt2")
    else:
        _, kind, opset = path.split("-")
        dynamo = kind == "dynamo"
        if dynamo and importlib.util.find_spec("onnxscript") is None:
            pytest.skip("torch's dynamo ONNX exporter needs onnxscript")
        extra = {} if dynamo else {"dynamic_axes": {"x": {0: "N"}}}
        torch.onnx.export(model, (x,), str(tmp_path / "zoo.onnx"), dynamo=dynamo, opset_version=int(opset),
                          input_names=["x"], **extra)
        g = load(tmp_path / "zoo.onnx")
    torch.testing.assert_close(_run(g, x), model(x), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- refusals name the node and its source
class TimeTranspose(nn.Module):
    def forward(self, x):
        return x.transpose(0, 2)


class AllMean(nn.Module):
    def forward(self, x):
        return x.mean()


class BatchFold(nn.Module):
    def forward(self, x):
        return x.reshape(-1, 4)


class Squeezed(nn.Module):
    def forward(self, x):
        return x.squeeze()


class BatchChunk(nn.Module):
    def forward(self, x):
        a, b = x.chunk(2)
        return a + b


@pytest.mark.parametrize("model,match", [
    (TimeTranspose(), "touches the batch dim|moves the batch/time dims"),
    (BatchChunk(), "chunk over dim 0 .*touches the batch dim"),
    (AllMean(), "mean without dims"),
    (BatchFold(), "moves or merges the batch/time dims"),
    (Squeezed(), "squeeze\\(\\) without a dim"),
])
def test_moving_the_batch_dim_is_refused_by_name(model, match):
    with pytest.raises(FrontendError, match=match) as e:
        trace(model, (2, 4))
    assert type(model).__name__ in str(e.value)


def test_onnx_transpose_of_the_batch_axis_is_refused_naming_the_node(tmp_path):
    class M(nn.Module):
        def forward(self, x):
            return x.permute(1, 0, 2) + 0.0

    torch.onnx.export(M(), (torch.randn(2, 3, 4),), str(tmp_path / "t.onnx"), dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "N"}})
    with pytest.raises(FrontendError, match=r"\(Transpose\).*moves the batch axis"):
        load(tmp_path / "t.onnx")


def test_every_new_op_round_trips_through_snnir(tmp_path):
    from snnc.ir import load as load_snnir, save

    torch.manual_seed(0)
    model, x = Zoo().eval(), torch.randn(2, 3, 6, 6)
    g = trace(model, (3, 6, 6))
    assert {"reshape", "permute", "clamp", "softmax", "layer_norm", "conv1d", "avg_pool1d", "mean", "mul",
            "matmul", "add_scalar"} <= {op.kind for op in g}
    save(g, tmp_path / "zoo.snnir")
    back = load_snnir(tmp_path / "zoo.snnir")
    assert list(back) == list(g)
    assert torch.equal(_run(back, x), _run(g, x))


def test_slice_round_trips_through_snnir(tmp_path):
    from snnc.ir import load as load_snnir, save

    model, x = _model("chunk_split")
    g = trace(model, (7, 4))
    slices = [op for op in g if op.kind == "slice"]
    assert {(op.dim, op.start, op.end) for op in slices} >= {(0, 0, 3), (0, 3, 6), (0, 6, 7), (1, 0, 2), (1, 2, 4)}
    save(g, tmp_path / "p.snnir")
    back = load_snnir(tmp_path / "p.snnir")
    assert list(back) == list(g)
    assert torch.equal(_run(back, x), model(x))
