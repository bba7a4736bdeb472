"""ONNX activations read as the IR's Activation op (ir/ops/analog.py), on a hand-built model."""

import pytest
import torch
import torch.nn.functional as F

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from snnc.core.errors import UnsupportedAttributeError  # noqa: E402
from snnc.frontends.onnx import from_onnx_model  # noqa: E402
from snnc.ir import ops  # noqa: E402
from snnc.runtime import Session  # noqa: E402


def _model(nodes, opset: int = 20) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "acts", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_activations_and_the_exporters_silu():
    nodes = [helper.make_node("Gelu", ["x"], ["g"], name="gelu"),
             helper.make_node("Gelu", ["g"], ["gt"], name="gelu_tanh", approximate="tanh"),
             helper.make_node("Tanh", ["gt"], ["t"], name="tanh"),
             helper.make_node("HardSigmoid", ["t"], ["h"], name="hsig", alpha=1 / 6, beta=0.5),
             helper.make_node("HardSwish", ["h"], ["hs"], name="hswish"),
             helper.make_node("Sigmoid", ["hs"], ["s"], name="sig"),
             helper.make_node("Mul", ["hs", "s"], ["y"], name="silu")]  # x * sigmoid(x): one silu
    g = from_onnx_model(_model(nodes))
    assert [op.fn.value for op in g if isinstance(op, ops.Activation)] == \
        ["gelu", "gelu_tanh", "tanh", "hardsigmoid", "hardswish", "silu"]
    x = torch.linspace(-6, 6, 20).reshape(4, 5)
    ref = F.silu(F.hardswish(F.hardsigmoid(torch.tanh(F.gelu(F.gelu(x), approximate="tanh")))))
    torch.testing.assert_close(Session(g).run(x), ref, rtol=1e-6, atol=1e-6)


def test_a_sigmoid_with_other_readers_stays_and_a_foreign_hardsigmoid_is_refused():
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"], name="sig"),
             helper.make_node("Mul", ["x", "s"], ["m"], name="mul"),
             helper.make_node("Add", ["m", "s"], ["y"], name="add")]
    g = from_onnx_model(_model(nodes))
    assert [op.kind for op in g if op.kind in ("activation", "mul")] == ["activation", "mul"]
    x = torch.randn(3, 5)
    torch.testing.assert_close(Session(g).run(x), x * torch.sigmoid(x) + torch.sigmoid(x))
    bad = [helper.make_node("HardSigmoid", ["x"], ["y"], name="hs", alpha=0.2, beta=0.5)]
    with pytest.raises(UnsupportedAttributeError, match=r"node 'hs' \(HardSigmoid\).*alpha=0\.2"):
        from_onnx_model(_model(bad))
