"""The event-driven conv kernel for spike inputs, and Session(event_conv=True).

The kernel is checked against F.conv2d; sessions with the option must keep run == step ==
chunked exact, be batch invariant, and agree with the default (dense) runtime up to rounding.
"""

import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import snnc
from snnc.core.errors import LoweringError
from snnc.ir import ops
from snnc.runtime import Session, event_conv, native
from snnc.runtime import plan as planning
from tests.runtime.conftest import to_lif

pytestmark = pytest.mark.skipif(not native.available(), reason="no C compiler for the native kernels")


def _spikes(shape, density, amp, seed, channels_last=False):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(shape, generator=g) < density).float() * amp
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


# (batch, C_in, H, W, C_out, kernel, stride, padding, dilation, density, channels_last, bias)
CASES = [
    (2, 5, 7, 9, 13, 3, 1, 1, 1, 0.2, True, True),
    (3, 70, 8, 8, 100, 3, 2, 0, 1, 0.15, True, True),
    (2, 300, 5, 6, 72, 3, 1, 1, 1, 0.3, False, True),  # more input channels than one channel block
    (2, 9, 9, 7, 40, 3, 1, 2, 2, 0.35, False, False),
    (1, 16, 6, 6, 200, 1, 1, 0, 1, 0.5, True, True),
    (2, 3, 11, 10, 8, (5, 3), (2, 1), (2, 0), 1, 0.2, True, True),
    (2, 6, 5, 5, 33, 3, 1, 1, 1, 0.0, True, True),  # no events: bias only
    (2, 6, 5, 5, 17, 3, 1, 1, 1, 1.0, False, True),  # all events
]


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_kernel_matches_conv2d(case):
    b, c, h, w, co, k, s, p, d, dens, cl, has_bias = case
    k = k if isinstance(k, tuple) else (k, k)
    amp = 0.8125
    x = _spikes((b, c, h, w), dens, amp, seed=c + co, channels_last=cl)
    g = torch.Generator().manual_seed(co)
    wt = torch.randn(co, c, *k, generator=g) * 0.2
    bias = torch.randn(co, generator=g) if has_bias else None
    s, p, d = (s if isinstance(s, tuple) else (s, s)), (p if isinstance(p, tuple) else (p, p)), (d, d)
    packed = event_conv.pack(wt, bias, amp, s, p, d)
    y = event_conv.conv2d(x, packed, channels_last=cl)
    ref = F.conv2d(x, wt, bias, s, p, d)
    assert y.shape == ref.shape
    assert y.is_contiguous(memory_format=torch.channels_last if cl else torch.contiguous_format)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("rows,fin,fout,density", [(7, 300, 10, 0.2), (130, 40, 70, 0.05), (3, 8, 1, 1.0)])
def test_event_linear_equals_the_dense_linear_to_rounding(rows, fin, fout, density):
    """A Linear on spikes runs on the same kernel as the 1x1 conv of a 1x1 image (runtime/executor.py)."""
    g = torch.Generator().manual_seed(rows)
    w, b = torch.randn(fout, fin, generator=g), torch.randn(fout, generator=g)
    x = _spikes((rows, fin), density, 0.75, rows)
    packed = event_conv.pack(w[:, :, None, None], b, 0.75, (1, 1), (0, 0), (1, 1))
    y = event_conv.conv2d(x[:, :, None, None], packed, channels_last=False)[:, :, 0, 0]
    torch.testing.assert_close(y, F.linear(x, w, b), atol=1e-4, rtol=1e-5)
    x[0, 0] = 0.5  # neither 0 nor the amplitude
    with pytest.raises(ValueError, match="neither 0 nor"):
        event_conv.conv2d(x[:, :, None, None], packed, channels_last=False)


