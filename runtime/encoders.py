"""Input encoders of the runtime, selectable by name: constant, poisson, latency, periodic.

An encoder turns a user input into the graph input for the time steps
[t0, t1) of a run. Each step depends only on the input and its absolute index
t, so a run, the same run in chunks and a stream of `step()` calls see the same
encoded spikes. The math is that of `snnc.nn` (SpikingJelly's encoders):

    constant   x[t] = x                                   (the ANN-to-SNN default)
    poisson    S[t] = (u[t] <= x),  u[t] ~ U[0, 1) from a generator seeded by (seed, t)
    latency    S[t] = (t mod W == t_f),  t_f = round((W - 1)(1 - x))          ('linear')
                                          t_f = round(W - 1 - ln(alpha x + 1)),
                                          alpha = e^(W-1) - 1                 ('log')
    periodic   S[t] = x[t mod P] for an input pattern x [P, N, *]
"""

from __future__ import annotations

import math
from typing import Literal, Union

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from snnc.core.errors import InputError


class Constant(BaseModel):
    """The input [N, *] is held constant over time; a [T, N, *] input is used as a sequence."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["constant"] = "constant"


class Poisson(BaseModel):
    """Each element fires with probability x (x in [0, 1]) independently at every step."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["poisson"] = "poisson"
    seed: int = 0

    def window(self, x: Tensor, t0: int, t1: int, T: int | None) -> Tensor:
        out = torch.empty((t1 - t0, *x.shape), dtype=x.dtype, device=x.device)
        gen = torch.Generator(device=x.device)
        for i, t in enumerate(range(t0, t1)):
            gen.manual_seed(_mix(self.seed, t))
            u = torch.rand(x.shape, generator=gen, device=x.device, dtype=torch.float32)
            out[i] = (u <= x).to(x.dtype)
        return out


class Latency(BaseModel):
    """One spike per element in every window of W steps; larger x fires earlier (x in [0, 1])."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["latency"] = "latency"
    window_steps: int | None = Field(default=None, ge=1)  # W; None: the run's T
    function: Literal["linear", "log"] = "linear"

    def fire_times(self, x: Tensor, W: int) -> Tensor:
        if bool(((x < 0) | (x > 1)).any()):
            raise InputError("the latency encoder needs inputs in [0, 1]; scale them first")
        if self.function == "log":
            if W - 1 > 700:
                raise InputError(f"the log latency encoder overflows for a window of {W} steps; use 'linear'")
            alpha = math.exp(W - 1.0) - 1.0
            return (W - 1.0 - torch.log(alpha * x + 1.0)).round().long()
        return ((W - 1.0) * (1.0 - x)).round().long()

    def window(self, x: Tensor, t0: int, t1: int, T: int | None) -> Tensor:
        W = self.window_steps or T
        if W is None:
            raise InputError("the latency encoder needs its window: Latency(window_steps=W) when streaming with step()")
        tf = self.fire_times(x, W)
        t = torch.arange(t0, t1, device=x.device).remainder(W).view(-1, *([1] * x.dim()))
        return (t == tf.unsqueeze(0)).to(x.dtype)


class Periodic(BaseModel):
    """Replay the input pattern [P, N, *]: step t is pattern[t mod P]."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["periodic"] = "periodic"

    def window(self, x: Tensor, t0: int, t1: int, T: int | None) -> Tensor:
        idx = torch.arange(t0, t1, device=x.device).remainder(x.shape[0])
        return x.index_select(0, idx)


Encoder = Union[Constant, Poisson, Latency, Periodic]
NAMES = ("constant", "poisson", "latency", "periodic")


def get_encoder(spec: "str | Encoder | None", *, seed: int | None = None) -> Encoder:
    """An encoder from its name ('poisson', ...) or an Encoder instance; None is 'constant'."""
    if spec is None:
        return Constant()
    if isinstance(spec, (Constant, Poisson, Latency, Periodic)):
        if seed is not None and isinstance(spec, Poisson):
            return spec.model_copy(update={"seed": seed})
        return spec
    if isinstance(spec, str):
        name = spec.strip().lower()
        if name == "constant":
            return Constant()
        if name == "poisson":
            return Poisson(seed=0 if seed is None else seed)
        if name == "latency":
            return Latency()
        if name == "periodic":
            return Periodic()
    raise InputError(f"unknown encoder {spec!r}", hint=f"use one of {', '.join(NAMES)} or an encoder object")


def _mix(seed: int, t: int) -> int:
    """A 63-bit generator seed for step t (splitmix64 of seed and t)."""
    z = (seed * 0x9E3779B97F4A7C15 + (t + 1) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) & 0x7FFFFFFFFFFFFFFF
