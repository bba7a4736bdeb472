"""A multi-step SNN written with snnc.nn (the seed's Fashion-MNIST CSNN shape, 4 channels) lowers and
checks like the converted networks: a spike-sequence input, BatchNorm kept, hard-reset IF neurons."""

from __future__ import annotations

import onnx
import pytest
import torch
import torch.nn as nn

import snnc
from snnc.backends.lynxi import Runner
from snnc.nn import functional, layer, neuron, surrogate
from snnc.runtime import Session
from tests.backends.lynxi.conftest import ENGINES, assert_exact, onnx_value_types, with_spike_outputs
from tests.nets import set_bn, set_layer

T, N = 4, 8


class CSNN(nn.Module):
    """conv-bn-IF-maxpool x2, flatten, linear-IF, linear-IF; [T, N, 1, 28, 28] -> spikes [T, N, 10]."""

    def __init__(self, c: int = 4):
        super().__init__()
        self.conv_fc = nn.Sequential(
            layer.Conv2d(1, c, 3, padding=1, bias=False), layer.BatchNorm2d(c),
            neuron.IFNode(surrogate_function=surrogate.ATan()), layer.MaxPool2d(2, 2),
            layer.Conv2d(c, c, 3, padding=1, bias=False), layer.BatchNorm2d(c),
            neuron.IFNode(surrogate_function=surrogate.ATan()), layer.MaxPool2d(2, 2),
            layer.Flatten(), layer.Linear(c * 7 * 7, c * 4 * 4, bias=False),
            neuron.IFNode(surrogate_function=surrogate.ATan()),
            layer.Linear(c * 4 * 4, 10, bias=False), neuron.IFNode(surrogate_function=surrogate.ATan()),
        )
        functional.set_step_mode(self, step_mode="m")

    def forward(self, x_seq):
        return self.conv_fc(x_seq)


@pytest.fixture(scope="module")
def csnn():
    # random dyadic weights and exact BatchNorms (tests/nets.py): with spike inputs every value is exact in
    # float32 and in the float16 core, so the engines must give the reference's bits (checked below)
    gen = torch.Generator().manual_seed(0)
    model = CSNN().eval()
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            set_layer(m, gen, (-2, 2, 1), (0, 0, 0))
        elif isinstance(m, nn.Linear):
            set_layer(m, gen, (-2, 2, 2), (0, 0, 0))
        elif isinstance(m, nn.BatchNorm2d):
            set_bn(m, gen)
    graph = snnc.trace(model, (1, 28, 28))  # the snnc.nn frontend: neurons become IF ops
    x_seq = (torch.rand(T, N, 1, 28, 28, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    for dtype in ("f32", "f16"):
        assert_exact(graph, dtype, time_steps=T, x_unit=1.0)
    return model, with_spike_outputs(graph), x_seq


@pytest.fixture(scope="module")
def csnn_artifacts(csnn, tmp_path_factory):
    _, graph, _ = csnn
    root = tmp_path_factory.mktemp("csnn")
    opts = dict(batch_size=N, input_kind="sequence", passes="")  # the BatchNorms as traced (not fused)
    return {dt: snnc.compile(graph, "lynxi", root / dt, time_steps=T, dtype=dt, **opts) for dt in ("f32", "f16")}


def test_traced_graph_matches_the_module(csnn):
    model, graph, x_seq = csnn
    assert sum(op.kind == "if" for op in graph) == 4 and any(op.kind == "batch_norm" for op in graph)
    functional.reset_net(model)
    with torch.no_grad():
        want = model(x_seq)
    assert torch.equal(Session(graph).run(x_seq)["out"], want)


@pytest.mark.parametrize("engine", ["onnx", "torch"])
def test_float32_spikes_equal_the_reference(csnn, csnn_artifacts, engine):
    _, graph, x_seq = csnn
    ref = Session(graph).run(x_seq)
    art = csnn_artifacts["f32"]
    assert art.manifest["interface"]["inputs"][0]["shape"] == [T * N, 1, 28, 28]
    names = [s["name"] for s in art.manifest["interface"]["outputs"]]
    out = dict(zip(names, ENGINES[engine](art.path, [x_seq.flatten(0, 1)])))
    for k, want in ref.items():
        assert 0.01 < float(want.mean()) < 0.99, f"{k} barely fires"
        got = out[k].reshape(want.shape)
        assert torch.equal(got, want), f"{k}: {int((got != want).sum())} spikes differ"


@pytest.mark.parametrize("engine", ["onnx", "torch"])
def test_float16_core_equals_the_reference(csnn, csnn_artifacts, engine):
    """The float16 core computes exactly here (the fixture checks every value fits), so every spike and the
    argmax of every sample must be the reference's; test_equivalence shows float16 really rounds."""
    _, graph, x_seq = csnn
    ref = Session(graph).run(x_seq)
    art = csnn_artifacts["f16"]
    names = [s["name"] for s in art.manifest["interface"]["outputs"]]
    assert art.manifest["interface"]["inputs"][0]["dtype"] == "float32"  # the input feeds the analog head
    out = dict(zip(names, ENGINES[engine](art.path, [x_seq.flatten(0, 1)])))
    for k, want in ref.items():
        got = out[k].reshape(want.shape)
        assert got.dtype == torch.float16  # spikes out of the float16 core, the last neuron's too
        assert torch.equal(got.float(), want), f"{k}: {int((got != want).sum())} spikes differ"


def test_onnx_is_static_and_at_most_4d(csnn_artifacts):
    model = onnx.load(str(csnn_artifacts["f16"].path / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    dims = onnx_value_types(model)
    assert all(d is not None and len(d) <= 4 and all(isinstance(x, int) and x > 0 for x in d) for d in dims.values())
    assert sum(n.op_type == "BatchNormalization" for n in model.graph.node) == 2  # not folded into the convs


@pytest.mark.parametrize("engine", ["onnx", "torch"])
def test_a_sequence_streams_in_chunks_with_hard_reset_state(csnn, tmp_path, engine):
    _, graph, x_seq = csnn
    ref = Session(graph).run(x_seq)
    art = snnc.compile(graph, "lynxi", tmp_path / "chunks", time_steps=T // 2, batch_size=N,
                       input_kind="sequence", state_io=True)
    r = Runner(art, engine)
    first = r.run(x_seq[:T // 2].flatten(0, 1))
    second = r.run(x_seq[T // 2:].flatten(0, 1))
    for k, want in ref.items():
        got = torch.cat([first[k], second[k]]).reshape(want.shape)
        assert torch.equal(got, want), k
