import copy
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from snnc.core.errors import FrontendError, UnsupportedAttributeError, UnsupportedOpError
from snnc.frontends import trace
from snnc.runtime import Interpreter
from tests.conftest import randomize_bn


def run_graph(graph, x):
    return Interpreter(graph).run({graph.inputs[0].name: x})[graph.outputs[0].name]


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4))
        self.side = nn.Conv2d(4, 2, 1)
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(6 * 4 * 4, 10)
        self.idn = nn.Identity()

    def forward(self, x):
        x = self.stem(x)
        y = F.relu(self.block(x) + x)
        y = torch.cat([y, self.side(y)], dim=1)
        y = self.drop(self.idn(self.pool(y)))
        return self.head(y.view(y.size(0), -1))


def test_residual_concat_functional_forms_match_torch():
    model = randomize_bn(Residual())
    g = trace(model, (1, 8, 8))
    kinds = [op.kind for op in g]
    assert kinds.count("add") == 1 and kinds.count("concat") == 1 and "identity" not in kinds
    x = torch.rand(5, 1, 8, 8)
    torch.testing.assert_close(run_graph(g, x), model(x), rtol=0, atol=0)


def test_a_model_in_training_mode_is_captured_as_in_eval_mode_with_a_warning():
    """BatchNorm and Dropout compute otherwise in training mode: the graph is model.eval()'s, and says so."""
    model = randomize_bn(Residual()).train()
    with pytest.warns(UserWarning, match=r"Residual is in training mode, where 'stem.1', 'block.1', 'drop' compute "
                                         r"otherwise: snnc captures what model.eval\(\) computes") as seen:
        g = trace(model, (1, 8, 8))
    assert len([w for w in seen if "training mode" in str(w.message)]) == 1
    assert model.training and model.stem[1].training  # the model's own mode is left as it was
    x = torch.rand(5, 1, 8, 8)
    got = run_graph(g, x)
    assert not torch.allclose(got, copy.deepcopy(model)(x))  # what training mode computes differs...
    torch.testing.assert_close(got, model.eval()(x), rtol=0, atol=0)  # ...and the graph is eval mode's
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trace(model, (1, 8, 8))  # in eval mode: nothing to say


def test_every_node_remembers_its_source_module():
    g = trace(randomize_bn(Residual()), (1, 8, 8))
    locs = {}
    for op in g:
        if op.loc:
            locs.setdefault(op.kind, op.loc)
    assert locs["conv2d"].module_path == "stem.0" and locs["conv2d"].module_type == "torch.nn.Conv2d"
    assert locs["linear"].module_path == "head"
    add = next(op for op in g if op.kind == "add")
    assert add.loc.module_type.endswith("Residual")  # a function call is attributed to its enclosing module


def test_all_supported_modules_trace_and_match(small_cnn):
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding="same"), nn.BatchNorm2d(3), nn.ReLU(),
                          nn.AvgPool2d(2, ceil_mode=True), nn.MaxPool2d(2, stride=1), nn.AdaptiveAvgPool2d((2, None)),
                          nn.Flatten(), nn.Linear(3 * 2 * 4, 6), nn.BatchNorm1d(6), nn.Dropout(), nn.ReLU(),
                          nn.Identity(), nn.Linear(6, 2))
    model = randomize_bn(model)
    g = trace(model, (1, 9, 9))
    x = torch.rand(4, 1, 9, 9)
    torch.testing.assert_close(run_graph(g, x), model(x), rtol=1e-6, atol=1e-6)


def test_shared_module_used_twice_shares_parameters():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(torch.relu(self.fc(x)))

    m = Twice()
    g = trace(m, (4,))
    linears = [op for op in g if op.kind == "linear"]
    assert len(linears) == 2 and linears[0].weight == linears[1].weight and len(g.params) == 2
    x = torch.randn(3, 4)
    torch.testing.assert_close(run_graph(g, x), m(x))


def test_multiple_inputs_and_outputs():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 2), nn.Linear(5, 2)

        def forward(self, x, y):
            s = self.a(x) + self.b(y)
            return s, torch.relu(s)

    g = trace(Two(), [(3,), (5,)])
    assert len(g.inputs) == 2 and len(g.outputs) == 2


def test_unsupported_module_names_path_type_and_alternatives():
    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ELU()))  # GELU before the hybrid mode (issue 19)
    with pytest.raises(UnsupportedOpError) as e:
        trace(model, (4,))
    msg = str(e.value)
    assert "torch.nn.ELU at '1.0'" in msg and "torch.nn.Conv2d" in msg and "torch.nn.Linear" in msg


def test_unsupported_function_and_attribute_errors():
    class Softplus(nn.Module):  # torch.sigmoid before the hybrid mode (issue 19)
        def forward(self, x):
            return torch.nn.functional.softplus(x)

    with pytest.raises(UnsupportedOpError, match="softplus"):
        trace(Softplus(), (4,))
    with pytest.raises(UnsupportedAttributeError, match="padding_mode"):
        trace(nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"), (1, 4, 4))


def test_wrong_number_of_input_shapes():
    with pytest.raises(FrontendError, match="1 input"):
        trace(nn.Linear(3, 3), [(3,), (3,)])


class _InPlace(nn.Module):
    """Each form changes a tensor in place that is read again afterwards (eager torch reads the new value)."""

    def __init__(self, form: str):
        super().__init__()
        self.form, self.fc, self.relu = form, nn.Linear(4, 4), nn.ReLU(inplace=True)

    def forward(self, x):
        y = self.fc(x)
        if self.form == "module":
            z = self.relu(y)
            return y + z
        if self.form == "function":
            z = F.relu(y, inplace=True)
            return y * 2 + z
        if self.form == "method":
            y.clamp_(min=0)
            return y
        if self.form == "augmented":
            kept = y
            y += 1
            return kept + y
        if self.form == "input":
            x.add_(1)
            return y + x
        v = y.flatten(1)  # a view of y, changed in place, then y read again: refused
        v.clamp_(min=0)
        return y * 3


@pytest.mark.parametrize("form", ["module", "function", "method", "augmented", "input"])
def test_later_readers_of_a_tensor_changed_in_place_read_the_new_value(form):
    torch.manual_seed(0)
    model = _InPlace(form).eval()
    x = torch.randn(5, 4)
    with torch.no_grad():
        want = model(x.clone())
    g = trace(model, (4,))  # (reading the old value instead changes every output here: checked before the fix)
    torch.testing.assert_close(run_graph(g, x.clone()), want, rtol=0, atol=1e-6)


def test_an_in_place_change_through_a_view_that_is_read_again_is_refused():
    with pytest.raises(UnsupportedOpError, match=r"changes 'flatten' in place, which shares its memory with "
                                                 r"'fc' \(flatten\), read again later"):
        trace(_InPlace("view").eval(), (4,))
