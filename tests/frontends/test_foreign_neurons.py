"""Neurons of snnTorch, Norse and sinabs are not traced: one line names the module and the NIR export that
snnc reads instead (docs/nir.md)."""

import pytest
import torch.nn as nn

import snnc
from snnc.core.errors import UnsupportedOpError


def _library_neuron(module: str, base: str) -> type:
    """A neuron class deriving from `module.base`, as the library defines it (the library itself not needed)."""
    root = type(base, (nn.Module,), {"forward": lambda self, x: x})
    root.__module__, root.__qualname__ = module, base
    return type("SomeNeuron", (root,), {"__module__": module.split(".")[0] + ".neurons"})


@pytest.mark.parametrize("module,base,library,export", [
    ("snntorch._neurons.neurons", "SpikingNeuron", "snnTorch", "snntorch.export_nir.export_to_nir"),
    ("norse.torch.module.snn", "SNNCell", "Norse", "norse.torch.to_nir"),
    ("norse.torch.module.snn", "SNN", "Norse", "norse.torch.to_nir"),
    ("sinabs.layers.stateful_layer", "StatefulLayer", "sinabs", "sinabs.to_nir"),
])
def test_a_foreign_neuron_is_refused_naming_it_and_the_nir_route(module, base, library, export):
    model = nn.Sequential(nn.Linear(4, 4), _library_neuron(module, base)())
    with pytest.raises(UnsupportedOpError) as info:
        snnc.trace(model, (4,))
    assert f"'1' ({module.split('.')[0]}.neurons.SomeNeuron) is a {library} neuron" in info.value.message
    assert export in info.value.hint and "\n" not in info.value.message


def test_a_look_alike_from_another_package_is_not_refused():
    look_alike = type("SpikingNeuron", (nn.Module,), {"forward": lambda self, x: x, "__module__": "mylib.neurons"})
    graph = snnc.trace(nn.Sequential(nn.Linear(4, 4), look_alike()), (4,))
    assert [op.kind for op in graph] == ["input", "linear", "output"]


def test_real_snntorch_and_norse_neurons_are_refused():
    snntorch = pytest.importorskip("snntorch")
    norse = pytest.importorskip("norse.torch")
    for neuron, library in ((snntorch.Leaky(beta=0.9, init_hidden=True), "snnTorch"), (norse.LIFCell(), "Norse")):
        with pytest.raises(UnsupportedOpError, match=f"'1' .* is a {library} neuron"):
            snnc.trace(nn.Sequential(nn.Linear(4, 4), neuron), (4,))
