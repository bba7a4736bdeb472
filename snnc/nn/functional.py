"""Functions that run single-step modules over sequences, and whole-network settings.

Sequences are [T, N, *] (time first) unless the name says `t_last` ([N, *, T]).
`single_step_module` / `stateless_module` may be a module, a callable, or a
list / tuple / nn.Sequential of them, applied in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Union

import torch
from torch import Tensor, nn

from snnc.nn.base import MemoryModule, StepMode
from snnc.nn.neuron import BaseNode

__all__ = [
    "multi_step_forward",
    "t_last_multi_step_forward",
    "chunk_multi_step_forward",
    "seq_to_ann_forward",
    "t_last_seq_to_ann_forward",
    "set_step_mode",
    "reset_net",
    "detach_net",
    "set_backend",
]

Stepper = Union[nn.Module, Callable[[Tensor], Tensor], Sequence[Callable[[Tensor], Tensor]]]


def _compose(modules: Stepper) -> Callable[[Tensor], Tensor]:
    if not isinstance(modules, (list, tuple, nn.Sequential)):
        return modules

    def run(x: Tensor) -> Tensor:
        for m in modules:
            x = m(x)
        return x

    return run


def multi_step_forward(x_seq: Tensor, single_step_module: Stepper) -> Tensor:
    """Y[t] = module(X[t]) for t = 0..T-1, one step at a time; [T, N, *] -> [T, N, *]."""
    step = _compose(single_step_module)
    return torch.stack([step(x_seq[t]) for t in range(x_seq.shape[0])])


def t_last_multi_step_forward(x_seq: Tensor, single_step_module: Stepper) -> Tensor:
    """As `multi_step_forward` for time-last sequences [N, *, T]."""
    step = _compose(single_step_module)
    return torch.stack([step(x_seq[..., t]) for t in range(x_seq.shape[-1])], dim=-1)


def chunk_multi_step_forward(split_size: int, x_seq: Tensor, multi_step_module: nn.Module) -> Tensor:
    """Feed x_seq [T, *] to a multi-step module in chunks of `split_size` steps and concatenate.

    Stateful modules carry their state from chunk to chunk, so the result equals
    one call on the whole sequence while using less memory for large T.
    """
    return torch.cat([multi_step_module(chunk) for chunk in torch.split(x_seq, split_size)], 0)


def seq_to_ann_forward(x_seq: Tensor, stateless_module: Stepper) -> Tensor:
    """Apply stateless layers to all steps at once: [T, N, *] -> [T*N, *] -> layers -> [T, N, *']."""
    t, n = x_seq.shape[0], x_seq.shape[1]
    y = _compose(stateless_module)(x_seq.flatten(0, 1))
    return y.unflatten(0, (t, n))


def t_last_seq_to_ann_forward(x_seq: Tensor, stateless_module: Stepper) -> Tensor:
    """Apply stateless layers to every step of a time-last sequence [N, *, T] with torch.vmap.

    Not for BatchNorm: its running statistics depend on the whole batch.
    """
    return torch.vmap(_compose(stateless_module), in_dims=-1, out_dims=-1)(x_seq)


def set_step_mode(net: nn.Module, step_mode: str | StepMode) -> None:
    """Set `step_mode` on every module of `net` that has one.

    The children of wrapping containers (MultiStepContainer, SeqToANNContainer,
    StepModeContainer, ...) keep their single-step mode: the container provides
    the loop over time.
    """
    mode = StepMode.parse(step_mode)
    stack = [net]
    while stack:
        m = stack.pop()
        if hasattr(m, "step_mode"):
            m.step_mode = mode
        if not getattr(m, "keeps_child_step_mode", False):
            stack.extend(m.children())


def reset_net(net: nn.Module) -> None:
    """Reset the state of every stateful module in `net` (call between samples/batches)."""
    for m in net.modules():
        reset = getattr(m, "reset", None)
        if isinstance(m, MemoryModule) or callable(reset):
            reset()


def detach_net(net: nn.Module) -> None:
    """Cut the autograd history of every state in `net` (truncated BPTT)."""
    for m in net.modules():
        if isinstance(m, MemoryModule):
            m.detach()


def set_backend(net: nn.Module, backend: str, instance: type | tuple[type, ...] | None = None) -> None:
    """Set `backend` on every neuron of `net` (only those of type `instance` when given)."""
    for m in net.modules():
        if isinstance(m, instance or BaseNode) and hasattr(m, "backend"):
            m.backend = backend
