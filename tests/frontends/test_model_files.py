"""One ResNet-style ANN through torch.fx, a torch.export .pt2 and a torch.onnx .onnx file: the same IR."""

from __future__ import annotations

import pytest
import torch

import snnc
from snnc.frontends import load, trace
from snnc.frontends.torch_export import from_exported_program
from snnc.passes import fuse_bn
from snnc.runtime import Session
from tests.conftest import randomize_bn
from tests.frontends.models import ResNetish, TwoHeads, canonical, same_params

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning",
                                        "ignore::torch.jit.TracerWarning")


def _onnx_export(model, args, path, names, **kw):
    torch.onnx.export(model, args, str(path), dynamo=False, input_names=names,
                      dynamic_axes={n: {0: "N"} for n in names}, **kw)


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    """The model and its three forms: fx graph, .pt2 (symbolic batch) and .onnx (BatchNorm kept)."""
    torch.manual_seed(0)
    model = randomize_bn(ResNetish())
    x = torch.rand(4, 1, 8, 8)
    d = tmp_path_factory.mktemp("resnet")
    ep = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(ep, d / "resnet.pt2")
    _onnx_export(model, (x,), d / "resnet.onnx", ["x"], training=torch.onnx.TrainingMode.PRESERVE)
    _onnx_export(model, (x,), d / "resnet_folded.onnx", ["x"])  # the exporter's default folds BN into Conv
    return model, ep, d


def test_fx_pt2_and_onnx_give_the_same_ir_and_outputs(resnet):
    model, _, d = resnet
    g_fx = trace(model, (1, 8, 8))
    g_pt2 = load(d / "resnet.pt2")
    g_onnx = load(d / "resnet.onnx")
    assert canonical(g_pt2) == canonical(g_fx) and canonical(g_onnx) == canonical(g_fx)
    assert same_params(g_fx, g_pt2) and same_params(g_fx, g_onnx)
    kinds = [op.kind for op in g_fx]
    assert {"add", "concat", "batch_norm", "avg_pool2d", "linear"} <= set(kinds)
    x = torch.rand(7, 1, 8, 8)  # a batch size none of them was exported with: the batch dim is symbolic
    ref = model(x)
    for g in (g_fx, g_pt2, g_onnx):
        assert g.inputs[0].type.shape == ("N", 1, 8, 8)
        # the runtime's eager-exact mode computes what torch computes, bit for bit
        torch.testing.assert_close(Session(g, channels_last=False, event_conv=False).run(x), ref, rtol=0, atol=0)


def test_identical_snn_outputs_after_conversion(resnet):
    model, _, d = resnet
    calib = torch.rand(64, 1, 8, 8)
    x = torch.rand(5, 1, 8, 8)
    outs = []
    for source in (trace(model, (1, 8, 8)), load(d / "resnet.pt2"), load(d / "resnet.onnx")):
        snn = snnc.convert(source, calib, "99%")
        assert any(op.kind == "if" for op in snn)
        outs.append(Session(snn).run(x, T=12))
    assert outs[0].abs().sum() > 0
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])


def test_core_aten_program_reads_as_the_same_ir(resnet):
    """After run_decompositions: convolution, _native_batch_norm_legit_no_training, mean, view, addmm."""
    model, ep, _ = resnet
    g = from_exported_program(ep.run_decompositions())
    assert canonical(g) == canonical(trace(model, (1, 8, 8))) and same_params(g, trace(model, (1, 8, 8)))
    x = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(Session(g).run(x), model(x), rtol=1e-6, atol=1e-6)


def test_onnx_with_folded_batchnorm_matches_after_fuse_bn(resnet):
    model, _, d = resnet
    g = load(d / "resnet_folded.onnx")
    assert "batch_norm" not in [op.kind for op in g]
    assert canonical(g) == canonical(fuse_bn(trace(model, (1, 8, 8))))
    x = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(Session(g).run(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fmt", ["pt2", "onnx"])
def test_two_inputs_two_outputs_and_a_shared_module(fmt, tmp_path):
    model = TwoHeads().eval()
    args = (torch.rand(2, 4), torch.rand(2, 6))
    path = tmp_path / f"two.{fmt}"
    if fmt == "pt2":
        torch.export.save(torch.export.export(model, args), path)
    else:
        _onnx_export(model, args, path, ["x", "y"])
    g = load(path)
    assert len(g.inputs) == 2 and len(g.outputs) == 2
    shared = [op for op in g if op.kind == "linear" and tuple(g.params[op.weight].shape) == (6, 6)]
    assert len(shared) == 2 and shared[0].weight == shared[1].weight  # each use its own node, one weight
    x, y = torch.rand(2, 4), torch.rand(2, 6)
    out = Session(g).run({g.inputs[0].name: x, g.inputs[1].name: y})
    ref = model(x, y)
    for name, r in zip([o.name for o in g.outputs], ref):
        torch.testing.assert_close(out[name], r, rtol=1e-6, atol=1e-6)


def test_onnx_view_with_runtime_batch_size_is_a_flatten(tmp_path):
    """x.view(x.size(0), -1) with a dynamic batch exports as Shape -> Gather -> Unsqueeze -> Concat -> Reshape."""

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = torch.nn.Conv2d(1, 2, 3), torch.nn.Linear(2 * 6 * 6, 3, bias=False)

        def forward(self, x):
            y = self.conv(x)
            return self.fc(y.view(y.size(0), -1))

    model = Net().eval()
    _onnx_export(model, (torch.rand(2, 1, 8, 8),), tmp_path / "v.onnx", ["x"])
    g = load(tmp_path / "v.onnx")
    assert [op.kind for op in g][1:] == ["conv2d", "flatten", "linear", "output"]
    x = torch.rand(5, 1, 8, 8)
    torch.testing.assert_close(Session(g).run(x), model(x), rtol=1e-6, atol=1e-6)
