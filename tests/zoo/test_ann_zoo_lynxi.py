"""The all-spiking zoo architectures on the Lynxi target (issue 19): each converted SNN compiles (static
shapes, every tensor <= 4-D) and its ONNX program computes the CPU reference's outputs in float32.

The networks are tests/zoo's tiny variants (TEST_WIDTH), one block per stage (two for ShuffleNetV2, whose
first unit of a stage has no channel split, and for resnet34 / vgg16_bn, which would otherwise be resnet18 /
vgg11_bn), at T = 4 (the lynxi program unrolls T: its export time grows
with it), converted as
`snnc.convert` does it (reordered and running max pools, bounded IF from ReLU6, channel split and
shuffle, concat, VGG's 1x1 -> 7x7 adaptive pool); the reference is the cpu artifact of the same SNN.
"""

from __future__ import annotations

import onnx
import pytest
import torch

import snnc
from snnc.backends.lynxi import Runner
from snnc.passes import PIPELINES, PassManager, parse_pipeline
from tests.zoo.ann import build, images
from tests.zoo.test_ann_zoo import TEST_WIDTH

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning")

ALL_SPIKING = ["resnet18", "resnet34", "vgg11_bn", "vgg16_bn", "squeezenet1_1", "googlenet", "densenet121",
               "mobilenet_v2", "shufflenet_v2_x1_0"]
# what each needs of the lynxi lowering beyond conv/bn/linear/IF (so a network that lost it would fail here)
NEEDS = {"vgg11_bn": {"running_max_pool2d", "adaptive_avg_pool2d"}, "squeezenet1_1": {"running_max_pool2d", "concat"},
         "googlenet": {"running_max_pool2d", "concat"}, "densenet121": {"concat", "avg_pool2d"},
         "shufflenet_v2_x1_0": {"slice", "concat", "reshape", "permute"}}
BLOCKS = {"shufflenet_v2_x1_0": 2, "resnet34": 2, "vgg16_bn": 2}  # 1 elsewhere (2: not resnet18's / vgg11's net)
T, N = 4, 3


def _max_rank(path) -> int:
    """The largest rank of any value in the ONNX file, after onnx's shape inference (all dims static)."""
    g = onnx.shape_inference.infer_shapes(onnx.load(path), strict_mode=True).graph
    ranks = []
    for vi in [*g.input, *g.value_info, *g.output]:
        dims = vi.type.tensor_type.shape.dim
        assert all(d.HasField("dim_value") for d in dims), f"{vi.name} has a dynamic dim"
        ranks.append(len(dims))
    return max(ranks)


@pytest.mark.parametrize("name", ALL_SPIKING)
def test_lynxi_compiles_the_converted_network_and_matches_the_cpu_reference(name, tmp_path):
    model = build(name, width=TEST_WIDTH.get(name, 1 / 8), blocks=BLOCKS.get(name, 1), calib_images=16)
    x = images(N, seed=2)
    snn = snnc.convert(model, images(16, seed=1), show_progress=False)
    want = snnc.load(snnc.compile(snn, "cpu", tmp_path / "ref.cpu")).run(x, T)  # [T, N, 10]
    lowered = PassManager(parse_pipeline(PIPELINES["lynxi"]), verify_each=True).run(snn)
    assert NEEDS.get(name, set()) <= {op.kind for op in lowered}
    art = snnc.compile(lowered, "lynxi", tmp_path / "ly", time_steps=T, batch_size=N)
    assert _max_rank(art.path / art.manifest["files"]["onnx"]) <= 4
    (got,) = Runner(art, "onnx").run(x).values()
    got = got.reshape(want.shape)
    assert want.abs().max() > 0 and (want - want.mean(1, keepdim=True)).abs().max() > 0  # not all one value
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))