@pytest.mark.parametrize("channels_last", [False, True])
def test_multi_level_inputs_equal_the_dense_conv_to_rounding(channels_last):
    """Average-pooled spikes (k a / 4): each element is listed as k events of a / 4."""
    g = torch.Generator().manual_seed(5)
    a = 0.7
    x = F.avg_pool2d((torch.rand(3, 300, 8, 10, generator=g) < 0.3).float() * a, 2)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    unit = float(torch.tensor(a, dtype=torch.float32) * 0.25)
    assert set(torch.unique(x / unit).round().tolist()) == {0.0, 1.0, 2.0, 3.0, 4.0}
    w, b = torch.randn(20, 300, 3, 3, generator=g), torch.randn(20, generator=g)
    packed = event_conv.pack(w, b, unit, (1, 1), (1, 1), (1, 1))
    y = event_conv.conv2d(x, packed, channels_last=channels_last, levels=4)
    torch.testing.assert_close(y, F.conv2d(x, w, b, 1, 1), atol=2e-4, rtol=1e-5)
    # the levels are not a decoration: listed as two-valued, the same input is an error
    with pytest.raises(ValueError, match="neither 0 nor"):
        event_conv.conv2d(x, packed, channels_last=channels_last)
    x[tuple(x.nonzero()[0])] = unit * 1.5  # off the grid
    with pytest.raises(ValueError, match="multiple 1..4"):
        event_conv.conv2d(x, packed, channels_last=channels_last, levels=4)


def test_kernel_rejects_values_other_than_zero_or_the_amplitude():
    x = _spikes((2, 8, 5, 5), 0.3, 1.0, seed=1)
    packed = event_conv.pack(torch.randn(4, 8, 3, 3), None, 1.0, (1, 1), (1, 1), (1, 1))
    event_conv.conv2d(x, packed, channels_last=False)  # fine
    for bad in (0.5, float("nan"), 2.0):
        xb = x.clone()
        xb[1, 3, 2, 2] = bad
        with pytest.raises(ValueError, match="neither 0 nor"):
            event_conv.conv2d(xb, packed, channels_last=False)


def test_kernel_is_deterministic_whatever_the_batch_threads_and_blocking(monkeypatch):
    x = _spikes((6, 300, 6, 6), 0.2, 1.0, seed=2, channels_last=True)
    packed = event_conv.pack(torch.randn(70, 300, 3, 3), torch.randn(70), 1.0, (1, 1), (1, 1), (1, 1))
    y = event_conv.conv2d(x, packed, channels_last=True)
    for i in (0, 5):
        assert torch.equal(event_conv.conv2d(x[i:i + 1], packed, channels_last=True)[0], y[i])
    assert torch.equal(event_conv.conv2d(x.contiguous(), packed, channels_last=False), y)
    threads = torch.get_num_threads()
    monkeypatch.setattr(event_conv, "CHANNEL_BLOCK", 64)
    monkeypatch.setattr(event_conv, "PIXEL_GROUP", 7)
    try:
        torch.set_num_threads(1)
        assert torch.equal(event_conv.conv2d(x, packed, channels_last=True), y)
    finally:
        torch.set_num_threads(threads)


