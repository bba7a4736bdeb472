"""Input encoders: names, seeds, and the same math as snnc.nn's encoders."""

import pytest
import torch

from snnc.core.errors import InputError
from snnc.ir import Graph, Layout, TensorType, ops
from snnc.runtime import Latency, Periodic, Poisson, Session, get_encoder


def passthrough(features=(4,)) -> Session:
    g = Graph("id")
    g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", *features), layout=Layout.TNX)))
    g.add(ops.Output(name="out", inputs=("x",)))
    return Session(g, progress=False)


def test_names_select_encoders():
    assert get_encoder(None).kind == "constant" and get_encoder("Poisson", seed=3) == Poisson(seed=3)
    assert isinstance(get_encoder("latency"), Latency) and isinstance(get_encoder("periodic"), Periodic)
    with pytest.raises(InputError, match="unknown encoder"):
        get_encoder("rate")


def test_poisson_is_seeded_and_fires_with_probability_x():
    s = passthrough((2000,))
    x = torch.tensor([[0.0, 0.25, 0.5, 1.0]]).repeat_interleave(500, 1)
    a = s.run(x, 200, encoder="poisson", seed=1)
    assert torch.equal(a, s.run(x, 200, encoder="poisson", seed=1))
    assert not torch.equal(a, s.run(x, 200, encoder="poisson", seed=2))
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    rates = a.mean(0)[0].view(4, 500).mean(1)
    assert rates[0] < 1e-3 and rates[3] == 1.0
    assert abs(rates[1] - 0.25) < 0.01 and abs(rates[2] - 0.5) < 0.01


def test_latency_matches_snnc_nn():
    enc = pytest.importorskip("snnc.nn.encoding")
    x = torch.rand(3, 6)
    x[0, :3] = torch.tensor([0.0, 1.0, 0.5])
    for fn in ("linear", "log"):
        ref = enc.LatencyEncoder(8, enc_function=fn)
        want = torch.stack([ref(x) for _ in range(12)])  # two windows of 8 (periodic)
        got = passthrough((6,)).run(x, 12, encoder=Latency(window_steps=8, function=fn))
        assert torch.equal(got, want), fn
    got = passthrough((6,)).run(x, 8, encoder="latency")  # window = T
    assert torch.equal(got.sum(0), torch.ones(3, 6)) and got[0, 0, 1] == 1 and got[7, 0, 0] == 1


def test_latency_needs_inputs_in_range_and_a_window_when_streaming():
    s = passthrough()
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        s.run(torch.tensor([[1.5, 0, 0, 0]]), 4, encoder="latency")
    with pytest.raises(InputError, match="window"):
        s.step(torch.rand(1, 4), encoder="latency")


def test_periodic_replays_the_pattern():
    pattern = (torch.rand(3, 2, 4) < 0.5).float()
    out = passthrough().run(pattern, 7, encoder="periodic")
    assert torch.equal(out, pattern[torch.arange(7) % 3])
    with pytest.raises(InputError, match="pattern"):
        passthrough().run(torch.rand(2, 4), 7, encoder="periodic")


def test_session_default_encoder_applies_to_step_and_run():
    g = passthrough()._interp.graph
    s = Session(g, encoder=Poisson(seed=4), progress=False)
    x = torch.rand(2, 4)
    run = s.run(x, 5)
    s.reset()
    assert torch.equal(torch.stack([s.step(x) for _ in range(5)]), run)
