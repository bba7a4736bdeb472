import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from snnc.core.errors import InputError
from snnc.passes import QuantileSketch, calibrate
from snnc.frontends import trace


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 5000), q=st.floats(0.0, 1.0), zeros=st.floats(0, 0.9), seed=st.integers(0, 2**16),
       scale=st.sampled_from([1e-3, 1.0, 250.0]))
def test_sketch_quantile_within_stated_relative_error(n, q, zeros, seed, scale):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, generator=g).pow(3) * scale
    x[torch.rand(n, generator=g) < zeros] = 0.0
    s = QuantileSketch(accuracy=0.005)
    for chunk in x.split(97):
        s.add(chunk)
    exact = float(torch.quantile(x.double(), q, interpolation="lower"))
    got = s.quantile(q)
    assert got == pytest.approx(exact, rel=0.005 + 1e-9, abs=1e-9)
    assert s.max == float(x.max()) and s.n == n


def test_sketch_merge_equals_single_pass():
    x = torch.rand(10_000) * 7
    a, b, whole = QuantileSketch(), QuantileSketch(), QuantileSketch()
    a.add(x[:3000]), b.add(x[3000:]), whole.add(x)
    merged = a.merge(b)
    assert torch.equal(merged.counts, whole.counts) and merged.zeros == whole.zeros and merged.max == whole.max
    for q in (0.5, 0.99, 0.999):
        assert merged.quantile(q) == whole.quantile(q)


def test_sketch_memory_is_bounded():
    s = QuantileSketch()
    size = s.counts.numel()
    for _ in range(5):
        s.add(torch.rand(100_000) * 10)
    assert s.counts.numel() == size < 10_000 and s.n == 500_000


def test_calibrate_observes_every_relu(small_cnn):
    g = trace(small_cnn, (1, 8, 8))
    stats = calibrate(g, np.random.rand(40, 1, 8, 8).astype(np.float32), batch_size=16)
    relus = [op.name for op in g if op.kind == "relu"]
    assert sorted(stats.sketches) == sorted(relus) and stats.samples == 40
    assert all(s.n > 0 and s.max >= 0 for s in stats.sketches.values())


def test_calibrate_accepts_a_loader_of_pairs(small_cnn):
    g = trace(small_cnn, (1, 8, 8))
    loader = [(torch.rand(8, 1, 8, 8), torch.zeros(8)) for _ in range(3)]
    assert calibrate(g, loader).samples == 24


def test_empty_calibration_set_is_a_clear_error(small_cnn):
    g = trace(small_cnn, (1, 8, 8))
    with pytest.raises(InputError, match="calibration set is empty"):
        calibrate(g, torch.zeros(0, 1, 8, 8))
    with pytest.raises(InputError, match="calibration set is empty"):
        calibrate(g, [])
