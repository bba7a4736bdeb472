"""tests/zoo/torchvision_stub.py: SJ's torchvision-style zoo modules import with the stand-in, which never outlives
that import."""

from __future__ import annotations

import importlib
import sys
import types

import pytest
import torch

from tests.zoo.torchvision_stub import STUB_MODULES, import_sj_model, torchvision_importable, torchvision_stub

pytestmark = [pytest.mark.spikingjelly,
              pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning",
                                         "ignore::UserWarning")]

TV_MODULES = ("spiking_resnet", "sew_resnet", "spiking_vgg")


@pytest.mark.parametrize("name", TV_MODULES)
def test_zoo_module_imports_and_the_stub_is_gone(name):
    pytest.importorskip("spikingjelly.activation_based.neuron")
    mod = import_sj_model(f"spikingjelly.activation_based.model.{name}")
    assert mod.load_state_dict_from_url is torch.hub.load_state_dict_from_url
    assert callable(getattr(mod, name.replace("_resnet", "_resnet18").replace("_vgg", "_vgg11")))
    if not torchvision_importable():  # nothing named torchvision is left behind
        assert not any(n == "torchvision" or n.startswith("torchvision.") for n in sys.modules)
        with pytest.raises(ImportError):
            importlib.import_module("torchvision.models.utils")


def test_stub_restores_what_it_replaced(monkeypatch):
    sentinel = types.ModuleType("torchvision.models")
    monkeypatch.setitem(sys.modules, "torchvision.models", sentinel)
    for name in STUB_MODULES[2:]:
        monkeypatch.delitem(sys.modules, name, raising=False)
    with torchvision_stub():
        from torchvision.models.utils import load_state_dict_from_url
        assert load_state_dict_from_url is torch.hub.load_state_dict_from_url
        assert sys.modules["torchvision.models"] is not sentinel
    assert sys.modules["torchvision.models"] is sentinel
    assert all(name not in sys.modules for name in STUB_MODULES[2:])


def test_other_import_errors_are_not_stubbed_over(tmp_path, monkeypatch):
    (tmp_path / "needs_something_else.py").write_text("import torchvision_is_not_this\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    entered = []
    monkeypatch.setattr("tests.zoo.torchvision_stub.torchvision_stub", lambda: entered.append(1))
    with pytest.raises(ImportError, match="torchvision_is_not_this"):
        import_sj_model("needs_something_else")
    assert not entered  # raised as it is, no second try with the stand-in
