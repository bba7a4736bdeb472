"""run == step-by-step == chunked, bit for bit, for IF and LIF networks and every input kind."""

import pytest
import torch

from snnc.ir import ops
from snnc.runtime import Latency, Session, native
from tests.runtime.conftest import to_lif

T = 7


def _nets(tiny_vgg_graph, small_cnn_graph):
    return {
        "vgg-if": tiny_vgg_graph,
        "vgg-lif-hard": to_lif(tiny_vgg_graph, tau=2.0, reset=ops.HardReset(v_reset=0.0)),
        "cnn-lif-soft-gt": to_lif(small_cnn_graph, tau=1.5, decay_input=False, reset=ops.SoftReset(), fire="gt"),
        "cnn-if": small_cnn_graph,
    }


def _inputs(graph, n, kind):
    shape = graph.inputs[0].type.features
    g = torch.Generator().manual_seed(11)
    x = torch.rand(n, *shape, generator=g)
    if kind == "constant":
        return x, {}
    if kind == "sequence":
        return torch.rand(T, n, *shape, generator=g) * 1.5, {}
    if kind == "spikes":
        return (torch.rand(T, n, *shape, generator=g) < 0.3).float(), {}
    if kind == "poisson":
        return x, {"encoder": "poisson", "seed": 5}
    if kind == "latency":
        return x, {"encoder": Latency(window_steps=T)}
    if kind == "periodic":
        return (torch.rand(3, n, *shape, generator=g) < 0.4).float(), {"encoder": "periodic"}
    raise ValueError(kind)


def _steps(s: Session, x, kind, kw):
    s.reset()
    outs = []
    for t in range(T):
        xt = x[t] if kind in ("sequence", "spikes") else x
        outs.append(s.step(xt, **kw))
    return torch.stack(outs)


@pytest.mark.parametrize("net", ["vgg-if", "vgg-lif-hard", "cnn-lif-soft-gt", "cnn-if", "vgg-if-channels-last"])
@pytest.mark.parametrize("kind", ["constant", "sequence", "spikes", "poisson", "latency", "periodic"])
def test_run_equals_steps_equals_chunks(tiny_vgg_graph, small_cnn_graph, net, kind):
    graph = _nets(tiny_vgg_graph, small_cnn_graph)[net.replace("-channels-last", "")]
    s = Session(graph, progress=False, channels_last=net.endswith("channels-last"))
    for n in (1, 3):  # one sample exercises the small-batch padding of the kernels
        x, kw = _inputs(graph, n, kind)
        steps = T if kind not in ("sequence", "spikes") else None
        full = s.run(x, steps, **kw)
        assert full.shape[:2] == (T, n) and bool((full != 0).any())
        for chunk in (1, 3):
            assert torch.equal(s.run(x, steps, chunk=chunk, **kw), full), f"chunk={chunk}"
        assert torch.equal(_steps(s, x, kind, kw), full)


def test_constant_input_equals_the_explicit_sequence(tiny_vgg_graph):
    s = Session(tiny_vgg_graph, progress=False)
    x = torch.rand(4, 2, 8, 8)
    assert torch.equal(s.run(x, T), s.run(x.expand(T, *x.shape).clone()))


def test_native_kernel_equals_the_torch_definition(tiny_vgg_graph, monkeypatch):
    if not native.available():
        pytest.skip(f"no native kernel here: {native.why_unavailable()}")
    x = torch.rand(3, 2, 8, 8)
    for graph in (tiny_vgg_graph, to_lif(tiny_vgg_graph, tau=3.0, reset=ops.HardReset(v_reset=-0.1))):
        # the neuron kernels only: the event-driven conv/linear (which need the native library) round differently
        fast = Session(graph, progress=False, event_conv=False)
        assert fast._interp.native
        want = fast.observe(x, T, probes=[graph.outputs[0].name]).outputs
        monkeypatch.setattr(native, "available", lambda: False)
        slow = Session(graph, progress=False, event_conv=False)
        assert not slow._interp.native
        got = slow.observe(x, T).outputs
        monkeypatch.undo()
        assert all(torch.equal(want[k], got[k]) for k in want)


def test_reset_false_continues_the_stream(tiny_vgg_graph):
    s = Session(tiny_vgg_graph, progress=False)
    x = torch.rand(2, 2, 8, 8)
    whole = s.run(x, 6, encoder="poisson", seed=2)
    first = s.run(x, 4, encoder="poisson", seed=2)
    rest = s.run(x, 2, encoder="poisson", seed=2, reset=False)
    assert s.t == 6 and torch.equal(torch.cat([first, rest]), whole)


def test_snapshot_restore_replays_exactly(tiny_vgg_graph):
    s = Session(tiny_vgg_graph, progress=False)
    x = torch.rand(2, 2, 8, 8)
    s.run(x, 3)
    snap = s.snapshot()
    a = torch.stack([s.step(x, encoder="poisson", seed=9) for _ in range(3)])
    s.restore(snap)
    b = torch.stack([s.step(x, encoder="poisson", seed=9) for _ in range(3)])
    assert torch.equal(a, b) and s.t == 6
    s.reset()
    assert s.state == {} and s.t == 0