class EventNet(nn.Module):
    """Convs straight after a neuron and after a max pool; C_out not a multiple of the 64-float tile."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 70, 3, padding=1), nn.BatchNorm2d(70), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(70, 13, 3, padding=1, stride=2), nn.ReLU())
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(13 * 2 * 2, 5))

    def forward(self, x):
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def event_net_graph():
    from tests.conftest import randomize_bn

    torch.manual_seed(7)
    return snnc.convert(randomize_bn(EventNet()), torch.rand(64, 2, 8, 8), "99%", show_progress=False)


def _plan(s: Session) -> planning.Plan:
    """The plan of a run with constant inputs and no probes."""
    return s._interp.plan(frozenset(i.name for i in s.graph.inputs), frozenset(o.name for o in s.graph.outputs))


def _event_convs(s: Session, x) -> list[planning.Node]:
    return [n for n in _plan(s).nodes if n.spike_amplitude is not None]


def _if_variant(graph, **kw):
    g = graph.copy()
    for op in list(g):
        if isinstance(op, ops.IF):
            g.replace_op(ops.IF(name=op.name, inputs=op.inputs, loc=op.loc, v_threshold=op.v_threshold, **kw))
    return g


NETS = {
    "if": lambda g: g,
    "if-hard": lambda g: _if_variant(g, reset=ops.HardReset(v_reset=0.0)),
    "if-noreset-gt": lambda g: _if_variant(g, reset=ops.NoReset(), fire="gt"),
    "lif-hard": lambda g: to_lif(g, tau=2.0, reset=ops.HardReset(v_reset=0.0)),
    "lif-soft-gt-nodecay": lambda g: to_lif(g, tau=1.5, decay_input=False, reset=ops.SoftReset(), fire="gt"),
    "lif-noreset": lambda g: to_lif(g, tau=3.0, reset=ops.NoReset()),
}


@pytest.mark.parametrize("net", list(NETS))
def test_run_equals_steps_equals_chunks_with_event_conv(event_net_graph, net):
    """Every neuron kind/reset feeds the event kernel (which checks its inputs are 0 or the amplitude)."""
    graph = NETS[net](event_net_graph)
    s = Session(graph, progress=False, event_conv=True)
    T = 6
    x = torch.rand(3, 2, 8, 8, generator=torch.Generator().manual_seed(1))
    marked = _event_convs(s, x)  # both convs after the first neuron, and the head's Linear
    assert [type(n.op).__name__ for n in marked] == ["Conv2d", "Conv2d", "Linear"]
    full = s.run(x, T)
    assert bool((full != 0).any())
    for chunk in (1, 4):
        assert torch.equal(s.run(x, T, chunk=chunk), full)
    s.reset()
    assert torch.equal(torch.stack([s.step(x) for _ in range(T)]), full)
    # batch invariance: each sample alone gives its row of the batched run
    for i in (0, 2):
        assert torch.equal(s.run(x[i:i + 1], T), full[:, i:i + 1])
    # the dense runtime computes the same up to rounding
    dense = Session(graph, progress=False).run(x, T)
    assert (full.mean(0).argmax(-1) == dense.mean(0).argmax(-1)).float().mean() >= 2 / 3
    torch.testing.assert_close(full.mean(0), dense.mean(0), atol=0.35, rtol=0.0)


def test_channels_last_and_spike_sequences(event_net_graph):
    s = Session(event_net_graph, progress=False, event_conv=True, channels_last=True)
    x = (torch.rand(5, 2, 2, 8, 8, generator=torch.Generator().manual_seed(3)) < 0.4).float()
    full = s.run(x)
    assert torch.equal(s.run(x, chunk=2), full)
    s.reset()
    assert torch.equal(torch.stack([s.step(x[t]) for t in range(5)]), full)


def _plan_of(model: nn.Module, in_shape, pipeline: str | None = None) -> planning.Plan:
    from tests.conftest import randomize_bn

    if pipeline is None:
        graph = snnc.convert(randomize_bn(model), torch.rand(16, *in_shape), "99%", show_progress=False)
    else:
        from snnc.frontends import trace
        from snnc.passes import conversion_context, convert_graph

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # relu-to-if: a max pooling left over spikes
            graph = convert_graph(trace(randomize_bn(model), in_shape),
                                  conversion_context(torch.rand(16, *in_shape), "99%", show_progress=False),
                                  pipeline=pipeline)
    return _plan(Session(graph, progress=False, event_conv=True))


# a MaxPool2d right after a neuron: the conversion (issue 19) no longer leaves one, so build it without
# reorder-maxpool and running-maxpool
_MAX_AFTER_NEURON = "fuse-bn,calibrate,normalize,to-time-layout,relu-to-if,dce"


def test_static_analysis_marks_only_two_valued_inputs():
    """Average pooling and per-channel scales make a spike tensor analog; the graph input is never taken."""
    avg = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(4, 4, 3), nn.ReLU(),
                        nn.Flatten(), nn.Linear(4, 2))
    plan = _plan_of(avg, (1, 6, 6))
    marked = [n for n in plan.nodes if n.spike_amplitude is not None]
    # the conv after the 2x2 average pool takes five levels k a / 4; the Linear after the second neuron two
    assert [(type(n.op).__name__, n.spike_levels) for n in marked] == [("Conv2d", 4), ("Linear", 1)]
    pooled = next(n for n in plan.nodes if n.neuron is not None)
    assert pooled.neuron.pool == "avg" and marked[0].spike_amplitude == float(torch.tensor(pooled.neuron.post) / 4)
    per_channel = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                                nn.BatchNorm2d(4), nn.Conv2d(4, 2, 3))  # BN after a linear layer: folded, analog
    assert all(n.spike_amplitude is None or isinstance(n.op, ops.Conv2d)
               for n in _plan_of(per_channel, (1, 6, 6)).nodes)
    mx = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                       nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
    plan = _plan_of(mx, (1, 6, 6), _MAX_AFTER_NEURON)
    marked = [n for n in plan.nodes if n.spike_amplitude is not None]
    # the conv after the max pool, and the Linear after the second neuron (through the flatten)
    assert [type(n.op).__name__ for n in marked] == ["Conv2d", "Linear"]
    neuron = next(n for n in plan.nodes if n.neuron is not None)
    assert neuron.neuron.pool == "max" and marked[0].spike_amplitude == float(torch.tensor(neuron.neuron.post))


def test_a_wrong_amplitude_is_an_error_not_a_wrong_answer(event_net_graph):
    s = Session(event_net_graph, progress=False, event_conv=True)
    x = torch.rand(2, 2, 8, 8)
    node = next(n for n in _plan(s).nodes if n.spike_amplitude is not None)
    node.spike_amplitude *= 1.5  # as if the static analysis were wrong
    with pytest.raises(LoweringError, match="neither 0 nor"):
        s.run(x, 4)


def test_digits_demo_net_same_outputs_and_spikes():
    """The demo net pools by averaging: its conv and linear take five-level inputs on the event kernel.
    With max pooling instead, two-valued ones. Either way only rounding separates the spikes.
    (The demo architecture on the digits data, seeded random weights: training takes too long here.)"""
    from snnc.core import datasets
    from snnc.demo import DigitsCNN
    from tests.conftest import randomize_bn

    data = datasets.digits()
    torch.manual_seed(0)
    model = randomize_bn(DigitsCNN()).eval()
    x, T = data.x_test[:64], 16
    graph = snnc.convert(model, data.x_train[:256], "99.9%", show_progress=False)
    on, off = Session(graph, progress=False, event_conv=True), Session(graph, progress=False, event_conv=False)
    assert [(type(n.op).__name__, n.spike_levels) for n in _event_convs(on, x)] == [("Conv2d", 4), ("Linear", 4)]
    _same_up_to_rounding(graph, on, off, x, T, "avg pool")

    import copy

    mx = copy.deepcopy(model)
    for i, m in enumerate(mx.features):
        if isinstance(m, nn.AvgPool2d):
            mx.features[i] = nn.MaxPool2d(2)
    graph = snnc.convert(mx, data.x_train[:256], "99.9%", show_progress=False)
    on, off = Session(graph, progress=False, event_conv=True), Session(graph, progress=False, event_conv=False)
    assert [(type(n.op).__name__, n.spike_levels) for n in _event_convs(on, x)] == [("Conv2d", 1), ("Linear", 1)]
    _same_up_to_rounding(graph, on, off, x, T, "max pool")


def _same_up_to_rounding(graph, on, off, x, T, what):
    neurons = [op.name for op in graph if isinstance(op, ops.NeuronOp)]
    r_on, r_off = on.observe(x, T, probes=neurons, stats=False), off.observe(x, T, probes=neurons, stats=False)
    total = sum(r_off.probes[n].numel() for n in neurons)
    differ = sum(int((r_on.probes[n] != r_off.probes[n]).sum()) for n in neurons)
    fired = [float((r_off.probes[n] != 0).float().mean()) for n in neurons]
    print(f"digits ({what}): {differ} of {total} spikes differ; firing rates {fired}")
    assert min(fired) > 0.01  # both layers spike: the comparison is not vacuous
    assert differ <= total * 1e-3
    agree = (r_on.outputs["out"].mean(0).argmax(-1) == r_off.outputs["out"].mean(0).argmax(-1)).float().mean()
    assert agree >= 0.98


def test_auto_takes_only_convs_where_the_kernel_pays():
    """event_conv="auto" (the Session default) leaves convs and linears with fewer than 64 output channels
    dense (the kernel's register tile would idle); True takes every conv and linear on spikes."""
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 64, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(64, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 36, 64), nn.ReLU(),
                          nn.Linear(64, 3))
    torch.manual_seed(0)
    graph = snnc.convert(model, torch.rand(16, 1, 6, 6), "99%", show_progress=False)
    shapes = {}
    for mode in ("auto", True):
        s = Session(graph, progress=False, event_conv=mode)
        shapes[mode] = [tuple(graph.params[n.op.weight].shape[:2]) for n in _event_convs(s, None)]
    assert shapes[True] == [(64, 8, 3, 3)[:2], (16, 64), (64, 576), (3, 64)]
    assert shapes["auto"] == [(64, 8), (64, 576)]
    x = torch.rand(4, 1, 6, 6)
    on, auto = Session(graph, progress=False, event_conv=True), Session(graph, progress=False)
    torch.testing.assert_close(auto.run(x, 8), on.run(x, 8), rtol=1e-5, atol=1e-5)
    with pytest.raises(Exception, match="event_conv must be"):
        Session(graph, progress=False, event_conv="always")


