"""Small torch modules built from standard ops only, for what torch.nn has no module of.

Every tensor they see is at most 4-D: time is folded into the batch,
[T*N, *features], and a neuron walks the T slices [N, *features] of it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from snnc.core import dynamics


class Scale(nn.Module):
    """y = factor * x, times a per-channel weight over dim 1 when given."""

    def __init__(self, factor: float, weight: Tensor | None = None, rank: int = 2):
        super().__init__()
        self.factor = float(factor)
        if weight is not None:  # shaped to broadcast over [B, C, *spatial]
            self.register_buffer("weight", weight.detach().clone().reshape(-1, *([1] * (rank - 2))))
        else:
            self.weight = None

    def forward(self, x: Tensor) -> Tensor:
        # same float ops, in the same order, as the CPU reference kernel
        y = x * self.factor if self.factor != 1.0 else x
        return y * self.weight if self.weight is not None else y


class Add(nn.Module):
    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return a + b


class Concat(nn.Module):
    """Concatenation along a feature dim (dim 0 of the features is tensor dim 1)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = 1 + dim

    def forward(self, *xs: Tensor) -> Tensor:
        return torch.cat(xs, dim=self.dim)


class RepeatTime(nn.Module):
    """[N, *] -> [T*N, *]: one step held constant over T steps, time-major."""

    def __init__(self, time_steps: int):
        super().__init__()
        self.time_steps = time_steps

    def forward(self, x: Tensor) -> Tensor:
        # a concat of T copies: the exporter writes x.repeat as Expand+Tile with a dim it cannot infer
        return torch.cat([x] * self.time_steps, 0)


class MeanOverTime(nn.Module):
    """[T*N, *F] -> [N, *F], the mean over T (a firing rate), through a 3-D [T, N, prod(F)] view."""

    def __init__(self, time_steps: int, batch: int, features: tuple[int, ...]):
        super().__init__()
        self.time_steps, self.batch, self.features = time_steps, batch, tuple(features)

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(self.time_steps, self.batch, -1).mean(0).reshape(self.batch, *self.features)


class UnrolledNeuron(nn.Module):
    """A spiking neuron over a folded sequence [T*N, *F], unrolled over a static T.

    Each step applies `snnc.core.dynamics.step` (charge, fire, reset) to the slice
    [t*N, (t+1)*N), so the float ops are exactly those of the reference. The
    state V is [N, *F] in `state_dtype` (the input is cast to it); without a
    state input it starts at `v_init`. The spikes, exactly 0 or 1, are returned
    in `spike_dtype`.
    """

    def __init__(self, params: dynamics.NeuronParams, time_steps: int, batch: int, features: tuple[int, ...],
                 v_init: float, state_dtype: torch.dtype = torch.float32,
                 spike_dtype: torch.dtype = torch.float32):
        super().__init__()
        self.params = params
        self.time_steps, self.batch = time_steps, batch
        self.state_dtype, self.spike_dtype = state_dtype, spike_dtype
        # [1, *F], broadcast over the batch: elementwise the same floats as the reference's filled [N, *F]
        self.register_buffer("v_init", torch.full((1, *features), float(v_init), dtype=state_dtype))

    def forward(self, x: Tensor, v: Tensor | None = None) -> tuple[Tensor, Tensor]:
        n = self.batch
        x = x if x.dtype == self.state_dtype else x.to(self.state_dtype)
        state = self.v_init if v is None else v
        spikes = []
        for t in range(self.time_steps):
            s, state = dynamics.step(self.params, state, x[t * n:(t + 1) * n])
            spikes.append(s)
        out = torch.cat(spikes, 0)
        return (out if out.dtype == self.spike_dtype else out.to(self.spike_dtype)), state


# ---------------------------------------------------------------- tensor and layout ops over [B, *features]
class Reshape(nn.Module):
    """x.reshape(shape), shape with its static leading (T*N or N) dim."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(self.shape)


class Permute(nn.Module):
    def __init__(self, perm: tuple[int, ...]):
        super().__init__()
        self.dims = (0, *(1 + p for p in perm))

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(*self.dims)


class Mean(nn.Module):
    def __init__(self, dims: tuple[int, ...], keepdim: bool):
        super().__init__()
        self.dims, self.keepdim = tuple(1 + d for d in dims), keepdim

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=self.dims, keepdim=self.keepdim)


class Sum(nn.Module):
    def __init__(self, dims: tuple[int, ...], keepdim: bool):
        super().__init__()
        self.dims, self.keepdim = tuple(1 + d for d in dims), keepdim

    def forward(self, x: Tensor) -> Tensor:
        return x.sum(dim=self.dims, keepdim=self.keepdim)


class Narrow(nn.Module):
    def __init__(self, dim: int, start: int, length: int):
        super().__init__()
        self.dim, self.start, self.length = 1 + dim, start, length

    def forward(self, x: Tensor) -> Tensor:
        return x.narrow(self.dim, self.start, self.length)


class Mul(nn.Module):
    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return a * b


class Sub(nn.Module):
    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return a - b


class AddScalar(nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.value = float(value)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.value


class MatMul(nn.Module):
    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.matmul(a, b)


class Clamp(nn.Module):
    def __init__(self, lo: float | None, hi: float | None):
        super().__init__()
        self.lo, self.hi = lo, hi

    def forward(self, x: Tensor) -> Tensor:
        return torch.clamp(x, self.lo, self.hi)
