"""Step-mode-aware layers.

Each stateless layer subclasses its torch.nn counterpart (same arguments, same
state_dict keys) and adds `step_mode`: in 's' mode it is the torch layer on
[N, *]; in 'm' mode it runs once on the flattened sequence [T*N, *] and returns
[T, N, *'].  Dropout is stateful: one mask per sequence.

The containers of `snnc.nn.container` are re-exported here, as in SpikingJelly.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snnc.nn import functional
from snnc.nn.base import MemoryModule, StepMode, StepModule
from snnc.nn.container import (
    MultiStepContainer,
    SeqToANNContainer,
    StepModeContainer,
    TLastMultiStepContainer,
    TLastSeqToANNContainer,
)
from snnc.nn.errors import ConfigError

__all__ = [
    "Conv1d", "Conv2d", "Linear", "BatchNorm1d", "BatchNorm2d",
    "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Flatten",
    "Dropout", "Dropout2d",
    "MultiStepContainer", "SeqToANNContainer", "StepModeContainer",
    "TLastMultiStepContainer", "TLastSeqToANNContainer",
]


class _StepModeLayer(StepModule):
    """Mixin for a stateless torch layer: 's' runs it as is, 'm' on [T*N, *].

    Layers with `leading_dims_free` (Linear) act on the last dimension only and
    take [T, N, *] directly, so any number of leading dimensions works.
    """

    leading_dims_free = False

    def _init_step_mode(self, step_mode: str | StepMode) -> None:
        self.step_mode = step_mode

    def forward(self, x: Tensor) -> Tensor:
        if self.step_mode is StepMode.SINGLE or self.leading_dims_free:
            return super().forward(x)
        return functional.seq_to_ann_forward(x, super().forward)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, step_mode={self.step_mode}"


def _layer(torch_cls: type[nn.Module], leading_dims_free: bool = False) -> type[nn.Module]:
    """Build the step-mode-aware subclass of `torch_cls` (arguments as torch_cls, plus step_mode)."""

    def __init__(self: Any, *args: Any, step_mode: str = "s", **kwargs: Any) -> None:
        torch_cls.__init__(self, *args, **kwargs)
        self._init_step_mode(step_mode)

    doc = (f"torch.nn.{torch_cls.__name__} with a step mode: 's' takes [N, *], 'm' takes [T, N, *]. "
           f"Same arguments (plus step_mode) and state_dict keys as torch.nn.{torch_cls.__name__}.")
    return type(torch_cls.__name__, (_StepModeLayer, torch_cls), {
        "__init__": __init__, "__doc__": doc, "__module__": __name__, "__qualname__": torch_cls.__name__,
        "leading_dims_free": leading_dims_free,
    })


Conv1d = _layer(nn.Conv1d)
Conv2d = _layer(nn.Conv2d)
Linear = _layer(nn.Linear, leading_dims_free=True)
BatchNorm1d = _layer(nn.BatchNorm1d)
BatchNorm2d = _layer(nn.BatchNorm2d)
MaxPool2d = _layer(nn.MaxPool2d)
AvgPool2d = _layer(nn.AvgPool2d)
AdaptiveAvgPool2d = _layer(nn.AdaptiveAvgPool2d)
Flatten = _layer(nn.Flatten)


class Dropout(MemoryModule):
    """Dropout whose mask stays fixed over the time steps of a sequence.

    In 'm' mode one mask (drawn for x_seq[0]'s shape) multiplies every step; in
    's' mode the mask drawn at the first step is reused until `reset()`.  The
    kept values are scaled by 1/(1-p), as torch.nn.Dropout does; eval mode is
    the identity.
    """

    def __init__(self, p: float = 0.5, step_mode: str = "s") -> None:
        super().__init__(step_mode)
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"{type(self).__name__}: p must be in [0, 1), got {p!r}")
        self.p = float(p)
        self.register_memory("mask", None)

    def extra_repr(self) -> str:
        return f"p={self.p}, step_mode={self.step_mode}"

    def create_mask(self, x: Tensor) -> Tensor:
        return F.dropout(torch.ones_like(x), self.p, training=True)

    def _masked(self, x: Tensor, step: Tensor) -> Tensor:
        if not self.training:
            return x
        if self.mask is None:
            self.mask = self.create_mask(step)
        return x * self.mask

    def single_step_forward(self, x: Tensor) -> Tensor:
        return self._masked(x, x)

    def multi_step_forward(self, x_seq: Tensor) -> Tensor:
        return self._masked(x_seq, x_seq[0])


class Dropout2d(Dropout):
    """Dropout of whole channels ([N, C, H, W]), one mask per sequence."""

    def __init__(self, p: float = 0.2, step_mode: str = "s") -> None:
        super().__init__(p, step_mode)

    def create_mask(self, x: Tensor) -> Tensor:
        return F.dropout2d(torch.ones_like(x), self.p, training=True)