# (C_out, C_in, H, W, padding): 128-float tiles (AVX-512 builds) or 64/8-float ones, and a narrow conv; then
# convs whose kernel rows serve runs of 4 and 2 neighbouring pixels (64 x 64 and 16 x 48, event_conv.c), with
# rows of 9 (a run, a pair, borders) and, without padding, every pixel interior (a run never crosses a row)
@pytest.mark.parametrize("cout,c,h,w,pad", [(200, 20, 5, 5, 1), (24, 20, 5, 5, 1), (64, 64, 6, 11, 1),
                                             (48, 16, 7, 9, 0), (16, 8, 4, 7, 1)])
def test_kernel_sums_each_output_in_the_documented_order(cout, c, h, w, pad):
    """Every output is 0 + its event rows in (ky, kx, c) order, then + bias, in float32: the same bits whatever
    the tile width and the vector width the library was built with (runtime/event_conv.py)."""
    b, amp = 2, 0.8125
    x = _spikes((b, c, h, w), 0.3, amp, seed=7)
    g = torch.Generator().manual_seed(8)
    wt, bias = torch.randn(cout, c, 3, 3, generator=g) * 0.2, torch.randn(cout, generator=g)
    packed = event_conv.pack(wt, bias, amp, (1, 1), (pad, pad), (1, 1))
    rows = wt * torch.tensor(amp)  # W' = a * W in float32, as pack() scales it
    xp = F.pad(x, (pad,) * 4)
    ho, wo = h + 2 * pad - 2, w + 2 * pad - 2
    acc = torch.zeros(b, ho, wo, cout)
    for ky in range(3):
        for kx in range(3):
            for ch in range(c):
                hit = (xp[:, ch, ky:ky + ho, kx:kx + wo] != 0)[..., None]
                acc = acc + torch.where(hit, rows[:, ch, ky, kx], torch.zeros(()))
    want = (acc + bias).permute(0, 3, 1, 2)
    assert torch.equal(event_conv.conv2d(x, packed, channels_last=True), want)
    assert torch.equal(event_conv.conv2d(x, packed, channels_last=False), want)
