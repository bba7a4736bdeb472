"""Bit-packing of spikes: 8 per byte, exact round trip."""

from __future__ import annotations

import pytest
import torch

from snnc.nn import tensor_cache
from snnc.nn.errors import InputError


def test_seed_example_packs_1024_spikes_into_128_bytes():
    torch.manual_seed(0)
    spike = torch.randint(0, 2, [1 << 10]).float()
    spike_b, s_dtype, s_shape, s_padding = tensor_cache.float_spike_to_bool(spike)
    assert spike_b.dtype == torch.uint8
    assert spike_b.element_size() * spike_b.numel() == 128
    assert torch.equal(tensor_cache.bool_spike_to_float(spike_b, s_dtype, s_shape, s_padding), spike)


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (4, 1, 3, 3), (0,)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64, torch.bool])
def test_round_trip_any_shape_and_dtype(shape, dtype):
    torch.manual_seed(0)
    spike = (torch.rand(shape) > 0.5).to(dtype)
    packed = tensor_cache.float_spike_to_bool(spike)
    assert packed[0].numel() == -(-spike.numel() // 8)
    out = tensor_cache.bool_spike_to_float(*packed)
    assert out.dtype == dtype and out.shape == spike.shape and torch.equal(out, spike)


def test_bit_order():
    spike = torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 1, 1])
    spike_b, *_ , padding = tensor_cache.float_spike_to_bool(spike)
    assert spike_b.tolist() == [129, 1] and padding == 7


def test_non_spikes_are_rejected():
    with pytest.raises(InputError, match="other than 0 and 1"):
        tensor_cache.float_spike_to_bool(torch.tensor([0.0, 0.5]))
