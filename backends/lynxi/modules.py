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


class LastStep(nn.Module):
    """[T*N, *F] -> [N, *F], the last step: the mean over T of a value computed from a running time mean."""

    def __init__(self, time_steps: int, batch: int):
        super().__init__()
        self.time_steps, self.batch = time_steps, batch

    def forward(self, x: Tensor) -> Tensor:
        return x[(self.time_steps - 1) * self.batch:]


class RunningTimeMean(nn.Module):
    """[T*N, *F] -> [T*N, *F]: at step t the mean of steps 0..t (the IR's TimeMean), unrolled over a static T
    and summed one step at a time as the reference kernel sums."""

    def __init__(self, time_steps: int, batch: int, features: tuple[int, ...]):
        super().__init__()
        self.time_steps, self.batch, self.features = time_steps, batch, tuple(features)

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(self.time_steps, self.batch, -1)
        acc, outs = x[0], [x[0]]
        for t in range(1, self.time_steps):
            acc = acc + x[t]
            outs.append(acc / float(t + 1))
        return torch.stack(outs).reshape(self.time_steps * self.batch, *self.features)


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


class UnrolledSignedIF(nn.Module):
    """The conversion's signed IF neuron (ir SignedIF) over a folded sequence [T*N, *F], unrolled over a static T.

    Each step applies `snnc.core.dynamics.signed_if_step` to the slice [t*N, (t+1)*N). Its state is V and
    the net spike count stacked along dim 0, [2N, *F] (4-D at most, like every other tensor), in
    `state_dtype`; without a state input V starts at `v_init` and the count at 0 (`initial_state`).
    The spikes, exactly -1, 0 or 1, are returned in `spike_dtype`.
    """

    def __init__(self, time_steps: int, batch: int, features: tuple[int, ...], v_init: float, v_threshold: float,
                 state_dtype: torch.dtype = torch.float32, spike_dtype: torch.dtype = torch.float32):
        super().__init__()
        self.time_steps, self.batch, self.v_threshold = time_steps, batch, float(v_threshold)
        self.state_dtype, self.spike_dtype = state_dtype, spike_dtype
        self.register_buffer("state0", initial_state((2 * batch, *features), [v_init, 0.0], state_dtype))

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        n = self.batch
        x = x if x.dtype == self.state_dtype else x.to(self.state_dtype)
        state = self.state0 if state is None else state
        v, count = state[:n], state[n:]
        spikes = []
        for t in range(self.time_steps):
            s, v, count = dynamics.signed_if_step(v, count, x[t * n:(t + 1) * n], self.v_threshold)
            spikes.append(s)
        out = torch.cat(spikes, 0)
        return (out if out.dtype == self.spike_dtype else out.to(self.spike_dtype)), torch.cat((v, count), 0)


def initial_state(shape, init: float | list[float] | None, dtype: torch.dtype) -> Tensor:
    """A state tensor at the start of a stream: `init` everywhere, or a list of values for equal parts along
    dim 0 (a signed neuron's [V; count]); None is 0."""
    if isinstance(init, (list, tuple)):
        parts = len(init)
        return torch.cat([torch.full((shape[0] // parts, *shape[1:]), float(v), dtype=dtype) for v in init], 0)
    return torch.full(tuple(shape), 0.0 if init is None else float(init), dtype=dtype)


class UnrolledRunningMaxPool(nn.Module):
    """The conversion's converging max pool (ir RunningMaxPool2d) over a folded sequence [T*N, C, H, W]:
    A += x[t], y[t] = maxpool(A) - maxpool(A before), step by step in `state_dtype` as the reference kernel
    (runtime/kernels.py) does it. The sums A [N, C, H, W] are its state (zeros without a state input)."""

    def __init__(self, pool: nn.MaxPool2d, time_steps: int, batch: int, features: tuple[int, ...],
                 state_dtype: torch.dtype = torch.float32, out_dtype: torch.dtype = torch.float32):
        super().__init__()
        self.pool = pool
        self.time_steps, self.batch = time_steps, batch
        self.state_dtype, self.out_dtype = state_dtype, out_dtype
        self.register_buffer("acc0", torch.zeros((1, *features), dtype=state_dtype))

    def forward(self, x: Tensor, acc: Tensor | None = None) -> tuple[Tensor, Tensor]:
        n = self.batch
        x = x if x.dtype == self.state_dtype else x.to(self.state_dtype)
        acc = self.acc0 if acc is None else acc
        prev = self.pool(acc)
        out = []
        for t in range(self.time_steps):
            acc = acc + x[t * n:(t + 1) * n]
            cur = self.pool(acc)
            out.append(cur - prev)
            prev = cur
        y = torch.cat(out, 0)
        return (y if y.dtype == self.out_dtype else y.to(self.out_dtype)), acc


class AdaptiveCopies(nn.Module):
    """Adaptive average pooling [B, C, H, W] -> [B, C, oh, ow] to a multiple of the input size (VGG's 1x1 ->
    7x7): every window is one element, so each output is a copy, written as two constant 0/1 matrix products
    (exact: one term times 1, the others times 0) with no tensor above 4-D."""

    def __init__(self, size: tuple[int, int], output_size: tuple[int, int]):
        super().__init__()
        (h, w), (oh, ow) = size, output_size
        rows, cols = torch.zeros(oh, h), torch.zeros(ow, w)
        rows[torch.arange(oh), torch.arange(oh) * h // oh] = 1.0  # output row i copies row floor(i h / oh)
        cols[torch.arange(ow), torch.arange(ow) * w // ow] = 1.0
        self.register_buffer("rows", rows)  # [oh, H]
        self.register_buffer("cols", cols.t().contiguous())  # [W, ow]

    def forward(self, x: Tensor) -> Tensor:
        return torch.matmul(torch.matmul(self.rows, x), self.cols)


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


class Slice(nn.Module):
    """x[:, ..., start:end] along feature dim `dim` (tensor dim 1 + dim): a static ONNX Slice."""

    def __init__(self, dim: int, start: int, end: int):
        super().__init__()
        self.dim, self.start, self.end = 1 + dim, start, end

    def forward(self, x: Tensor) -> Tensor:
        return x.narrow(self.dim, self.start, self.end - self.start)


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
