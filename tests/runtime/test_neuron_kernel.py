"""The native neuron kernel against the one definition, snnc.core.dynamics (bit for bit)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from snnc.core import dynamics
from snnc.core.dynamics import FireCompare, NeuronKind, NeuronParams, ResetMode
from snnc.runtime import native, neurons
from snnc.runtime.neurons import NeuronCall

pytestmark = pytest.mark.skipif(not native.available(), reason=f"no native kernel: {native.why_unavailable()}")


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(list(NeuronKind)), reset=st.sampled_from(list(ResetMode)),
       compare=st.sampled_from(list(FireCompare)), decay_input=st.booleans(),
       tau=st.sampled_from([1.0, 1.5, 2.0, 3.7]), th=st.sampled_from([0.5, 1.0, 1.3]),
       v_reset=st.sampled_from([0.0, -0.25]), pre=st.sampled_from([1.0, 0.37, 2.5]),
       post=st.sampled_from([1.0, 3.1]), T=st.integers(1, 9), static=st.booleans(), seed=st.integers(0, 99))
def test_kernel_matches_dynamics(kind, reset, compare, decay_input, tau, th, v_reset, pre, post, T, static, seed):
    p = NeuronParams(kind=kind, v_threshold=th, reset=reset, v_reset=v_reset, compare=compare, tau=tau,
                     decay_input=decay_input)
    g = torch.Generator().manual_seed(seed)
    shape = (3, 5, 4)
    x = torch.randn((shape if static else (T, *shape)), generator=g) * 0.8 + 0.4
    x[..., 0] = th / pre  # exactly at the threshold: ge fires, gt does not
    v0 = torch.randn(shape, generator=g) * 0.3
    call = NeuronCall(p, 0.0, pre, post)
    out, v, vs = neurons.run(call, x, T, v0.clone(), static=static, want_v=True)
    x_seq = (x.expand(T, *shape) if static else x) * pre if pre != 1.0 else (x.expand(T, *shape) if static else x)
    s_ref, v_ref, vs_ref = dynamics.multi_step(p, x_seq, v0, return_v_seq=True)
    assert torch.equal(out, s_ref * post if post != 1.0 else s_ref)
    assert torch.equal(v, v_ref) and torch.equal(vs, vs_ref)


def test_channels_last_layout_and_threads_do_not_change_results():
    p = NeuronParams(reset=ResetMode.SOFT)
    x = (torch.rand(6, 8, 16, 32, 32) * 1.2)  # big enough for the thread pool
    xcl = x.flatten(0, 1).contiguous(memory_format=torch.channels_last).unflatten(0, (6, 8))
    call = NeuronCall(p, 0.0)
    a, va, _ = neurons.run(call, x, 6, None, static=False)
    b, vb, _ = neurons.run(call, xcl, 6, None, static=False)
    assert torch.equal(a, b) and torch.equal(va, vb)
    assert b[0].is_contiguous(memory_format=torch.channels_last)  # the output keeps the input's layout
    assert torch.equal(a, dynamics.multi_step(p, x)[0])


def test_float16_uses_the_torch_loop():
    p = NeuronParams(kind=NeuronKind.LIF, tau=2.0)
    x = torch.rand(4, 2, 3).half()
    out, v, _ = neurons.run(NeuronCall(p, 0.0), x, 4, None, static=False)
    assert out.dtype == torch.float16 and torch.equal(out, dynamics.multi_step(p, x)[0])


@pytest.mark.parametrize("pool", ["avg", "max"])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("static", [False, True])
def test_fused_pooling_matches_spikes_then_torch_pooling(pool, channels_last, static):
    p = NeuronParams(kind=NeuronKind.LIF, tau=2.0, reset=ResetMode.HARD, v_reset=0.0)
    g = torch.Generator().manual_seed(2)
    T, shape = 5, (3, 6, 8, 4)  # [N, C, H, W]: 2-row tiles of 4 (NCHW) or 24 (channels_last) floats
    x = torch.rand((shape if static else (T, *shape)), generator=g) * 1.5
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = (x.contiguous(memory_format=fmt) if static
         else x.flatten(0, 1).contiguous(memory_format=fmt).unflatten(0, (T, shape[0])))
    out, v, _ = neurons.run(NeuronCall(p, 0.0, 0.8, 2.5, pool), x, T, None, static=static)
    x_seq = (x.expand(T, *shape) if static else x) * 0.8
    s, v_ref = dynamics.multi_step(p, x_seq)
    fn = torch.nn.functional.avg_pool2d if pool == "avg" else torch.nn.functional.max_pool2d
    want = fn((s * 2.5).flatten(0, 1), 2, 2).unflatten(0, (T, shape[0]))
    assert out.shape == want.shape and torch.equal(out, want) and torch.equal(v, v_ref)
    assert out[0].is_contiguous(memory_format=fmt)
