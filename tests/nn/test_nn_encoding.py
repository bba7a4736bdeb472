"""Encoders: Poisson, latency and periodic."""

from __future__ import annotations

import math

import pytest
import torch

from snnc.nn import encoding, functional
from snnc.nn.errors import ConfigError, InputError


def test_poisson_rate_matches_intensity():
    torch.manual_seed(0)
    x = torch.tensor([0.0, 0.25, 0.5, 1.0])
    enc = encoding.PoissonEncoder()
    spikes = torch.stack([enc(x) for _ in range(4000)])
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(spikes.mean(0), x, atol=0.03, rtol=0)
    enc.step_mode = "m"
    assert enc(x.expand(5, 4)).shape == (5, 4)


@pytest.mark.parametrize("enc_function", ["linear", "log"])
def test_latency_one_spike_per_element_earlier_for_larger_x(enc_function):
    T = 8
    x = torch.tensor([[0.0, 0.3, 0.7, 1.0]])
    enc = encoding.LatencyEncoder(T, enc_function)
    spikes = torch.stack([enc(x) for _ in range(T)])  # [T, 1, 4]
    assert torch.equal(spikes.sum(0), torch.ones_like(x))
    t_f = spikes.argmax(0)[0].tolist()
    assert t_f[0] == T - 1 and t_f[-1] == 0
    assert t_f == sorted(t_f, reverse=True)
    if enc_function == "linear":
        assert t_f == [round((T - 1) * (1 - v)) for v in x[0].tolist()]
    else:
        alpha = math.exp(T - 1) - 1
        assert t_f == [round(T - 1 - math.log(alpha * v + 1)) for v in x[0].tolist()]
    assert torch.equal(enc(x), spikes[0])  # the (T+1)-th call starts the period again


def test_latency_needs_reset_for_a_new_input_and_checks_range():
    enc = encoding.LatencyEncoder(4)
    first = enc(torch.tensor([1.0]))
    assert first.item() == 1.0
    assert enc(torch.tensor([0.0])).item() == 0.0  # still replaying the first input
    functional.reset_net(enc)
    assert enc(torch.tensor([0.0])).item() == 0.0 and enc.t == 1
    functional.reset_net(enc)
    with pytest.raises(InputError):
        enc(torch.tensor([1.5]))
    with pytest.raises(ConfigError):
        encoding.LatencyEncoder(4, "exp")
    with pytest.raises(ConfigError):
        encoding.LatencyEncoder(0)


def test_periodic_encoder_replays_its_pattern():
    pattern = (torch.rand(3, 2, 5) > 0.5).float()
    enc = encoding.PeriodicEncoder(pattern)
    out = torch.stack([enc() for _ in range(7)])
    assert torch.equal(out, pattern[[0, 1, 2, 0, 1, 2, 0]])
    enc.reset()
    assert torch.equal(enc(pattern), pattern[0])  # SpikingJelly style: the train passed again
    enc.reset()
    enc.step_mode = "m"
    assert torch.equal(enc(torch.zeros(5, 2, 5)), pattern[[0, 1, 2, 0, 1]])


def test_latency_encoder_multi_step_on_a_repeated_image():
    T = 5
    img = torch.rand(2, 3)
    enc = encoding.LatencyEncoder(T, step_mode="m")
    spikes = enc(img.expand(T, 2, 3))
    enc.reset()
    enc.step_mode = "s"
    assert torch.equal(spikes, torch.stack([enc(img) for _ in range(T)]))
