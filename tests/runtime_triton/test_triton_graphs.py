"""CUDA graph capture in the triton runtime: the decision logic (no CUDA needed) and, on a GPU, replay."""

import pytest
import torch

pytest.importorskip("triton", reason="triton is not installed (Linux wheels only); the Triton kernels cannot be tested")

import snnc  # noqa: E402
from snnc.runtime import Session  # noqa: E402
from snnc.runtime.triton import graphs  # noqa: E402
from snnc.runtime.triton.graphs import Action, CaptureKey, GraphCache, RunRequest, decide  # noqa: E402


def _key(batch=4, T=8, window=None, dtype=torch.float32):
    return CaptureKey((("x", (batch, 1, 8, 8)),), T, window, 1 << 28, dtype, "cuda:0")


def _request(**kw):
    base = dict(device_type="cuda", batch=4, fresh_state=True, constant_inputs=True)
    return RunRequest(**{**base, **kw})


def _entry(tag):
    return graphs.Captured(graph=tag, inputs={}, outputs={}, state={}, window=None, T=8)


def test_first_call_captures_then_replays():
    cache = GraphCache(2)
    assert decide(_request(), _key(), cache, enabled=True, max_batch=32).action is Action.EAGER_THEN_CAPTURE
    cache.put(_key(), _entry("g"))
    assert decide(_request(), _key(), cache, enabled=True, max_batch=32).action is Action.REPLAY
    # a new batch size, T, window or dtype is another key: captured anew
    for other in (_key(batch=5), _key(T=9), _key(window=4), _key(dtype=torch.float16)):
        assert decide(_request(), other, cache, enabled=True, max_batch=32).action is Action.EAGER_THEN_CAPTURE


@pytest.mark.parametrize(
    "request_kw, enabled, max_batch, reason",
    [
        ({}, False, 32, "cuda_graphs is off"),
        ({"device_type": "cpu"}, True, 32, "CUDA"),
        ({"batch": 64}, True, 32, "batch 64"),
        ({"fresh_state": False}, True, 32, "reset=False"),
        ({"constant_inputs": False}, True, 32, "sequences"),
        ({"probes": True}, True, 32, "probes"),
        ({"stats": True}, True, 32, "statistics"),
        ({"one_step": True}, True, 32, "step"),
    ],
    ids=["disabled", "cpu", "big-batch", "continued-state", "sequence", "probes", "stats", "step"],
)
def test_runs_that_stay_eager(request_kw, enabled, max_batch, reason):
    cache = GraphCache(2)
    cache.put(_key(), _entry("g"))  # even with a graph for the key
    d = decide(_request(**request_kw), _key(), cache, enabled=enabled, max_batch=max_batch)
    assert d.action is Action.EAGER and reason in d.reason


def test_cache_drops_least_recently_used():
    cache = GraphCache(2)
    cache.put(_key(1), _entry("a"))
    cache.put(_key(2), _entry("b"))
    assert cache.get(_key(1)).graph == "a"  # now most recent
    cache.put(_key(3), _entry("c"))
    assert _key(2) not in cache and _key(1) in cache and _key(3) in cache and len(cache) == 2
    cache.invalidate()
    assert len(cache) == 0
    off = GraphCache(0)
    off.put(_key(), _entry("x"))
    assert len(off) == 0


def _session(small_cnn, **options):
    g = snnc.convert(small_cnn, torch.rand(16, 1, 8, 8), "99%")
    return Session(g, neuron_impl="triton", triton_options=options), g


def test_session_builds_requests_and_keys(small_cnn):
    s, _ = _session(small_cnn)
    interp = s._interp
    x = torch.rand(3, 1, 8, 8)
    req, key = interp._request({"x": x}, 5, {"encoder": None})
    assert req == RunRequest(device_type="cpu", batch=3, fresh_state=True, constant_inputs=True)
    assert key.T == 5 and key.inputs == (("x", (3, 1, 8, 8)),) and key.dtype == torch.float32
    assert interp._request({"x": x}, 5, {"encoder": None})[1] == key
    assert interp._request({"x": x[:2]}, 5, {"encoder": None})[1] != key  # batch change: another graph
    seq, key_seq = interp._request({"x": torch.rand(5, 3, 1, 8, 8)}, 5, {"encoder": None})
    assert not seq.constant_inputs and key_seq is None
    poisson, _ = interp._request({"x": x}, 5, {"encoder": "poisson"})
    assert not poisson.constant_inputs
    s.run(x, 4)
    assert interp.last_decision.action is Action.EAGER and "CUDA" in interp.last_decision.reason
    assert interp._request({"x": x}, 5, {"encoder": None})[0].fresh_state is False  # state left by the run
    s.reset()
    assert interp._request({"x": x}, 5, {"encoder": None})[0].fresh_state is True


def test_options_are_validated(small_cnn):
    with pytest.raises(Exception, match="fused_linear"):
        _session(small_cnn, fused_linear="sometimes")
    with pytest.raises(Exception, match="graph_max_batch"):
        _session(small_cnn, graph_max_batch=-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_replay_equals_eager_on_cuda(small_cnn):
    s, g = _session(small_cnn)
    eager, _ = _session(small_cnn, cuda_graphs=False)
    xs = [torch.rand(4, 1, 8, 8) for _ in range(3)]
    outs = []
    for x in xs:
        outs.append(s.run(x, 6))
    assert s._interp.last_decision.action is Action.REPLAY
    assert len(s._interp.graphs) == 1 and s._interp.graphs.get(next(iter(s._interp.graphs._entries))).replays == 2
    for x, out in zip(xs, outs):
        assert torch.equal(out, eager.run(x, 6))
    # state after a replay is the run's final state, and a continued run equals the eager one
    cont = s.run(xs[0], 3, reset=False)
    assert s._interp.last_decision.action is Action.EAGER
    eager.run(xs[2], 6)  # the last replayed run
    assert torch.equal(cont, eager.run(xs[0], 3, reset=False))
    # another batch size is captured separately
    s.run(torch.rand(2, 1, 8, 8), 6)
    s.run(torch.rand(2, 1, 8, 8), 6)
    assert s._interp.last_decision.action is Action.REPLAY and len(s._interp.graphs) == 2
