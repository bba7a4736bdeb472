"""Backward kernel vs a torch autograd loop over snnc.core.dynamics with surrogate spikes."""

import pytest
import torch

pytest.importorskip("triton", reason="triton is not installed (Linux wheels only); the Triton kernels cannot be tested")

from snnc.core.dynamics import FireCompare, NeuronKind, NeuronParams, ResetMode  # noqa: E402
from snnc.runtime.triton import launch, neuron  # noqa: E402

from .cases import Case, all_cases, params_of, random_input  # noqa: E402
from .triton_reference import autograd_multi_step  # noqa: E402

# Gradients differ from autograd's only by rounding (different but equivalent formulas).
GRAD_TOL = {"rtol": 1e-4, "atol": 1e-5}
SURROGATES = [("sigmoid", 4.0), ("atan", 2.0)]


def _backward_cases() -> list[Case]:
    """ge only: compare changes S, and S is covered by the forward tests and one gt case per reset here."""
    return [c for c in all_cases() if c.params.compare is FireCompare.GE]


def _run_both(case, x, *, surrogate, detach_reset, device, v0_shape=(3, 7), outputs=("s", "v", "vseq")):
    """Gradients of one random linear loss, from the kernels and from the reference."""
    g = torch.Generator().manual_seed(1)
    weights = {"s": torch.randn(x.shape, generator=g), "v": torch.randn(x.shape[1:], generator=g),
               "vseq": torch.randn(x.shape, generator=g)}  # fmt: skip
    v0 = (torch.randn(v0_shape, generator=g) * 0.3).requires_grad_()
    results = []
    for impl in ("triton", "reference"):
        xi = x.detach().clone().requires_grad_()
        leak = case.leak_kwargs(requires_grad=True)
        if impl == "triton":
            dev_leak = {k: t.detach().to(device).requires_grad_() for k, t in leak.items()}
            v0i = v0.detach().to(device).requires_grad_()
            xd = xi.detach().to(device).requires_grad_()
            s, v, vseq = neuron.multi_step(case.params, xd, v0i, surrogate=surrogate, detach_reset=detach_reset,
                                           return_v_seq=True, **dev_leak)  # fmt: skip
            inputs = [xd, v0i, *dev_leak.values()]
        else:
            v0i = v0.detach().clone().requires_grad_()
            s, v, vseq = autograd_multi_step(case.params, xi, v0i, surrogate=surrogate, detach_reset=detach_reset,
                                             **leak)  # fmt: skip
            inputs = [xi, v0i, *leak.values()]
        outs = {"s": s, "v": v, "vseq": vseq}
        loss = sum((outs[k].float().cpu() * weights[k]).sum() for k in outputs)
        grads = torch.autograd.grad(loss, inputs)
        results.append([gr.cpu().float() for gr in grads])
    return results


@pytest.mark.parametrize("detach_reset", [False, True], ids=["attached", "detach_reset"])
@pytest.mark.parametrize("case", params_of(_backward_cases()))
def test_gradients_match_autograd(case, detach_reset, device):
    x = random_input(T=5)
    for surrogate in SURROGATES:
        got, want = _run_both(case, x, surrogate=surrogate, detach_reset=detach_reset, device=device)
        for name, a, b in zip(("x", "v0", "leak"), got, want):
            torch.testing.assert_close(a, b, **GRAD_TOL, msg=lambda m: f"d loss / d {name} ({surrogate}): {m}")


@pytest.mark.parametrize("reset", list(ResetMode), ids=lambda r: r.value)
def test_gradients_with_gt_compare(reset, device):
    case = Case(NeuronParams(NeuronKind.LIF, 0.7, reset, -0.2, FireCompare.GT, 1.7), "tau")
    got, want = _run_both(case, random_input(T=4), surrogate=("atan", 3.0), detach_reset=False, device=device)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **GRAD_TOL)


@pytest.mark.parametrize("outputs", [("s",), ("v",), ("vseq",), ("s", "v")], ids="+".join)
def test_gradients_when_only_some_outputs_are_used(outputs, device):
    """Unused outputs send no gradient (None inside the autograd node)."""
    case = Case(NeuronParams(NeuronKind.LIF, 0.7, ResetMode.HARD, -0.2, tau=1.7), "decay")
    got, want = _run_both(case, random_input(T=4), surrogate=("sigmoid", 4.0), detach_reset=False, device=device,
                          outputs=outputs)  # fmt: skip
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **GRAD_TOL)


def test_gradients_across_many_programs(device):
    """Small blocks: tail masks and the per-program partial sums of the leak gradient."""
    case = Case(NeuronParams(NeuronKind.LIF, 0.7, ResetMode.SOFT, tau=1.7, decay_input=False), "tau")
    with launch.override(launch.LaunchConfig(block=32, num_warps=1)):
        got, want = _run_both(case, random_input(T=4, shape=(5, 21)), surrogate=("atan", 2.0), detach_reset=False,
                              device=device, v0_shape=(1,))  # fmt: skip
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **GRAD_TOL)


@pytest.mark.parametrize("dtype, tol", [(torch.float16, 1e-3), (torch.bfloat16, 8e-3)], ids=["fp16", "bf16"])
def test_half_precision_gradients(dtype, tol, device):
    """fp32 state: spikes equal the fp32 reference's; grad_x is the fp32 gradient rounded to dtype."""
    p = NeuronParams(NeuronKind.LIF, 0.7, ResetMode.HARD, -0.2, tau=1.7)
    x = random_input(T=4).to(dtype)
    xd = x.to(device).clone().requires_grad_()
    s, v = neuron.multi_step(p, xd, surrogate="atan")
    (s.float().sum() + v.sum()).backward()
    xr = x.float().requires_grad_()
    rs, rv, _ = autograd_multi_step(p, xr, surrogate=("atan", 2.0))
    (rs.sum() + rv.sum()).backward()
    assert s.dtype == dtype and torch.equal(s.cpu().float(), rs.detach())
    assert xd.grad.dtype == dtype
    torch.testing.assert_close(xd.grad.cpu().float(), xr.grad, rtol=tol, atol=tol)


def test_no_autograd_node_without_requires_grad(device):
    x = random_input(T=3).to(device)
    s, v = neuron.multi_step(NeuronParams(), x)
    assert s.grad_fn is None and v.grad_fn is None
    with torch.no_grad():
        s, _ = neuron.multi_step(NeuronParams(), x.clone().requires_grad_())
    assert s.grad_fn is None


def test_surrogate_objects_from_snnc_nn(device):
    """The surrogate modules of snnc.nn are accepted and give their own derivative."""
    surrogate = pytest.importorskip("snnc.nn.surrogate")
    p = NeuronParams(NeuronKind.IF, 0.7, ResetMode.SOFT)
    for module, ref in ((surrogate.Sigmoid(alpha=3.0), ("sigmoid", 3.0)), (surrogate.ATan(), ("atan", 2.0))):
        x = random_input(T=4)
        xd = x.to(device).clone().requires_grad_()
        neuron.multi_step(p, xd, surrogate=module)[0].sum().backward()
        xr = x.clone().requires_grad_()
        autograd_multi_step(p, xr, surrogate=ref)[0].sum().backward()
        torch.testing.assert_close(xd.grad.cpu(), xr.grad, **GRAD_TOL)
