"""The standard architectures (tests/zoo/ann.py) through snnc's three input paths (issue 19).

For each architecture: `snnc.convert` from the module, a `.pt2` written by
`torch.export`, and an `.onnx` written by torch's default (dynamo) exporter. Each
path either converts and runs on `--target cpu` (then every converting path gives
the same SNN outputs, and the graph read before conversion computes the ANN's
logits), or is refused with one `error:` line that names the op and where it is.
EXPECTED below says which, per path; when a branch that adds an op lands, flip its
entries to OK (the test then fails until the path really works, and fails while an
OK entry still refuses).

Tests run tiny variants (TEST_WIDTH, TEST_BLOCKS: a few channels, at most two or
three blocks per stage, so every kind of block and op stays) at T = 8; the real
widths and depths, and the fidelity at T up to 256, are benchmarks/conversion_zoo.py's.
"""

from __future__ import annotations

import importlib.util
import warnings

import pytest
import torch

import snnc
from snnc.core.errors import SnncError
from snnc.frontends import load
from snnc.runtime import Session
from tests.zoo.ann import ARCHITECTURES, INPUT_SHAPE, build, calibrate_bn, images

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning")

OK = "ok"
PATHS = ("convert", "pt2", "onnx")
# architecture -> path -> OK, or (op the refusal names, where: a module path; None for ONNX, whose node
# names the exporter chooses). After the merge of the tensor/layout ops and bounded activations, mobilenet_v2
# converts and channel shuffle, permute and mean trace; chunk/split/ONNX Split (the Slice op) make shufflenet
# convert; the next refusals are expand of a parameter (vit's class token), F.layer_norm / GELU (convnext).
# The "onnx" column runs with onnxscript (a dev dependency): ReduceMean, Transpose, Clip, Split now read; the
# next refusals are Gelu, Expand, Sigmoid.
# Who was adding each op:
#   ReduceMean, Transpose, Reshape (ONNX), floordiv/view (channel shuffle), permute: helper C (layout ops, dynamo ONNX)
#   ReLU6 / hardtanh / Clip: helper D (bounded activations); MaxPool fidelity: helper D
#   SiLU, Sigmoid, Hardswish, GELU, LayerNorm, attention: helper F (hybrid `analog=` mode); without it they stay refused
# The hybrid mode (analog=) reads SiLU, Sigmoid, Hardswish, Hardsigmoid and GELU on every path; without analog=
# conversion refuses them (the where of an ONNX row is the graph's name, the file's stem: the dynamo exporter's
# node names carry no module path). HYBRID below converts them. convnext_tiny reads on every path with
# F.layer_norm (fx), its layer scale as a per-channel Scale and permutes; vit_b_16 with its class token (a
# Constant concatenated in front), the position embedding (AddConst), nn.MultiheadAttention (read whole by module
# scope on .pt2 and ONNX) and x[:, 0]. Both are refused at their first GELU without analog= (neither has a ReLU:
# in the hybrid mode nothing spikes, and the graph is the ANN; docs/conversion.md, "ConvNeXt and ViT").
EXPECTED: dict[str, dict[str, object]] = {
    "resnet18": {"convert": OK, "pt2": OK, "onnx": OK},
    "resnet34": {"convert": OK, "pt2": OK, "onnx": OK},
    "vgg11_bn": {"convert": OK, "pt2": OK, "onnx": OK},
    "vgg16_bn": {"convert": OK, "pt2": OK, "onnx": OK},
    "squeezenet1_1": {"convert": OK, "pt2": OK, "onnx": OK},
    "googlenet": {"convert": OK, "pt2": OK, "onnx": OK},
    "densenet121": {"convert": OK, "pt2": OK, "onnx": OK},
    "mobilenet_v2": {"convert": OK, "pt2": OK, "onnx": OK},
    "shufflenet_v2_x1_0": {"convert": OK, "pt2": OK, "onnx": OK},
    "efficientnet_b0": {"convert": ("SiLU", "features.0.2"), "pt2": ("silu", "features.0.2"),
                        "onnx": ("Sigmoid", "efficientnet_b0")},
    "regnet_y_400mf": {"convert": ("Sigmoid", "trunk_output.block1.0.f.se.scale_activation"),
                       "pt2": ("sigmoid", "trunk_output.block1.0.f.se.scale_activation"),
                       "onnx": ("Sigmoid", "regnet_y_400mf")},
    "mobilenet_v3_small": {"convert": ("Hardswish", "features.0.2"), "pt2": ("hardswish", "features.0.2"),
                           "onnx": ("HardSwish", "mobilenet_v3_small")},
    "convnext_tiny": {"convert": ("GELU", "features.1.0.block.4"), "pt2": ("gelu", "features.1.0.block.4"),
                      "onnx": ("Gelu", "convnext_tiny")},
    "vit_b_16": {"convert": ("GELU", "layers.0.mlp.1"), "pt2": ("gelu", "layers.0.mlp.1"),
                 "onnx": ("Gelu", "vit_b_16")},
}
# architecture -> the analog= that converts it (test_hybrid_mode_*)
HYBRID = {"efficientnet_b0": "silu,sigmoid", "regnet_y_400mf": "sigmoid", "mobilenet_v3_small": "hardswish,hardsigmoid",
          "convnext_tiny": "gelu,layer_norm", "vit_b_16": "gelu,layer_norm,softmax"}
