"""The lowered networks compute what the CPU reference computes.

On the constructed networks ("digits", "resnet": every value exact in float32
and in the float16 core, see conftest.py) every neuron's spikes and the analog
output are bit-identical to the reference's, for onnxruntime on model.onnx and
for the torch.export program, in float32 and in float16 (the spiking core in
float16, membrane potentials and the analog head and tail in float32, the
default). A constructed network shows float16 really rounds where float32 does
not. On the trained network, whose values float16 does round, at least 99% of
every layer's spikes agree with the float32 reference.
"""

from __future__ import annotations

import pytest
import torch

import snnc
from snnc.backends.lynxi import Runner
from snnc.ir import IF, Graph, Input, Layout, Linear, Output, TensorType
from snnc.runtime import Session
from tests.backends.lynxi.conftest import ENGINES, T, with_spike_outputs


def _outputs(art, compiled, engine) -> dict[str, torch.Tensor]:
    names = [s["name"] for s in art.manifest["interface"]["outputs"]]
    (x_spec,) = art.manifest["interface"]["inputs"]
    dtype = {"float32": torch.float32, "float16": torch.float16}[x_spec["dtype"]]
    return dict(zip(names, ENGINES[engine](art.path, [compiled.x.to(dtype)])))


def _assert_same_as_reference(out, ref, spike_dtype) -> None:
    spikes = [k for k in ref if k.startswith("spk_")]
    assert len(spikes) >= 2
    for k in spikes:
        got = out[k].reshape(ref[k].shape)  # [T*N, *] -> [T, N, *]
        assert got.dtype == spike_dtype
        assert 0.01 < float(ref[k].mean()) < 0.99, f"{k}: the reference barely fires; the test would be weak"
        assert torch.equal(got.float(), ref[k]), f"{k}: {int((got != ref[k]).sum())} spikes differ"
    assert out["out"].dtype == torch.float32  # the readout, after the last neuron
    # the analog readout too: every value is exact, so onnxruntime's GEMM and torch's agree to the bit
    got, want = out["out"].reshape(ref["out"].shape), ref["out"]
    assert torch.equal(got, want)
    assert torch.equal(got.mean(0).argmax(-1), want.mean(0).argmax(-1))


@pytest.mark.parametrize("engine", ["onnx", "torch"])
@pytest.mark.parametrize("net,variant", [("digits", "raw"), ("resnet", "raw"), ("digits", "lynxi")])
def test_float32_spikes_equal_the_reference_exactly(compiled, net, variant, engine):
    ref = compiled.reference(net, variant)
    out = _outputs(compiled.artifact(net, variant, "f32"), compiled, engine)
    _assert_same_as_reference(out, ref, torch.float32)


@pytest.mark.parametrize("engine", ["onnx", "torch"])
@pytest.mark.parametrize("net,variant", [("digits", "raw"), ("resnet", "raw"), ("resnet", "lynxi")])
def test_float16_core_of_an_exact_network_equals_the_reference(compiled, net, variant, engine):
    """Every value of these networks is exact in the float16 core (conftest.assert_exact), so float16 must
    give the reference's bits: spikes, the float32 readout and the argmax of every sample."""
    ref = compiled.reference(net, variant)
    art = compiled.artifact(net, variant, "f16")
    m = art.manifest
    assert (m["dtype"], m["state_dtype"], m["analog_dtype"]) == ("float16", "float32", "float32")
    out = _outputs(art, compiled, engine)
    _assert_same_as_reference(out, ref, torch.float16)  # the spiking core returns float16 spikes


def _agreement(out, ref) -> dict[str, float]:
    """Per neuron: the fraction of its spikes (over T, N and features) equal to the reference's."""
    return {k: float((out[k].float().reshape(ref[k].shape) == ref[k]).float().mean())
            for k in ref if k.startswith("spk_")}


@pytest.mark.parametrize("engine", ["onnx", "torch"])
def test_float16_keeps_most_spikes_of_a_trained_network(compiled, engine):
    """The trained digits SNN as a user converts it (scales from calibration, not powers of two): float16
    rounds its core, and the engines' float16 kernels differ between CPUs (some accumulate in float16), so
    which spikes flip is not a property of the network. Asserted with wide margins: at least 99% of each
    layer's spikes agree with the float32 reference (0.9998 or more measured on x86-64, onnxruntime and
    torch), and so does the argmax of at least 98% of the samples (measured: all of them)."""
    ref = compiled.reference("trained", "raw")
    out = _outputs(compiled.artifact("trained", "raw", "f16"), compiled, engine)
    assert all(out[k].dtype == torch.float16 for k in ref if k.startswith("spk_"))
    agree = _agreement(out, ref)
    assert min(agree.values()) >= 0.99, agree
    rate, want = out["out"].reshape(ref["out"].shape).mean(0), ref["out"].mean(0)
    assert rate.shape == (compiled.x.shape[0], 10)
    assert float((rate.argmax(-1) == want.argmax(-1)).float().mean()) >= 0.98


