"""Encoders that turn intensities into spikes.

* PoissonEncoder (stateless): each call fires with probability x, x in [0, 1].
* LatencyEncoder(T) (stateful): one spike per element, earlier for larger x.
* PeriodicEncoder(spike) (stateful): replays spike[t % T] at the t-th call.

Stateful encoders encode at the first call after `reset()` and then output
one step per call, so they must be reset between samples.  In 'm' mode every
encoder maps an input sequence [T, N, *] (e.g. an image repeated T times) to
spikes [T, N, *], one step per element of the sequence.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snnc.nn.base import MemoryModule, StepModule
from snnc.nn.errors import ConfigError, InputError

__all__ = ["StatelessEncoder", "StatefulEncoder", "PoissonEncoder", "LatencyEncoder", "PeriodicEncoder"]


class StatelessEncoder(nn.Module, StepModule):
    """Base class of encoders whose output depends on the current input only (any step mode)."""

    def __init__(self, step_mode: str = "s") -> None:
        super().__init__()
        self.step_mode = step_mode


class PoissonEncoder(StatelessEncoder):
    """S = 1 with probability x (x in [0, 1]), independently for every element and call."""

    def forward(self, x: Tensor) -> Tensor:
        return (torch.rand_like(x) <= x).to(x)


class StatefulEncoder(MemoryModule):
    """Encode x into a spike train [T, *] at the first call, then output train[t % T] at the t-th call."""

    def __init__(self, T: int, step_mode: str = "s") -> None:
        super().__init__(step_mode)
        if isinstance(T, bool) or not isinstance(T, int) or T < 1:
            raise ConfigError(f"{type(self).__name__}: T must be an int >= 1, got {T!r}")
        self.T = T
        self.register_memory("spike", None)
        self.register_memory("t", 0)

    def encode(self, x: Tensor) -> Tensor:
        """The spike train [T, *x.shape] for input x."""
        raise NotImplementedError(f"{type(self).__name__} must implement encode")

    def single_step_forward(self, x: Tensor | None = None) -> Tensor:
        if self.spike is None:
            self.spike = self.encode(x)
        out = self.spike[self.t]
        self.t = (self.t + 1) % self.spike.shape[0]
        return out

    def extra_repr(self) -> str:
        return f"T={self.T}, step_mode={self.step_mode}"


class PeriodicEncoder(StatefulEncoder):
    """Replay the fixed spike train `spike` [T, *]: the t-th call returns spike[t % T].

    The call's input is ignored (SpikingJelly code passes the train again); in
    'm' mode an input [T', ...] yields the next T' steps of the train.
    """

    def __init__(self, spike: Tensor, step_mode: str = "s") -> None:
        super().__init__(int(spike.shape[0]), step_mode)
        self.register_buffer("pattern", spike, persistent=False)

    def encode(self, x: Tensor | None) -> Tensor:
        return self.pattern


class LatencyEncoder(StatefulEncoder):
    """One spike per element at step t_f in [0, T-1]; larger x fires earlier (x in [0, 1]).

        linear: t_f = round((T - 1) (1 - x))
        log:    t_f = round(T - 1 - ln(alpha x + 1)),  alpha = e^(T-1) - 1 so that t_f(1) = 0
    """

    def __init__(self, T: int, enc_function: str = "linear", step_mode: str = "s") -> None:
        super().__init__(T, step_mode)
        if enc_function not in ("linear", "log"):
            raise ConfigError(f"LatencyEncoder: enc_function must be 'linear' or 'log', got {enc_function!r}")
        self.enc_function = enc_function
        self.alpha = math.exp(T - 1.0) - 1.0

    def encode(self, x: Tensor) -> Tensor:
        if bool(((x < 0) | (x > 1)).any()):
            raise InputError("LatencyEncoder: inputs must lie in [0, 1]; scale them first")
        if self.enc_function == "log":
            t_f = (self.T - 1.0 - torch.log(self.alpha * x + 1.0)).round().long()
        else:
            t_f = ((self.T - 1.0) * (1.0 - x)).round().long()
        spike = F.one_hot(t_f, num_classes=self.T).to(x)  # [*, T]
        return spike.movedim(-1, 0)
