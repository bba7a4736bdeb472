"""An event conv fused with the neuron it feeds, directly or through an Add (runtime/plan.py
`_fuse_conv_neurons`, event_conv.conv2d_neuron): the same bits as the conv, the Add and the neuron
kernel run one after another, for every neuron variant, tile width, stride and input kind."""

import itertools
from dataclasses import replace

import pytest
import torch
import torch.nn as nn

import snnc
from snnc.core.dynamics import Charge, FireCompare, ResetMode
from snnc.ir import ops
from snnc.runtime import Session, event_conv, native, neurons
from snnc.runtime import plan as planning

pytestmark = pytest.mark.skipif(not native.available(), reason="no C compiler for the native kernels")

CL = torch.channels_last


def _spikes(shape, density, amp, seed):
    g = torch.Generator().manual_seed(seed)
    return ((torch.rand(shape, generator=g) < density).float() * amp).contiguous(memory_format=CL)


def _neuron_op(charge: Charge, reset: ResetMode, compare: FireCompare) -> ops.NeuronOp:
    rst = {ResetMode.SOFT: ops.SoftReset(), ResetMode.HARD: ops.HardReset(v_reset=-0.25),
           ResetMode.NONE: ops.NoReset()}[reset]
    fire = "ge" if compare is FireCompare.GE else "gt"
    if charge is Charge.IF:
        return ops.IF(name="n", inputs=["x"], v_threshold=0.75, reset=rst, fire=fire)
    return ops.LIF(name="n", inputs=["x"], v_threshold=0.75, tau=1.75, reset=rst, fire=fire,
                   decay_input=charge is Charge.LIF)


VARIANTS = list(itertools.product(Charge, ResetMode, FireCompare))


@pytest.mark.parametrize("charge,reset,compare", VARIANTS, ids=[f"{c.name}-{r.name}-{f.name}" for c, r, f in VARIANTS])
@pytest.mark.parametrize("case", ["plain", "residual-strided-wide"])
def test_fused_kernel_is_bit_identical_to_conv_then_add_then_neuron(charge, reset, compare, case):
    op = _neuron_op(charge, reset, compare)
    assert op.to_params().charge is charge and op.to_params().reset is reset and op.to_params().compare is compare
    steps, n, cin, h = 3, 2, 11, 9
    cout, stride = (24, 1) if case == "plain" else (200, 2)  # 200: a 128- and a 64-float tile (AVX-512)
    amp = 0.8125
    x = _spikes((steps * n, cin, h, h), 0.3, amp, seed=cout)
    g = torch.Generator().manual_seed(5)
    packed = event_conv.pack(torch.randn(cout, cin, 3, 3, generator=g) * 0.4, torch.randn(cout, generator=g) * 0.2,
                             amp, (stride, stride), (1, 1), (1, 1))
    y = event_conv.conv2d(x, packed, channels_last=True)
    res = None
    if case != "plain":
        res = torch.randn(y.shape, generator=g).contiguous(memory_format=CL)
        y = y + res
    call = planning._call(op, pre=1.375, post=0.625)
    v0 = (torch.rand((n, *y.shape[1:]), generator=g) * 0.5).contiguous(memory_format=CL)
    want, v_want, _ = neurons.run(call, y.unflatten(0, (steps, n)), steps, v0.clone(), static=False)
    v = v0.clone()
    got, _ = event_conv.conv2d_neuron(x, packed, steps, neurons.event_neuron(call), v, residual=res)
    assert bool((want != 0).any()) and bool((want == 0).any())
    assert torch.equal(got.unflatten(0, (steps, n)), want)
    assert torch.equal(v, v_want)
    assert got.is_contiguous(memory_format=CL)
    # listed as it goes (one tile of 24 = 16 + 8 columns: the neuron and the listing in one pass, where the
    # CPU has AVX-512 VBMI2): the same spikes, potentials and the lists the next conv would make
    v = v0.clone()
    got, made = event_conv.conv2d_neuron(x, packed, steps, neurons.event_neuron(call), v, residual=res,
                                         list_output=True)
    assert torch.equal(got.unflatten(0, (steps, n)), want) and torch.equal(v, v_want)
    nxt = event_conv.pack(torch.ones(1, cout, 1, 1), None, 0.625, (1, 1), (0, 0), (1, 1))
    _, listed = event_conv._list_events(got, nxt, 1, False)
    assert torch.equal(made.bnd, listed.bnd)
    assert made.cb >= cout  # one channel block: each pixel's list is ev[off[q]:][:bnd[2q + 1]]
    for q in range(made.off.numel()):
        k = int(made.bnd[q * 2 + 1])
        assert torch.equal(made.ev[int(made.off[q]):][:k], listed.ev[int(listed.off[q]):][:k])


