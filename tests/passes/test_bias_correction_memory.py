"""Bias correction simulates the calibration images in chunks that fit memory (issue 19: at T=256 it
refused on an 18.6 GB estimate because it ran every image for every step at once)."""

import pytest
import torch

import snnc
from snnc.core.errors import ResourceError
from snnc.ir import ops
from snnc.passes import bias_correction
from snnc.runtime import memory
from snnc.runtime.interpreter import Interpreter

T = 16


def _biases(graph) -> dict[str, torch.Tensor]:
    """Layer name -> its bias (the parameter names change when bias correction adds its own)."""
    return {op.name: graph.params[op.bias] for op in graph if isinstance(op, (ops.Conv2d, ops.Linear)) and op.bias}


def _convert(model, x, **kw):
    return snnc.convert(model, x, "99.9%", time_steps=T, bias_correction=True, show_progress=False, **kw)


@pytest.fixture
def calib():
    return torch.rand(48, 1, 8, 8, generator=torch.Generator().manual_seed(3))


def test_chunk_size_follows_the_budget_and_the_limit(small_cnn, calib, monkeypatch):
    monkeypatch.delenv(memory.ENV_VAR, raising=False)
    interp = Interpreter(snnc.convert(small_cnn, calib, "99.9%"))
    one = memory.constant_input_estimate(interp, 1, T, observe=True)
    ten = memory.constant_input_estimate(interp, 10, T, observe=True)
    per = one.total - one.params
    assert ten.total - ten.params == 10 * per  # linear in the batch, all T steps in one window
    assert bias_correction.chunk_size(interp, T, 256, budget=10 * per) == 10
    assert bias_correction.chunk_size(interp, T, 256, budget=1) == 1  # one image over the budget: still 1
    assert bias_correction.chunk_size(interp, T, 7, budget=10 * per) == 7  # never more than the batch
    monkeypatch.setenv(memory.ENV_VAR, str(one.params + 3 * per + per // 2))  # the limit counts the parameters
    assert bias_correction.chunk_size(interp, T, 256, budget=1 << 40) == 3
    monkeypatch.setenv(memory.ENV_VAR, str(one.params + per // 2))
    assert memory.largest_batch(interp, T, observe=True) == 0


def test_chunked_means_equal_the_whole_batch(small_cnn, calib, monkeypatch):
    """Sum per chunk, divide once: the same correction as one run over every image, up to float rounding."""
    monkeypatch.delenv(memory.ENV_VAR, raising=False)
    plain = snnc.convert(small_cnn, calib, "99.9%", show_progress=False)
    whole = _convert(small_cnn, calib)
    monkeypatch.setattr(bias_correction, "CHUNK_BUDGET", 1)  # one image at a time
    chunked = _convert(small_cnn, calib)
    a, b, p = _biases(whole), _biases(chunked), _biases(plain)
    assert a.keys() == b.keys() and a
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6)
    # the correction did something that the chunks reproduce (not two unchanged graphs compared)
    assert p.keys() == a.keys() and any(not torch.allclose(a[k], p[k], atol=1e-4) for k in a)

    # the means themselves, from uneven chunks (48 images in chunks of 5): equal to float64 rounding
    g = whole
    names = {op.name for op in g if op.kind == "scale"}
    full = bias_correction._means(g, calib, names, T, 2, 256, budget=1 << 40)
    interp = Interpreter(g)
    per = memory.constant_input_estimate(interp, 1, T, observe=True).total - interp_params(interp)
    parts = bias_correction._means(g, calib, names, T, 2, 256, budget=5 * per)
    assert bias_correction.chunk_size(interp, T, 256, budget=5 * per) == 5
    for n in names:
        torch.testing.assert_close(parts[n], full[n], rtol=1e-12, atol=1e-12)
    # each layer's correction runs only the layers before it: the same means as the whole graph
    for n in names:
        sub = bias_correction._prefix(g, n)
        assert len(sub) < len(g) and [o.inputs[0] for o in sub.outputs] == [n]
        torch.testing.assert_close(bias_correction._means(sub, calib, {n}, T, 2, 256)[n], full[n],
                                   rtol=1e-12, atol=1e-12)


def interp_params(interp) -> int:
    return sum(t.numel() * t.element_size() for t in interp.params.values())


def test_a_small_memory_limit_now_converts_instead_of_refusing(small_cnn, calib, monkeypatch):
    monkeypatch.delenv(memory.ENV_VAR, raising=False)
    want = _convert(small_cnn, calib)
    interp = Interpreter(snnc.convert(small_cnn, calib, "99.9%", show_progress=False))
    one = memory.constant_input_estimate(interp, 1, T, observe=True)
    per = one.total - one.params
    limit = one.params + 4 * per  # 4 images fit; all 48 at once do not
    monkeypatch.setenv(memory.ENV_VAR, str(limit))
    # what bias correction did before: one run over the whole calibration batch, refused before any work
    with pytest.raises(ResourceError, match="more than the SNNC_MAX_MEMORY"):
        interp.run({interp.graph.inputs[0].name: calib}, T, observe=lambda op, v: None)
    got = _convert(small_cnn, calib)
    assert got.meta["conversion"]["bias_correction"] is True
    for k, v in _biases(want).items():
        torch.testing.assert_close(_biases(got)[k], v, rtol=1e-5, atol=1e-6)


def test_one_image_that_does_not_fit_is_still_refused(small_cnn, calib, monkeypatch):
    big_T = 2048
    interp = Interpreter(snnc.convert(small_cnn, calib, "99.9%", show_progress=False))
    one = memory.constant_input_estimate(interp, 1, big_T, observe=True)
    monkeypatch.setenv(memory.ENV_VAR, str(one.total // 2))  # the ANN runs of calibration fit; one SNN image not
    with pytest.raises(ResourceError) as e:
        snnc.convert(small_cnn, calib, "99.9%", time_steps=big_T, bias_correction=True, show_progress=False)
    msg = e.value.message
    assert msg.startswith("bias correction of %") and f"T={big_T}" in msg and "1 calibration image" in msg
    assert "\n" not in msg and "time_steps" in e.value.hint
