import pytest
import torch

from snnc.core.errors import VerifyError
from snnc.frontends import trace
from snnc.ir import Graph, TensorType, ops, verify
from snnc.ir.ops import SourceLoc


def _tiny(in_features=16) -> Graph:
    g = Graph("tiny")
    g.add(ops.Input(name="x", type=TensorType(shape=("N", 1, 4, 4))))
    g.add(ops.Flatten(name="flat", inputs=("x",)))
    w = g.add_param("fc.weight", torch.randn(3, in_features))
    g.add(ops.Linear(name="fc", inputs=("flat",), weight=w,
                     loc=SourceLoc(module_path="head.fc", module_type="torch.nn.Linear")))
    g.add(ops.Output(name="out", inputs=("fc",)))
    return g


def test_valid_graph_verifies_and_infers():
    g = verify(_tiny())
    assert str(g.type_of("fc")) == "f32[N,3] NX"


def test_verifier_rejects_shape_mismatch_and_names_node_and_source():
    with pytest.raises(VerifyError) as e:
        verify(_tiny(in_features=15))
    msg = str(e.value)
    assert "%fc (linear)" in msg and "'head.fc' (torch.nn.Linear)" in msg and "[16]" in msg
    assert "^^^" in msg  # caret under the offending line


def test_verifier_rejects_undefined_input_and_missing_param():
    g = _tiny()
    g.replace_op(g["fc"].replace(inputs=("nope",)))
    with pytest.raises(VerifyError, match="%nope"):
        verify(g)
    g = _tiny()
    g.replace_op(g["fc"].replace(weight="missing.weight"))
    with pytest.raises(VerifyError, match="@missing.weight"):
        verify(g)


def test_verifier_rejects_neuron_without_time_layout():
    g = Graph("t")
    g.add(ops.Input(name="x", type=TensorType(shape=("N", 4))))
    g.add(ops.IF(name="n", inputs=("x",)))
    g.add(ops.Output(name="o", inputs=("n",)))
    with pytest.raises(VerifyError, match="needs a layout with time"):
        verify(g)


def test_verifier_rejects_nan_weights():
    g = _tiny()
    g.params["fc.weight"] = torch.full((3, 16), float("nan"))
    with pytest.raises(VerifyError, match="NaN"):
        verify(g)


def test_printer_golden(golden, small_cnn):
    golden("small_cnn.txt", str(trace(small_cnn, (1, 8, 8), name="small_cnn")))


def test_printer_is_stable_across_traces(small_cnn):
    from tests.conftest import SmallCNN, randomize_bn  # noqa: I001

    other = randomize_bn(SmallCNN())  # different weights, same structure
    assert str(trace(small_cnn, (1, 8, 8))) == str(trace(other, (1, 8, 8)))