TEST_WIDTH = {"vit_b_16": 1 / 16}  # 12 heads of 4; the others 1/8 of their channels
TEST_BLOCKS = {"resnet34": 3, "vgg16_bn": 3}  # 2 elsewhere; 3 keeps these two apart from resnet18 / vgg11_bn
T = 8


def test_every_architecture_has_an_expectation():
    assert set(EXPECTED) == set(ARCHITECTURES) and all(set(v) == set(PATHS) for v in EXPECTED.values())


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_ann_builds_and_runs_at_full_depth(name):
    """The full-depth network (small width) maps 3x32x32 images to 10 logits that depend on the image."""
    model = build(name, width=TEST_WIDTH.get(name, 1 / 8), calib_images=16)
    assert not model.training
    with torch.no_grad():
        y = model(images(4, seed=7))
    assert y.shape == (4, 10) and torch.isfinite(y).all()
    assert (y - y.mean(0)).abs().max() > 1e-6 * y.abs().max()  # not one constant vector for every image


def test_calibrate_bn_sets_the_statistics_of_the_data():
    """calibrate_bn leaves in each BatchNorm the mean and (unbiased) variance of what it saw, over all batches."""
    model = ARCHITECTURES["resnet18"](width=1 / 8)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    seen: dict[torch.nn.Module, list[torch.Tensor]] = {bn: [] for bn in bns}
    hooks = [bn.register_forward_hook(lambda m, i, o: seen[m].append(i[0].detach().clone())) for bn in bns]
    calibrate_bn(model, images(96, seed=5), batch_size=32)
    for h in hooks:
        h.remove()
    assert not model.training and all(len(v) == 3 for v in seen.values())
    for bn in bns:
        batches = seen[bn]
        mean = torch.stack([b.mean((0, 2, 3)) for b in batches]).mean(0)  # momentum=None: the average over batches
        var = torch.stack([b.var((0, 2, 3)) for b in batches]).mean(0)
        torch.testing.assert_close(bn.running_mean, mean, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(bn.running_var, var, rtol=1e-4, atol=1e-5)
        assert bn.momentum == 0.1  # restored
    assert (bns[0].running_var - 1).abs().max() > 0.1  # not the defaults


def _onnx_exporter_available() -> bool:
    return importlib.util.find_spec("onnxscript") is not None


def _sources(name, model, x, tmp_path) -> dict:
    """path -> a thunk giving the model or graph to convert (reading the file inside the thunk)."""
    dyn = ({0: torch.export.Dim("N")},)
    ep = torch.export.export(model, (x,), dynamic_shapes=dyn)
    torch.export.save(ep, tmp_path / f"{name}.pt2")
    sources = {"convert": lambda: model, "pt2": lambda: load(tmp_path / f"{name}.pt2")}
    if _onnx_exporter_available():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # torch.onnx.export's default exporter (dynamo=True) runs torch.export first; handing it the
            # ExportedProgram above writes the same file without exporting twice
            torch.onnx.export(ep, (x,), str(tmp_path / f"{name}.onnx"), dynamic_shapes=dyn, verbose=False)
        sources["onnx"] = lambda: load(tmp_path / f"{name}.onnx")
    return sources


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_three_paths_convert_alike_or_refuse_naming_the_op(name, tmp_path):
    model = build(name, width=TEST_WIDTH.get(name, 1 / 8), blocks=TEST_BLOCKS.get(name, 2), calib_images=16)
    calib, x = images(16, seed=1), images(3, seed=2)
    with torch.no_grad():
        logits = model(x)
    outputs, hybrid = {}, {}
    for path, source in _sources(name, model, x, tmp_path).items():
        expected = EXPECTED[name][path]
        if expected == OK:
            ann = source()
            if path != "convert":  # the graph as read computes the ANN (eager-exact mode: torch's own kernels)
                got = Session(ann, channels_last=False, event_conv=False).run(x)
                torch.testing.assert_close(got, logits, rtol=1e-4, atol=1e-4 * float(logits.abs().max()))  # ONNX decomposes ops
            snn = snnc.convert(ann, calib, show_progress=False)
            assert any(op.kind == "if" for op in snn)
            artifact = snnc.compile(snn, "cpu", tmp_path / f"{name}-{path}.cpu", passes="")
            outputs[path] = snnc.load(artifact).run(x, T)
            assert outputs[path].shape == (T, 3, 10) and outputs[path].abs().sum() > 0
        else:
            op, where = expected
            with pytest.raises(SnncError) as info:
                snn = snnc.convert(source(), calib, show_progress=False)
                snnc.load(snnc.compile(snn, "cpu", tmp_path / f"{name}-{path}.cpu", passes="")).run(x, T)
            line = info.value.message
            assert "\n" not in line and op in line, f"{path}: {line}"
            assert (where or f"{name}.onnx") in line, f"{path}: {line}"  # the module path, or the file
            if name in HYBRID:  # the inputs in the calibrated range: no saturation error in the convergence check
                ann = source()
                if path != "convert":  # the graph as read computes the ANN
                    got = Session(ann, channels_last=False, event_conv=False).run(x)
                    torch.testing.assert_close(got, logits, rtol=1e-4, atol=1e-4 * float(logits.abs().max()))
                snn = snnc.convert(ann, torch.cat([calib, x]), "max", show_progress=False, analog=HYBRID[name])
                out = snnc.load(snnc.compile(snn, "cpu", tmp_path / f"{name}-{path}.hybrid", passes="")).run(x, 64)
                hybrid[path] = (snn, out)
    # every path that converts gives the very same SNN: same IR, same spikes
    first = next(iter(outputs.values()), None)
    for path, out in outputs.items():
        assert torch.equal(out, first), f"{path} differs from {next(iter(outputs))}"
    if hybrid:
        _check_hybrid(name, hybrid, logits)
    if not _onnx_exporter_available():
        pytest.skip("onnxscript (needed by torch.onnx's default exporter) is not installed: the .onnx path was not run")



@pytest.mark.parametrize("name", ["mobilenet_v2", "shufflenet_v2_x1_0"])
def test_signed_conversion_gives_the_same_snn_on_every_path(name, tmp_path):
    """signed=True (the option that lifts these two over 0.995 on trained weights) rewrites the same IR on
    every path: the same signed_if neurons, the same spikes."""
    model = build(name, width=1 / 8, blocks=2, calib_images=16)
    calib, x = images(16, seed=1), images(3, seed=2)
    outputs = {}
    for path, source in _sources(name, model, x, tmp_path).items():
        snn = snnc.convert(source(), calib, signed=True, show_progress=False)  # 99.9%: bucketed, so a last-bit
        # difference in the ANN between paths (ONNX decomposes some ops) moves no scale
        assert any(op.kind == "signed_if" for op in snn) and not any(op.kind == "if" for op in snn)
        artifact = snnc.compile(snn, "cpu", tmp_path / f"{name}-{path}.signed", passes="")
        outputs[path] = snnc.load(artifact).run(x, T)
    first = outputs["convert"]
    assert (first != 0).any()
    for path, out in outputs.items():
        assert torch.equal(out, first), path


def _check_hybrid(name: str, hybrid: dict, logits: torch.Tensor) -> None:
    """With analog=, the three paths give the same SNN outputs (ONNX: to the rounding of the exporter's graph,
    which the analog values carry on), the graph reports its analog share, and the SNN approaches the ANN."""
    from snnc.passes.analog import AnalogReport

    (snn, out), pt2 = hybrid["convert"], hybrid["pt2"]
    report = AnalogReport.of(snn)
    assert torch.equal(pt2[1], out) and AnalogReport.of(pt2[0]) == report
    if "onnx" in hybrid:
        torch.testing.assert_close(hybrid["onnx"][1], out, rtol=0, atol=1e-4 * float(out.abs().max()))
        assert AnalogReport.of(hybrid["onnx"][0]).total_macs == report.total_macs
    assert report.total_macs > 0 and sum(report.decoded_ops.values()) + sum(report.exact_ops.values()) > 0

    def cosine(T: int) -> float:
        return float(torch.nn.functional.cosine_similarity(out[:T].mean(0).flatten(), logits.flatten(), dim=0))

    if report.spiking_macs == 0:  # efficientnet has no ReLU: nothing spikes, the graph is the ANN (exactly)
        assert report.decoded_macs == 0 and not any(op.kind in ("if", "rate_decode") for op in snn)
        assert cosine(8) > 0.9999 and cosine(64) > 0.9999
    else:
        assert report.decoded_ops and any(op.kind == "rate_decode" for op in snn)
        # regnet's decoded sigmoids only gate spikes (no MACs on decoded values); mobilenet_v3's hardswish feed convs
        assert (report.share > 0) == (name == "mobilenet_v3_small")
        assert cosine(64) > cosine(8) + 0.2, (cosine(8), cosine(64))