# (C_out, H = W, N, list, store): one tile; a 128 and a 64-float tile, listed from a scratch row; two threads'
# ranges of whole row pairs (16 x 16, 2 images: 512 pixels a step), lists only; two channel blocks of the lists
@pytest.mark.parametrize("cout,h,n,list_output,dense_output", [(24, 8, 2, False, True), (200, 8, 3, True, True),
                                                                (64, 16, 2, True, False), (300, 4, 5, True, False)])
def test_fused_kernel_runs_a_running_max_pool_with_the_bits_of_the_pool_kernel(cout, h, n, list_output, dense_output):
    steps, cin, amp = 3, 11, 0.8125
    x = _spikes((steps * n, cin, h, h), 0.3, amp, seed=cout)
    g = torch.Generator().manual_seed(5)
    packed = event_conv.pack(torch.randn(cout, cin, 3, 3, generator=g) * 0.4, torch.randn(cout, generator=g) * 0.2,
                             amp, (1, 1), (1, 1), (1, 1))
    y = event_conv.conv2d(x, packed, channels_last=True)
    sums0 = torch.randn((n, cout, h, h), generator=g).contiguous(memory_format=CL)  # a window before this one
    pooled, sums_want = native.running_max_pool2d_f32(y.unflatten(0, (steps, n)), sums0.clone())
    call = planning._call(_neuron_op(Charge.IF, ResetMode.SOFT, FireCompare.GE), pre=1.375, post=0.625)
    v0 = (torch.rand((n, cout, h // 2, h // 2), generator=g) * 0.5).contiguous(memory_format=CL)
    want, v_want, _ = neurons.run(call, pooled, steps, v0.clone(), static=False)
    assert bool((want != 0).any()) and bool((want == 0).any())
    v, sums = v0.clone(), sums0.clone()
    got, made = event_conv.conv2d_neuron(x, packed, steps, neurons.event_neuron(call), v, pool_sums=sums,
                                         list_output=list_output, dense_output=dense_output)
    assert torch.equal(v, v_want) and torch.equal(sums, sums_want)
    assert (got is None) != dense_output and (got is None or torch.equal(got.unflatten(0, (steps, n)), want))
    if list_output:  # the pooled spikes, listed as the next conv would list them
        nxt = event_conv.pack(torch.ones(1, cout, 1, 1), None, 0.625, (1, 1), (0, 0), (1, 1))
        _, listed = event_conv._list_events(want.flatten(0, 1).contiguous(memory_format=CL), nxt, 1, False)
        assert torch.equal(made.bnd, listed.bnd)
    with pytest.raises(ValueError, match="do not fit a 2x2 pool"):
        event_conv.conv2d_neuron(x, packed, steps, neurons.event_neuron(call), v, pool_sums=sums[:, :, :-1])


def test_fused_kernel_lists_its_spikes_as_the_next_conv_would():
    steps, n, amp = 3, 2, 0.5
    call = planning._call(_neuron_op(Charge.IF, ResetMode.SOFT, FireCompare.GE), pre=2.0, post=0.375)
    g = torch.Generator().manual_seed(6)
    x = _spikes((steps * n, 7, 9, 9), 0.4, amp, seed=9)
    for cout in (24, 300):  # one channel block, and two (CHANNEL_BLOCK = 256)
        packed = event_conv.pack(torch.randn(cout, 7, 3, 3, generator=g), None, amp, (1, 1), (1, 1), (1, 1))
        v = torch.zeros(n, cout, 9, 9).contiguous(memory_format=CL)
        y, made = event_conv.conv2d_neuron(x, packed, steps, neurons.event_neuron(call), v, list_output=True)
        assert bool((y != 0).any())
        nxt = event_conv.pack(torch.randn(5, cout, 3, 3, generator=g), None, 0.375, (1, 1), (1, 1), (1, 1))
        _, listed = event_conv._list_events(y, nxt, 1, False)
        assert torch.equal(made.bnd, listed.bnd)  # per pixel: its events below each channel block
        nb = made.bnd.numel() // made.off.numel()
        for q in range(made.off.numel()):  # each pixel's list (where it starts in ev may differ)
            k = int(made.bnd[q * nb + nb - 1])
            assert torch.equal(made.ev[int(made.off[q]):][:k], listed.ev[int(listed.off[q]):][:k])
        assert torch.equal(event_conv.conv2d(y, nxt, channels_last=True, events=made),
                           event_conv.conv2d(y, nxt, channels_last=True))
        with pytest.raises(ValueError, match="given events"):
            event_conv.conv2d(y[:2], nxt, channels_last=True, events=made)


def test_fused_kernel_takes_average_pooled_and_signed_spikes():
    steps, n, c, amp = 2, 3, 6, 0.5
    call = planning._call(_neuron_op(Charge.IF, ResetMode.SOFT, FireCompare.GE))
    g = torch.Generator().manual_seed(2)
    w = torch.randn(16, c, 3, 3, generator=g)
    spikes = _spikes((steps * n, c, 8, 8), 0.4, amp, seed=3)
    pooled = torch.nn.functional.avg_pool2d(spikes, 2).contiguous(memory_format=CL)
    signed = (spikes - _spikes((steps * n, c, 8, 8), 0.3, amp, seed=4)).contiguous(memory_format=CL)
    for x, packed, kw in ((pooled, event_conv.pack(w, None, amp / 4, (1, 1), (1, 1), (1, 1)), {"levels": 4}),
                          (signed, event_conv.pack_signed(w, None, amp, (1, 1), (1, 1), (1, 1)), {"signed": True})):
        y = event_conv.conv2d(x, packed, channels_last=True, **kw)
        v0 = torch.zeros((n, *y.shape[1:])).contiguous(memory_format=CL)
        want, v_want, _ = neurons.run(call, y.unflatten(0, (steps, n)), steps, v0.clone(), static=False)
        v = v0.clone()
        got, _ = event_conv.conv2d_neuron(x, packed, steps, neurons.event_neuron(call), v, **kw)
        assert torch.equal(got.unflatten(0, (steps, n)), want) and torch.equal(v, v_want)


def test_fused_kernel_refuses_what_does_not_fit():
    packed = event_conv.pack(torch.rand(4, 2, 3, 3), None, 1.0, (1, 1), (1, 1), (1, 1))
    x = _spikes((4, 2, 5, 5), 0.5, 1.0, seed=1)
    nr = neurons.event_neuron(planning._call(_neuron_op(Charge.IF, ResetMode.SOFT, FireCompare.GE)))
    with pytest.raises(ValueError, match="potential"):
        event_conv.conv2d_neuron(x, packed, 2, nr, torch.zeros(2, 4, 5, 5))  # NCHW, not channels_last
    with pytest.raises(ValueError, match="residual"):
        event_conv.conv2d_neuron(x, packed, 2, nr, torch.zeros(2, 4, 5, 5).contiguous(memory_format=CL),
                                 residual=torch.zeros(4, 4, 5, 5))
    with pytest.raises(ValueError, match="unknown neuron codes"):
        event_conv.conv2d_neuron(x, packed, 2, event_conv.Neuron((99, 0, 0), 1.0, 1.0, 1.0, 0.0, 1.0),
                                 torch.zeros(2, 4, 5, 5).contiguous(memory_format=CL))


class Block(nn.Module):
    """A residual block as ResNets write it: an identity or a 1x1 strided shortcut."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.short = nn.Sequential()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return torch.relu(self.b2(self.c2(torch.relu(self.b1(self.c1(x))))) + self.short(x))


class ResNetLet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        self.blocks = nn.Sequential(Block(64, 64, 1), Block(64, 96, 2))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(96, 5))

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


@pytest.fixture(scope="module")
def resnet_graph():
    from tests.conftest import randomize_bn

    torch.manual_seed(3)
    return snnc.convert(randomize_bn(ResNetLet()), torch.rand(32, 3, 8, 8), "99.9%", show_progress=False)


def _fused(s: Session, x, probes=()) -> list[planning.Node]:
    plan = s._interp.plan(frozenset(i.name for i in s.graph.inputs),
                          frozenset([*(o.name for o in s.graph.outputs), *probes]))
    return [n for n in plan.nodes if n.then is not None]


@pytest.mark.parametrize("kernel", ["one", "apart"])
def test_resnet_blocks_fuse_and_give_the_unfused_bits(resnet_graph, monkeypatch, kernel):
    """A fused node runs one kernel, or (few pixels a step, event_conv.fused_min_pixels) the conv, the
    Add and the neuron apart: the same bits as the unfused plan either way."""
    calls = []
    one = event_conv.conv2d_neuron
    monkeypatch.setattr(event_conv, "conv2d_neuron", lambda *a, **k: calls.append(1) or one(*a, **k))
    monkeypatch.setattr(event_conv, "fused_min_pixels", lambda: 1 if kernel == "one" else 10**9)
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    T = 7
    s = Session(resnet_graph, progress=False)
    fused = _fused(s, x)
    # every conv after a neuron: c1 of both blocks, c2 through the identity Add, and the second block's
    # c2 and shortcut conv, of which one takes the Add (its other operand being the other conv's output)
    assert len(fused) == 4 and sum(n.then.residual for n in fused) == 2
    assert sum(n.list_output for n in fused) == 3  # all but the last: average pooling reads that one
    assert all(isinstance(n.op, ops.Conv2d) and n.spike_amplitude is not None for n in fused)
    full = s.run(x, T)
    assert bool((full != 0).any())
    assert len(calls) == (4 if kernel == "one" else 0)
    for chunk in (1, 3):
        assert torch.equal(s.run(x, T, chunk=chunk), full)
    s.reset()
    assert torch.equal(torch.stack([s.step(x) for _ in range(T)]), full)
    assert torch.equal(Session(resnet_graph, progress=False).run(x[1:2], T), full[:, 1:2])  # batch invariant

    plan = s._interp.plan(frozenset(i.name for i in s.graph.inputs), frozenset(o.name for o in s.graph.outputs))
    stored = replace(plan, nodes=[replace(n, dense_output=True) for n in plan.nodes])
    bare = replace(plan, nodes=[replace(n, list_output=False, dense_output=True) for n in plan.nodes])
    assert stored.bytes_per_step(3, 4) > bare.bytes_per_step(3, 4)  # the memory estimate counts the kept lists
    assert set(plan.last_list_use) >= {n.name for n in fused if n.list_output}

    monkeypatch.setattr(planning, "_fuse_conv_neurons", lambda nodes, *_: nodes)
    unfused = Session(resnet_graph, progress=False)
    assert _fused(unfused, x) == []
    assert torch.equal(unfused.run(x, T), full)


class VGGLet(nn.Module):
    """conv -> BN -> ReLU -> max pool, as VGG writes it: after conversion conv -> RunningMaxPool2d -> IF."""

    def __init__(self):
        super().__init__()
        cbr = lambda i, o: [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU()]  # noqa: E731
        self.features = nn.Sequential(*cbr(3, 64), *cbr(64, 64), nn.MaxPool2d(2), *cbr(64, 136), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(136 * 2 * 2, 5))

    def forward(self, x):
        return self.head(self.features(x))


@pytest.mark.parametrize("kernel", ["one", "apart"])
def test_a_running_max_pool_between_conv_and_neuron_fuses_with_the_unfused_bits(monkeypatch, kernel):
    """conv -> RunningMaxPool2d (2x2) -> neuron runs as one kernel (event_conv.conv2d_neuron's pool_sums), or
    apart where a step has few pixels: the same bits as the unfused plan, in runs, chunks and steps; the
    pool's sums are its state."""
    from tests.conftest import randomize_bn

    torch.manual_seed(5)
    graph = snnc.convert(randomize_bn(VGGLet()), torch.rand(32, 3, 8, 8), "99.9%", show_progress=False)
    monkeypatch.setattr(event_conv, "fused_min_pixels", lambda: 1 if kernel == "one" else 10**9)
    calls = []
    one = event_conv.conv2d_neuron
    monkeypatch.setattr(event_conv, "conv2d_neuron", lambda *a, **k: calls.append(k.get("pool_sums")) or one(*a, **k))
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(6))
    T = 9
    s = Session(graph, progress=False)
    fused = _fused(s, x)
    assert [type(n.then.pool) for n in fused] == [ops.RunningMaxPool2d] * 2  # 136 channels: a 128 and an 8 tile
    assert fused[0].list_output and not fused[0].dense_output  # the next conv takes its pooled spikes' lists
    full = s.run(x, T)
    assert bool((full != 0).any()) and len(set(full.flatten().tolist())) > 10
    assert len(calls) == (2 if kernel == "one" else 0) and all(c is not None for c in calls)
    for chunk in (1, 4):
        assert torch.equal(s.run(x, T, chunk=chunk), full)
    s.reset()  # chunks and steps carry the pool's sums (and the neurons' potentials) as state
    assert torch.equal(torch.stack([s.step(x) for _ in range(T)]), full)
    pools = [op.name for op in graph if isinstance(op, ops.RunningMaxPool2d)]
    monkeypatch.setattr(planning, "_fuse_conv_neurons", lambda nodes, *_: nodes)
    unfused = Session(graph, progress=False)
    assert _fused(unfused, x) == []
    assert torch.equal(unfused.run(x, T), full)
    # a probe on the pool keeps that layer apart
    assert torch.equal(Session(graph, progress=False).execute(x, T, probes=pools[:1]).outputs[graph.outputs[0].name],
                       full)


def test_a_probe_or_statistics_between_conv_and_neuron_keep_it_apart(resnet_graph):
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    s = Session(resnet_graph, progress=False)
    adds = [op.name for op in resnet_graph if isinstance(op, ops.Add)]
    assert len(adds) == 2
    assert len(_fused(s, x, probes=adds)) == 2  # the c1 convs only
    out = resnet_graph.outputs[0].name
    full = s.run(x, 5)
    res = s.execute(x, 5, probes=adds)  # the Adds are probed: the c2 and shortcut convs stay apart
    assert torch.equal(res.outputs[out], full)
    assert all(bool((res.probes[a] != 0).any()) for a in adds)
    assert torch.equal(s.observe(x, 5).outputs[out], full)  # statistics: nothing fused


@pytest.mark.parametrize("post", [0.375, -0.375])  # a negative amplitude: its zeros are -0.0
def test_fused_kernel_lists_only_and_takes_a_listed_residual(post):
    """dense_output=False: the same lists, no tensor; a residual given as the lists of a layer's spikes
    (Events): the same spikes and potentials as its dense values, zeros' signs included."""
    steps, n, amp = 3, 2, 0.5
    g = torch.Generator().manual_seed(8)
    x = _spikes((steps * n, 7, 9, 9), 0.4, amp, seed=11)
    first = planning._call(_neuron_op(Charge.IF, ResetMode.SOFT, FireCompare.GE), pre=2.0, post=post)
    call = planning._call(_neuron_op(Charge.LIF, ResetMode.HARD, FireCompare.GT), pre=1.5, post=0.625)
    for cout in (24, 300):  # one channel block and one tile; two blocks and three tiles (AVX-512)
        packed = event_conv.pack(torch.randn(cout, 7, 3, 3, generator=g), torch.randn(cout, generator=g), amp,
                                 (1, 1), (1, 1), (1, 1))
        v = torch.zeros(n, cout, 9, 9).contiguous(memory_format=CL)
        r, r_made = event_conv.conv2d_neuron(x, packed, steps, neurons.event_neuron(first), v.clone(),
                                             list_output=True)
        none, only = event_conv.conv2d_neuron(x, packed, steps, neurons.event_neuron(first), v.clone(),
                                              list_output=True, dense_output=False)
        assert none is None and torch.equal(only.bnd, r_made.bnd) and only.amplitude == post
        assert bool((r != 0).any()) and bool((r == 0).any())
        assert torch.equal(torch.signbit(event_conv.dense(r_made, tuple(r.shape))), torch.signbit(r))
        assert torch.equal(event_conv.dense(only, tuple(r.shape)), r)
        assert event_conv.dense(only, tuple(r.shape)).is_contiguous(memory_format=CL)
        w2 = event_conv.pack(torch.randn(cout, cout, 3, 3, generator=g) * 0.2, None, post, (1, 1), (1, 1), (1, 1))
        v0 = (torch.rand(n, cout, 9, 9, generator=g) * 0.5).contiguous(memory_format=CL)
        want_v, got_v = v0.clone(), v0.clone()
        want, _ = event_conv.conv2d_neuron(r, w2, steps, neurons.event_neuron(call), want_v, residual=r,
                                           events=r_made)
        got, _ = event_conv.conv2d_neuron(r, w2, steps, neurons.event_neuron(call), got_v, residual=only,
                                          events=only)
        assert bool((want != 0).any()) and torch.equal(got, want) and torch.equal(got_v, want_v)
        # without the residual the spikes differ: the listed residual is really added
        alone, _ = event_conv.conv2d_neuron(r, w2, steps, neurons.event_neuron(call), v0.clone(), events=only)
        assert not torch.equal(alone, want)
    with pytest.raises(ValueError, match="list_output"):
        event_conv.conv2d_neuron(x, packed, steps, neurons.event_neuron(first), v.clone(), dense_output=False)
    with pytest.raises(ValueError, match="residual's events"):
        event_conv.conv2d_neuron(x[: 2 * n], packed, 2, neurons.event_neuron(first), v.clone(), residual=only)


class ResNetLet3(nn.Module):
    """Three blocks: the second adds the first's spikes (a fused node's, only listed) as its residual."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        self.blocks = nn.Sequential(Block(64, 64, 1), Block(64, 64, 1), Block(64, 72, 2))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(72, 5))

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


@pytest.mark.parametrize("kernel", ["one", "first-two", "apart"])
def test_spikes_only_listed_where_every_reader_takes_lists(monkeypatch, kernel):
    """Plan: a fused node whose readers are all event convs or fused residuals stores no spikes
    (dense_output False); a probe or a dense reader keeps them. Run: the same bits as storing them, with
    the residual rebuilt from the lists in the fused kernel and, when only the layers before run fused
    ("first-two"), densely (event_conv.dense)."""
    from tests.conftest import randomize_bn

    torch.manual_seed(4)
    graph = snnc.convert(randomize_bn(ResNetLet3()), torch.rand(32, 3, 8, 8), "99.9%", show_progress=False)
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(6))
    T = 6
    s = Session(graph, progress=False)
    fused = _fused(s, x)
    only = [n.name for n in fused if not n.dense_output]
    assert len(fused) == 6 and len(only) == 5  # all but the last block's output (average pooling reads it)
    assert all(n.list_output for n in fused if not n.dense_output)
    seen = []
    one = event_conv.conv2d_neuron
    monkeypatch.setattr(event_conv, "conv2d_neuron", lambda *a, **k: seen.append(k.get("residual")) or one(*a, **k))
    dense_calls = []
    to_dense = event_conv.dense
    monkeypatch.setattr(event_conv, "dense", lambda *a: dense_calls.append(1) or to_dense(*a))
    counter = iter(range(10**9))
    pick = {"one": lambda: 1, "apart": lambda: 10**9,
            "first-two": lambda: 1 if next(counter) % 6 < 3 else 10**9}[kernel]  # stem..b1c2 fused, per run
    monkeypatch.setattr(event_conv, "fused_min_pixels", pick)
    full = s.run(x, T)
    assert bool((full != 0).any())
    if kernel == "one":
        assert any(isinstance(r, event_conv.Events) for r in seen)  # b2's residual: b1's listed spikes
    if kernel == "first-two":
        assert dense_calls  # b2 apart, its residual (b1's spikes, only listed) rebuilt densely
    monkeypatch.setattr(planning, "_lists_only", lambda *a: False)
    stored = Session(graph, progress=False)
    assert all(n.dense_output for n in _fused(stored, x))
    counter = iter(range(10**9))
    assert torch.equal(stored.run(x, T), full)
    monkeypatch.undo()

    probed = Session(graph, progress=False)
    res = probed.execute(x, T, probes=[only[0]])  # a probe needs the spikes stored
    assert only[0] not in [n.name for n in _fused(probed, x, probes=[only[0]]) if not n.dense_output]
    assert torch.equal(res.outputs[graph.outputs[0].name], full) and bool((res.probes[only[0]] != 0).any())
    plan = s._interp.plan(frozenset(i.name for i in s.graph.inputs), frozenset(o.name for o in s.graph.outputs))
    stored_plan = replace(plan, nodes=[replace(n, dense_output=True) for n in plan.nodes])
    assert plan.bytes_per_step(3, 4) < stored_plan.bytes_per_step(3, 4)  # the estimate counts no spikes for them
