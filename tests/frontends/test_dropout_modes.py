"""A dropout that runs in training mode (it drops values at random in torch) becomes the identity, as in eval
mode, with a warning naming it, on every path: fx, .pt2 and ONNX. An eval-mode dropout says nothing."""

import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import snnc
from snnc.core.errors import SnncError
from snnc.frontends import load
from snnc.runtime import Session


class FunctionalDropout(nn.Module):
    """F.dropout's training argument defaults to True: this model drops values even after model.eval()."""

    def __init__(self, follow_mode: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 3)
        self.follow_mode = follow_mode

    def forward(self, x):
        h = self.fc1(x)
        h = F.dropout(h, 0.3, training=self.training) if self.follow_mode else F.dropout(h, 0.3)
        return self.fc2(h)


def _without_dropout(m: FunctionalDropout, x: torch.Tensor) -> torch.Tensor:
    return m.fc2(m.fc1(x))


def test_fx_functional_dropout_in_training_mode_becomes_the_identity_with_a_warning():
    m, x = FunctionalDropout().eval(), torch.rand(64, 8)
    with pytest.warns(UserWarning, match=r"dropout \(p=0\.3\) in .*FunctionalDropout.* runs in training mode: it "
                                         r"drops values at random in torch; snnc keeps every value.*training=self"):
        g = snnc.trace(m, (8,))
    with torch.no_grad():
        assert not torch.allclose(m(x), _without_dropout(m, x))  # torch drops values here...
        torch.testing.assert_close(Session(g).run(x), _without_dropout(m, x))  # ...snnc does not


def test_fx_dropout_that_follows_the_mode_says_nothing_in_eval_mode():
    m = FunctionalDropout(follow_mode=True).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        snnc.trace(m, (8,))
    with pytest.warns(UserWarning, match="runs in training mode"):
        snnc.trace(m.train(), (8,))


def test_pt2_dropout_in_training_mode_becomes_the_identity_with_a_warning(tmp_path):
    m, x = FunctionalDropout().eval(), torch.rand(64, 8)
    torch.export.save(torch.export.export(m, (x,)), tmp_path / "m.pt2")
    with pytest.warns(UserWarning, match=r"dropout \(p=0\.3\) in .* runs in training mode.*model\.eval\(\)"):
        g = load(tmp_path / "m.pt2")
    with torch.no_grad():
        torch.testing.assert_close(Session(g).run(x), _without_dropout(m, x))
    torch.export.save(torch.export.export(FunctionalDropout(follow_mode=True).eval(), (x,)), tmp_path / "e.pt2")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        load(tmp_path / "e.pt2")


@pytest.mark.parametrize("training", [True, False, "input"])
def test_onnx_dropout_in_training_mode_becomes_the_identity_with_a_warning(training, tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    import numpy as np

    inits = [numpy_helper.from_array(np.array(0.25, np.float32), "ratio")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])]
    if training == "input":
        inputs.append(helper.make_tensor_value_info("mode", TensorProto.BOOL, []))
    else:
        inits.append(numpy_helper.from_array(np.array(training), "mode"))
    nodes = [helper.make_node("Dropout", ["x", "ratio", "mode"], ["d"], name="drop"),
             helper.make_node("Relu", ["d"], ["y"], name="relu")]
    graph = helper.make_graph(nodes, "drop", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
                              initializer=inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "d.onnx")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            g = load(tmp_path / "d.onnx")
        except SnncError as e:  # a bool graph input is not a tensor snnc runs on: refused, naming it
            assert training == "input" and "mode" in e.message
            return
    said = [str(w.message) for w in seen if "training mode" in str(w.message)]
    assert len(said) == (0 if training is False else 1), said
    if training is True:
        assert "dropout (p=0.25) in" in said[0] and "'drop'" in said[0] and "model.eval()" in said[0]
    x = torch.randn(5, 4)
    torch.testing.assert_close(Session(g).run(x), torch.relu(x))
