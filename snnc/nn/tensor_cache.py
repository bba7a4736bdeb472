"""Bit-packing of spike tensors: 8 spikes per byte, exact round trip.

    spike_b, s_dtype, s_shape, s_padding = float_spike_to_bool(spike)   # uint8, numel/8 bytes
    spike == bool_spike_to_float(spike_b, s_dtype, s_shape, s_padding)

Useful as a monitor's `function_on_output` to keep long spike records small.
"""

from __future__ import annotations

import torch
from torch import Tensor

from snnc.nn.errors import InputError

__all__ = ["float_spike_to_bool", "bool_spike_to_float"]


def _bit_weights(device: torch.device) -> Tensor:
    return torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8, device=device)


def float_spike_to_bool(spike: Tensor) -> tuple[Tensor, torch.dtype, torch.Size, int]:
    """Pack a 0/1 tensor into uint8 bytes (bit i of byte k = element 8k+i of spike.flatten()).

    Returns (packed [ceil(numel/8)] uint8, spike.dtype, spike.shape, number of padding bits).
    """
    flat = spike.detach().flatten()
    if not bool(((flat == 0) | (flat == 1)).all()):
        raise InputError("float_spike_to_bool: the tensor holds values other than 0 and 1; only spikes can be packed")
    padding = (-flat.numel()) % 8
    bits = torch.nn.functional.pad(flat.to(torch.uint8), (0, padding)).view(-1, 8)
    packed = (bits * _bit_weights(flat.device)).sum(dim=1, dtype=torch.uint8)
    return packed, spike.dtype, spike.shape, padding


def bool_spike_to_float(spike_b: Tensor, s_dtype: torch.dtype, s_shape: torch.Size, s_padding: int = 0) -> Tensor:
    """Unpack the output of `float_spike_to_bool` to a tensor of dtype s_dtype and shape s_shape."""
    bits = (spike_b.to(torch.uint8).unsqueeze(1) & _bit_weights(spike_b.device)) != 0
    flat = bits.flatten()
    if s_padding:
        flat = flat[: flat.numel() - s_padding]
    return flat.to(s_dtype).view(s_shape)
