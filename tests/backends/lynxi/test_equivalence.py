"""The lowered networks compute what the CPU reference computes.

float32: every neuron's spikes are bit-identical to the reference's, for
onnxruntime on model.onnx and for the torch.export program. float16 (the
spiking core in float16, membrane potentials and the analog head and tail in
float32, the default): at least 99% of the spikes of every layer agree, and
so does the argmax of the output rates, for every one of the 450 digits test
samples, near ties included.
"""

from __future__ import annotations

import pytest
import torch

import snnc

from tests.backends.lynxi.conftest import ENGINES


def _outputs(art, compiled, engine) -> dict[str, torch.Tensor]:
    names = [s["name"] for s in art.manifest["interface"]["outputs"]]
    (x_spec,) = art.manifest["interface"]["inputs"]
    dtype = {"float32": torch.float32, "float16": torch.float16}[x_spec["dtype"]]
    return dict(zip(names, ENGINES[engine](art.path, [compiled.x.to(dtype)])))


@pytest.mark.parametrize("engine", ["onnx", "torch"])
@pytest.mark.parametrize("net,variant", [("digits", "raw"), ("resnet", "raw"), ("digits", "lynxi")])
def test_float32_spikes_equal_the_reference_exactly(compiled, net, variant, engine):
    ref = compiled.reference(net, variant)
    out = _outputs(compiled.artifact(net, variant, "f32"), compiled, engine)
    spikes = [k for k in ref if k.startswith("spk_")]
    assert len(spikes) >= 2
    for k in spikes:
        got = out[k].reshape(ref[k].shape)  # [T*N, *] -> [T, N, *]
        assert got.dtype == torch.float32
        assert 0.01 < float(ref[k].mean()) < 0.99, f"{k}: the reference barely fires; the test would be weak"
        assert torch.equal(got, ref[k]), f"{k}: {int((got != ref[k]).sum())} spikes differ"
    # the analog readout: the exported program runs the same torch kernels; onnxruntime has its own GEMM
    got, want = out["out"].reshape(ref["out"].shape), ref["out"]
    if engine == "torch":
        assert torch.equal(got, want)
    else:
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)
    assert torch.equal(got.mean(0).argmax(-1), want.mean(0).argmax(-1))


def _agreement(out, ref) -> dict[str, float]:
    """Per neuron: the fraction of its spikes (over T, N and features) equal to the reference's."""
    return {k: float((out[k].float().reshape(ref[k].shape) == ref[k]).float().mean())
            for k in ref if k.startswith("spk_")}


@pytest.mark.parametrize("engine", ["onnx", "torch"])
@pytest.mark.parametrize("net,variant", [("digits", "raw"), ("resnet", "raw"), ("resnet", "lynxi")])
def test_float16_agrees_on_spikes_and_the_argmax_of_every_sample(compiled, net, variant, engine):
    ref = compiled.reference(net, variant)
    art = compiled.artifact(net, variant, "f16")
    m = art.manifest
    assert (m["dtype"], m["state_dtype"], m["analog_dtype"]) == ("float16", "float32", "float32")
    out = _outputs(art, compiled, engine)
    assert all(out[k].dtype == torch.float16 for k in ref if k.startswith("spk_"))  # the spiking core
    agree = _agreement(out, ref)
    assert min(agree.values()) >= 0.99, agree
    assert min(agree.values()) < 1.0, "float16 changed no spike at all: is the core really float16?"
    assert out["out"].dtype == torch.float32  # the readout, after the last neuron
    rate, want = out["out"].reshape(ref["out"].shape).mean(0), ref["out"].mean(0)
    assert rate.shape == (compiled.x.shape[0], 10)
    bad = (rate.argmax(-1) != want.argmax(-1)).nonzero().flatten()
    top2 = want.topk(2, -1).values
    margins = (top2[bad, 0] - top2[bad, 1]).tolist()
    assert not len(bad), f"argmax differs for samples {bad.tolist()} (reference top-2 margins {margins})"
    if net == "resnet":  # it has near ties (reference top-2 margin 0.0023): one flip would fail this test
        assert float((top2[:, 0] - top2[:, 1]).min()) < 0.01


def test_all_float16_is_an_option(compiled, tmp_path):
    """state_dtype=f16, analog_dtype=f16: the ONNX interface and weights are float16, and arithmetic rounds to
    float16 after each op (spikes still >= 99% equal; the argmax of near ties is not guaranteed, which is why
    float32 state and head/tail are the default)."""
    import onnx

    from tests.backends.lynxi.conftest import T

    g, x = compiled.graph("resnet", "lynxi"), compiled.x
    art = snnc.compile(g, "lynxi", tmp_path / "all16", time_steps=T, batch_size=x.shape[0], dtype="f16",
                       state_dtype="f16", analog_dtype="float16")
    model = onnx.load(str(art.path / "model.onnx"))
    io = {v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}
    weights = {t.data_type for t in model.graph.initializer if len(t.dims) >= 1 and t.data_type != onnx.TensorProto.INT64}
    assert io == weights == {onnx.TensorProto.FLOAT16}
    assert {s["dtype"] for s in [*art.manifest["interface"]["inputs"], *art.manifest["interface"]["outputs"]]} \
        == {"float16"}
    out = _outputs(art, compiled, "onnx")
    agree = _agreement(out, compiled.reference("resnet", "lynxi"))
    assert 0.99 <= min(agree.values()) < 1.0, agree
