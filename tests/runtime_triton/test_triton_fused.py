"""Fused groups vs their unfused definition: neuron(a * x + b) and the spike count over T."""

import pytest
import torch

pytest.importorskip("triton", reason="triton is not installed (Linux wheels only); the Triton kernels cannot be tested")

from snnc.core import dynamics  # noqa: E402
from snnc.core.dynamics import NeuronKind, NeuronParams, ResetMode  # noqa: E402
from snnc.runtime.triton import fused  # noqa: E402
from snnc.runtime.triton.errors import KernelInputError  # noqa: E402

from .cases import random_input  # noqa: E402
from .triton_reference import autograd_multi_step  # noqa: E402

LIF = NeuronParams(NeuronKind.LIF, 0.7, ResetMode.HARD, -0.2, tau=1.7)
IF_SOFT = NeuronParams(NeuronKind.IF, 0.7, ResetMode.SOFT)


def _channel(shape, channel_dim, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape[channel_dim], generator=g) + 0.5


def _affine_reference(x, scale, bias, channel_dim):
    """a * x + b in fp32, rounded after each operation."""
    u = x.float()
    for p, op in ((scale, torch.mul), (bias, torch.add)):
        if isinstance(p, torch.Tensor) and p.numel() > 1:
            shape = [1] * x.dim()
            shape[channel_dim] = -1
            p = p.reshape(shape)
        elif isinstance(p, torch.Tensor):
            p = p.reshape(())
        if p is not None:
            u = op(u, p)
    return u


AFFINES = {
    "none": lambda s, c: (None, None),
    "floats": lambda s, c: (0.8, 0.1),
    "channel-scale": lambda s, c: (_channel(s, c, 1), None),
    "channel-bias": lambda s, c: (None, _channel(s, c, 2) - 1.0),
    "scalar-tensor-and-channel": lambda s, c: (torch.tensor(0.9), _channel(s, c, 3) - 1.0),
    "channel-both": lambda s, c: (_channel(s, c, 4), _channel(s, c, 5) - 1.0),
}
LAYOUTS = {"TBCHW": ((2, 3, 4, 2), 2), "TBC": ((3, 5), 2), "TC": ((12,), 1)}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("affine", list(AFFINES))
def test_scale_bias_neuron_matches_unfused(affine, layout, device):
    shape, channel_dim = LAYOUTS[layout]
    x = random_input(T=5, shape=shape)
    scale, bias = AFFINES[affine]((5, *shape), channel_dim)
    ref_s, ref_v = dynamics.multi_step(LIF, _affine_reference(x, scale, bias, channel_dim))
    assert 0 < ref_s.mean() < 1

    def dev(p):
        return p.to(device) if isinstance(p, torch.Tensor) else p

    s, v = fused.scale_bias_neuron(LIF, x.to(device), dev(scale), dev(bias), channel_dim=channel_dim)
    assert torch.equal(s.cpu(), ref_s) and torch.equal(v.cpu(), ref_v)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_scale_bias_half_input_to_uint8_spikes(dtype, device):
    x = random_input(T=4, shape=(2, 6, 3)).to(dtype)
    scale, bias = _channel((4, 2, 6, 3), 2, 7), _channel((4, 2, 6, 3), 2, 8) - 1.0
    ref_s, ref_v = dynamics.multi_step(IF_SOFT, _affine_reference(x, scale, bias, 2))
    s, v = fused.scale_bias_neuron(IF_SOFT, x.to(device), scale.to(device), bias.to(device),
                                   spike_dtype=torch.uint8)  # fmt: skip
    assert s.dtype == torch.uint8 and torch.equal(s.cpu(), ref_s.to(torch.uint8)) and torch.equal(v.cpu(), ref_v)


@pytest.mark.parametrize("count_dtype", [torch.float32, torch.int32, torch.bfloat16])
@pytest.mark.parametrize("return_spikes", [False, True], ids=["count-only", "count+spikes"])
def test_spike_count(count_dtype, return_spikes, device):
    x = random_input(T=7)
    ref_s, ref_v = dynamics.multi_step(LIF, x, 0.1)
    out = fused.neuron_spike_count(LIF, x.to(device), v0=0.1, return_spikes=return_spikes, count_dtype=count_dtype,
                                   spike_dtype=torch.bool)  # fmt: skip
    assert out.count.dtype == count_dtype and out.count.shape == x.shape[1:]
    assert torch.equal(out.count.cpu(), ref_s.sum(0).to(count_dtype))
    assert torch.equal(out.v_final.cpu(), ref_v)
    assert (out.spikes is not None) == return_spikes
    if return_spikes:
        assert torch.equal(out.spikes.cpu(), ref_s.bool())


def test_all_fused_parts_at_once_with_decay_tensor(device):
    x = random_input(T=5, shape=(2, 4, 3))
    decay = torch.tensor(1 / 1.7)
    scale, bias = _channel((5, 2, 4, 3), 2, 9), 0.05
    with torch.no_grad():
        ref_s, ref_v, _ = autograd_multi_step(LIF, _affine_reference(x, scale, bias, 2), -0.1, decay=decay)
    out = fused.fused_multi_step(LIF, x.to(device), scale=scale.to(device), bias=bias, v0=-0.1,
                                 decay=decay.to(device), return_count=True)  # fmt: skip
    assert torch.equal(out.spikes.cpu(), ref_s) and torch.equal(out.count.cpu(), ref_s.sum(0))
    assert torch.equal(out.v_final.cpu(), ref_v)


def test_training_takes_the_unfused_path_with_the_same_gradients(device):
    shape = (5, 2, 4, 3)
    x = random_input(T=5, shape=shape[1:])
    params = {"scale": _channel(shape, 2, 10), "bias": _channel(shape, 2, 11) - 1.0, "x": x}
    grads = {}
    for impl in ("fused", "reference"):
        leaves = {k: v.detach().clone().to(device if impl == "fused" else "cpu").requires_grad_() for k, v in params.items()}
        if impl == "fused":
            out = fused.fused_multi_step(LIF, leaves["x"], scale=leaves["scale"], bias=leaves["bias"],
                                         return_count=True, surrogate="atan")  # fmt: skip
            s, count, v = out.spikes, out.count, out.v_final
        else:
            u = _affine_reference(leaves["x"], leaves["scale"], leaves["bias"], 2)
            s, v, _ = autograd_multi_step(LIF, u, surrogate=("atan", 2.0))
            count = s.sum(0)
        loss = (s.cpu() * torch.linspace(0, 1, s.numel()).reshape(s.shape)).sum() + count.cpu().sum() + v.cpu().sum()
        grads[impl] = [g.cpu() for g in torch.autograd.grad(loss, list(leaves.values()))]
    for a, b in zip(grads["fused"], grads["reference"]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scale": torch.ones(4)}, "channels"),
        ({"bias": torch.ones(3), "channel_dim": 0}, "channel_dim"),
        ({"scale": "2"}, "scale must be"),
        ({"count_dtype": torch.int64, "return_count": True}, "count_dtype"),
    ],
    ids=["scale-numel", "channel-dim", "scale-type", "count-dtype"],
)
def test_bad_fused_arguments(kwargs, message, device):
    x = torch.ones(2, 2, 3, device=device)
    kwargs = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
    with pytest.raises(KernelInputError, match=message):
        fused.fused_multi_step(LIF, x, **kwargs)
