"""The triton target: neuron layers in the Triton kernels give the CPU reference's outputs exactly.

Without a GPU the kernels run in Triton's interpreter (TRITON_INTERPRET=1, set in tests/conftest.py).
"""

import pytest
import torch

pytest.importorskip("triton")

import snnc  # noqa: E402
from snnc.core.errors import LoweringError  # noqa: E402
from snnc.runtime import Session  # noqa: E402
from tests.backends.lava.nets import conv_pool_dense, spikes  # noqa: E402


def test_converted_cnn_matches_reference(tmp_path, small_cnn):
    g = snnc.convert(small_cnn, torch.rand(32, 1, 8, 8), "99%")
    art = snnc.compile(g, target="triton", output=tmp_path / "t", time_steps=6, passes="")
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
    """Each neuron layer is one launch of the chain kernel (its group's scale fused in)."""
    import snnc.runtime.triton.chain as tc

    calls = []
    real = tc.chain_multi_step

    def spy(*a, **k):
        calls.append((a[1].shape, len(a[2])))
        return real(*a, **k)

    monkeypatch.setattr(tc, "chain_multi_step", spy)
    g = snnc.convert(small_cnn, torch.rand(16, 1, 8, 8), "max")
    x = torch.rand(2, 1, 8, 8)
    out = Session(g, neuron_impl="triton").run(x, 3)
    assert len(calls) == 2  # the two IF layers, one window
    # the converted ReLU's input scale: computed once with the constant prefix before the first IF,
    # in the kernel before the second
    assert [n_stages for _, n_stages in calls] == [0, 1]
    assert torch.equal(out, Session(g).run(x, 3))


def test_options_go_into_the_manifest_and_the_cli(tmp_path):
    from snnc.cli import backend_options
    from snnc.core.errors import InputError

    opts = backend_options("triton", {"fused_linear": "auto", "cuda_graphs": "false", "graph_max_batch": "8"})
    assert (opts.fused_linear, opts.cuda_graphs, opts.graph_max_batch) == ("auto", False, 8)
    with pytest.raises(InputError, match="fused_linear"):
        backend_options("triton", {"fused_linear": "maybe"})
    with pytest.raises(InputError, match="no option"):
        backend_options("triton", {"cuda_graph": "on"})
    g = conv_pool_dense()
    art = snnc.compile(g, target="triton", output=tmp_path / "o", fused_linear="on", graph_max_batch=4)
    assert art.manifest["runtime_options"] == {"fused_linear": "on", "cuda_graphs": True, "graph_max_batch": 4,
                                               "graph_cache": 2}
    s = snnc.load(tmp_path / "o")
    assert s._interp.options.fused_linear == "on" and s._interp.options.graph_max_batch == 4
