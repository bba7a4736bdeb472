"""Forward kernel vs snnc.core.dynamics: bit-exact spikes and potentials for every option."""

import dataclasses

import numpy as np
import pytest
import torch

pytest.importorskip("triton", reason="triton is not installed (Linux wheels only); the Triton kernels cannot be tested")

from .cases import all_cases, params_of, random_input  # noqa: E402
from .triton_reference import autograd_multi_step  # noqa: E402

from snnc.core import dynamics  # noqa: E402
from snnc.core.dynamics import FireCompare, NeuronKind, NeuronParams, ResetMode  # noqa: E402
from snnc.runtime.triton import launch, neuron  # noqa: E402
from snnc.core.errors import InputError  # noqa: E402
from snnc.runtime.triton.errors import KernelInputError  # noqa: E402

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def _reference(case, x, v0):
    """dynamics.multi_step on fp32 input; a loop over dynamics.charge for tensor tau / decay."""
    if case.leak == "const":
        return dynamics.multi_step(case.params, x.float(), v0, return_v_seq=True)
    with torch.no_grad():
        return autograd_multi_step(case.params, x, v0, **case.leak_kwargs())


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).removeprefix("torch."))
@pytest.mark.parametrize("case", params_of(all_cases()))
def test_forward_matches_dynamics(case, dtype, device):
    x = random_input().to(dtype)
    v0_tensor = torch.randn(3, 7) * 0.3  # broadcasts over the batch dimension
    for v0 in (None, 0.25, v0_tensor):
        ref_s, ref_v, ref_vseq = _reference(case, x, v0)
        s, v, vseq = neuron.multi_step(
            case.params, x.to(device), v0.to(device) if isinstance(v0, torch.Tensor) else v0,
            return_v_seq=True, **case.leak_kwargs(device=device),
        )
        assert s.dtype == dtype and v.dtype == torch.float32 and vseq.dtype == torch.float32
        assert s.shape == x.shape and v.shape == x.shape[1:]
        # fp32 state for every input dtype: the same bits as the fp32 reference
        torch.testing.assert_close(s.cpu().float(), ref_s, rtol=0, atol=0)
        torch.testing.assert_close(v.cpu(), ref_v, rtol=0, atol=0)
        torch.testing.assert_close(vseq.cpu(), ref_vseq, rtol=0, atol=0)
        assert 0.05 < ref_s.mean() < 0.95  # the inputs exercise firing and not firing


def test_autograd_reference_agrees_with_dynamics():
    """The reference used for the leak tensors and gradients is itself dynamics.multi_step."""
    x = random_input()
    for case in all_cases():
        if case.leak == "const":
            with torch.no_grad():
                got = autograd_multi_step(case.params, x, 0.1)
            for a, b in zip(got, dynamics.multi_step(case.params, x, 0.1, return_v_seq=True)):
                assert torch.equal(a, b), case


@pytest.mark.parametrize("compare", list(FireCompare), ids=lambda c: c.value)
def test_threshold_ties_and_fp32_rounding(compare, device):
    """H == V_th exactly: ge fires, gt does not; V_th is rounded to fp32 as torch rounds it."""
    vth32 = np.float32(0.3)
    p = NeuronParams(NeuronKind.IF, float(vth32) + 1e-12, ResetMode.SOFT, compare=compare)
    x = torch.zeros(3, 64)
    x[0, ::2] = torch.tensor(vth32)
    ref_s, ref_v = dynamics.multi_step(p, x)
    s, v = neuron.multi_step(p, x.to(device))
    assert torch.equal(s.cpu(), ref_s) and torch.equal(v.cpu(), ref_v)
    assert s[0, ::2].eq(1.0 if compare is FireCompare.GE else 0.0).all()


@pytest.mark.parametrize("spike_dtype", [torch.uint8, torch.int8, torch.bool, torch.bfloat16])
def test_spike_dtype(spike_dtype, device):
    p = NeuronParams(NeuronKind.LIF, reset=ResetMode.SOFT, tau=3.0)
    x = random_input(T=4)
    ref_s, _ = dynamics.multi_step(p, x)
    s, _ = neuron.multi_step(p, x.to(device), spike_dtype=spike_dtype)
    assert s.dtype == spike_dtype
    assert torch.equal(s.cpu(), ref_s.to(spike_dtype))