def _rounding_graph() -> Graph:
    """x (= 1) -> fc1 -> IF n1 (fires every step) -> two float16 core layers on its spikes -> two IFs.

    core: weight 1 + 2^-12 (float16 rounds it to 1), threshold 2 + 2^-11. float32 fires at step 2
        (v = 2 + 2^-11); with a float16 core v is 2 after two steps, and it fires at step 3.
    state: weight 3 * 2^-13 (exact in float16), v_init 1, threshold 1 + 2^-10. A float32 membrane reaches
        1 + 9 * 2^-13 at step 3 and fires; a float16 one rounds 1 + 3 * 2^-13 back to 1 at every step.
    """
    g = Graph("rounding")
    g.add(Input(name="x", type=TensorType(shape=("T", 1, 1), layout=Layout.TNX)))
    g.params.update({"w1": torch.ones(1, 1), "wc": torch.tensor([[1 + 2 ** -12]]),
                     "ws": torch.tensor([[3 * 2 ** -13]])})
    g.add(Linear(name="fc1", inputs=("x",), weight="w1"))
    g.add(IF(name="n1", inputs=("fc1",)))
    g.add(Linear(name="fc_core", inputs=("n1",), weight="wc"))
    g.add(IF(name="core", inputs=("fc_core",), v_threshold=2 + 2 ** -11))
    g.add(Linear(name="fc_state", inputs=("n1",), weight="ws"))
    g.add(IF(name="state", inputs=("fc_state",), v_threshold=1 + 2 ** -10, v_init=1.0))
    g.add(Output(name="out", inputs=("core",)))
    return with_spike_outputs(g)


@pytest.mark.parametrize("engine", ["onnx", "torch"])
def test_float16_rounds_where_float32_does_not(tmp_path, engine):
    """float16 is really computed: the core and, with state_dtype=f16, the membrane potentials round."""
    g, x = _rounding_graph(), torch.ones(1, 1)
    ref = Session(g).run(x, 3)
    assert ref["spk_core"].flatten().tolist() == [0, 1, 0] and ref["spk_state"].flatten().tolist() == [0, 0, 1]
    opts = dict(time_steps=3, batch_size=1)
    for name, kw, core, state in [("f32", dict(dtype="f32"), [0, 1, 0], [0, 0, 1]),
                                  ("f16", dict(dtype="f16"), [0, 0, 1], [0, 0, 1]),
                                  ("f16-state", dict(dtype="f16", state_dtype="f16"), None, [0, 0, 0])]:
        out = Runner(snnc.compile(g, "lynxi", tmp_path / name, **opts, **kw), engine).run(x)
        assert out["spk_n1"].flatten().tolist() == [1, 1, 1], name
        if core is not None:
            assert out["spk_core"].flatten().tolist() == core, name
        assert out["spk_state"].flatten().tolist() == state, name


def test_all_float16_is_an_option(compiled, tmp_path):
    """state_dtype=f16, analog_dtype=f16: the ONNX interface and weights are float16, and arithmetic rounds to
    float16 after each op (test_float16_rounds_where_float32_does_not shows the state rounding). On the trained
    network spikes still agree to 99% or more (0.999 measured); float16 logits and potentials are a coarser
    approximation, which is why float32 state and head/tail are the default."""
    import onnx

    g, x = compiled.graph("trained", "raw"), compiled.x
    art = snnc.compile(g, "lynxi", tmp_path / "all16", time_steps=T, batch_size=x.shape[0], dtype="f16",
                       state_dtype="f16", analog_dtype="float16")
    model = onnx.load(str(art.path / "model.onnx"))
    io = {v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}
    weights = {t.data_type for t in model.graph.initializer if len(t.dims) >= 1 and t.data_type != onnx.TensorProto.INT64}
    assert io == weights == {onnx.TensorProto.FLOAT16}
    assert {s["dtype"] for s in [*art.manifest["interface"]["inputs"], *art.manifest["interface"]["outputs"]]} \
        == {"float16"}
    out = _outputs(art, compiled, "onnx")
    agree = _agreement(out, compiled.reference("trained", "raw"))
    assert min(agree.values()) >= 0.99, agree
