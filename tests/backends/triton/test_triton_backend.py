"""The triton target: neuron layers in the Triton kernels give the CPU reference's outputs exactly.

Without a GPU the kernels run in Triton's interpreter (TRITON_INTERPRET=1, set in tests/conftest.py).
"""

import pytest
import torch

pytest.importorskip("triton")

import snnc  # noqa: E402
from snnc.errors import LoweringError  # noqa: E402
from snnc.runtime import Session  # noqa: E402
from tests.backends.lava.nets import conv_pool_dense, spikes  # noqa: E402


def test_converted_cnn_matches_reference(tmp_path, small_cnn):
    g = snnc.convert(small_cnn, torch.rand(32, 1, 8, 8), "99%")
    art = snnc.compile(g, target="triton", output=tmp_path / "t", time_steps=6)
    assert art.manifest["target"] == "triton"
    s = snnc.load(tmp_path / "t")
    assert s._interp.neuron_impl == "triton"
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(s.run(x, 6), Session(g).run(x, 6))


def test_lif_spike_input_net_matches_reference(tmp_path):
    g = conv_pool_dense()  # LIF / IF(>=) / LIF(decay_input), spike input
    x = spikes(7, 2, 2, 8, 8, seed=5)
    ref = Session(g).run(x)
    out = Session(g, neuron_impl="triton").run(x)
    assert torch.equal(out, ref) and ref.abs().sum() > 0


def test_loihi_neurons_are_refused_at_compile_time(tmp_path):
    from snnc.backends.lava.convert import reset_to_zero  # noqa: F401 - the lava target owns cuba_lif
    from snnc.ir import Graph, Layout, TensorType, ops

    g = Graph("cuba")
    g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", 4), layout=Layout.TNX)))
    cuba = [c for c in ops.REGISTRY.values() if c.model_fields["kind"].default == "cuba_lif"][0]
    g.add(cuba(name="n", inputs=("x",)))
    g.add(ops.Output(name="o", inputs=("n",)))
    with pytest.raises(LoweringError, match="%n"):
        snnc.compile(g, target="triton", output=tmp_path / "c")


def test_neuron_layers_really_go_through_triton(monkeypatch, small_cnn):
    import snnc.runtime.triton.neuron as tn

    calls = []
    real = tn.multi_step

    def spy(*a, **k):
        calls.append(a[1].shape)
        return real(*a, **k)

    monkeypatch.setattr(tn, "multi_step", spy)
    g = snnc.convert(small_cnn, torch.rand(16, 1, 8, 8), "max")
    Session(g, neuron_impl="triton").run(torch.rand(2, 1, 8, 8), 3)
    assert len(calls) == 2  # the two IF layers