def test_single_step_noncontiguous_and_empty(device):
    p = NeuronParams(NeuronKind.IF, reset=ResetMode.HARD)
    x = random_input(T=1)
    assert all(torch.equal(a.cpu(), b) for a, b in zip(neuron.multi_step(p, x.to(device)), dynamics.multi_step(p, x)))
    xt = random_input(T=5, shape=(7, 3)).transpose(1, 2)  # not contiguous
    assert all(torch.equal(a.cpu(), b) for a, b in zip(neuron.multi_step(p, xt.to(device)), dynamics.multi_step(p, xt)))
    s, v = neuron.multi_step(p, torch.zeros(4, 0, 3, device=device))
    assert s.shape == (4, 0, 3) and v.shape == (0, 3)


def test_params_independent_of_initial_v_default(device):
    """v0=None means params.initial_v: v_reset for hard reset, 0 otherwise."""
    for reset in ResetMode:
        p = NeuronParams(NeuronKind.LIF, reset=reset, v_reset=0.4)
        x = random_input(T=3)
        assert torch.equal(neuron.multi_step(p, x.to(device))[1].cpu(), dynamics.multi_step(p, x)[1])
        q = dataclasses.replace(p, v_reset=-0.4)
        assert torch.equal(neuron.multi_step(q, x.to(device))[1].cpu(), dynamics.multi_step(q, x)[1])


def _lif():
    return NeuronParams(NeuronKind.LIF)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda d: neuron.multi_step(_lif(), torch.ones(3, 4, dtype=torch.int32, device=d)), "dtype"),
        (lambda d: neuron.multi_step(_lif(), torch.ones(0, 4, device=d)), "T >= 1"),
        (lambda d: neuron.multi_step(_lif(), torch.ones(3, 4, device=d), torch.ones(5, device=d)), "broadcast"),
        (lambda d: neuron.multi_step(_lif(), torch.ones(3, 4, device=d), tau=torch.ones(2, device=d)), "1-element"),
        (lambda d: neuron.multi_step(NeuronParams(), torch.ones(3, 4, device=d), tau=torch.tensor(2.0)), "only 'lif'"),
        (lambda d: neuron.multi_step(_lif(), torch.ones(3, 4, device=d), tau=torch.tensor(2.0, device=d),
                                     decay=torch.tensor(0.5, device=d)), "not both"),
        (lambda d: neuron.multi_step(_lif(), torch.ones(3, 4, device=d), surrogate="erf"), "supported"),
        (lambda d: neuron.multi_step(_lif(), torch.ones(3, 4, device=d), spike_dtype=torch.int64), "spike_dtype"),
        (lambda d: neuron.multi_step("lif", torch.ones(3, 4, device=d)), "NeuronParams"),
    ],
    ids=["int-input", "empty-T", "v0-shape", "tau-shape", "tau-on-if", "tau-and-decay", "surrogate", "spike-dtype",
         "params-type"],
)
def test_bad_arguments_raise_typed_errors(call, message, device):
    with pytest.raises(KernelInputError, match=message):
        call(device)
    assert issubclass(KernelInputError, ValueError) and issubclass(KernelInputError, InputError)


@pytest.mark.parametrize("prefetch", [1, 2, 4])
def test_launch_configs(prefetch, device):
    """Several programs with a ragged tail, and prefetch depths deeper than T."""
    p = NeuronParams(NeuronKind.LIF, 0.7, ResetMode.HARD, -0.2, tau=1.7)
    with launch.override(launch.LaunchConfig(block=32, num_warps=1, prefetch=prefetch)):
        for T in (1, 2, 3, 6):
            x = random_input(T=T, shape=(5, 21))
            got = neuron.multi_step(p, x.to(device), return_v_seq=True)
            assert all(torch.equal(a.cpu(), b) for a, b in zip(got, dynamics.multi_step(p, x, return_v_seq=True)))
    with pytest.raises(KernelInputError, match="launch config"):
        launch.LaunchConfig(block=48, num_warps=1)
