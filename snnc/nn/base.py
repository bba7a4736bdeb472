"""Step modes and the stateful-module base class.

A module in single-step mode ('s') takes one time step, shape [N, *]; in
multi-step mode ('m') it takes a whole sequence, shape [T, N, *].  A stateful
(memory) module keeps its state between calls until `reset()`.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from snnc.nn.errors import StateError, StepModeError


class StepMode(str, enum.Enum):
    """How a module consumes its input: one step [N, *] or a sequence [T, N, *]."""

    SINGLE = "s"
    MULTI = "m"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @classmethod
    def parse(cls, value: str | StepMode) -> StepMode:
        """Read 's'/'m' (or a StepMode); anything else raises StepModeError."""
        try:
            return cls(value)
        except ValueError:
            raise StepModeError(
                f"step_mode {value!r} is invalid: expected 's' (input [N, *]) or 'm' (input [T, N, *])"
            ) from None


class StepModule:
    """Mixin giving a module a validated `step_mode` attribute."""

    def supported_step_mode(self) -> tuple[StepMode, ...]:
        return (StepMode.SINGLE, StepMode.MULTI)

    @property
    def step_mode(self) -> StepMode:
        return self._step_mode

    @step_mode.setter
    def step_mode(self, value: str | StepMode) -> None:
        mode = StepMode.parse(value)
        supported = self.supported_step_mode()
        if mode not in supported:
            names = ", ".join(repr(m.value) for m in supported)
            raise StepModeError(
                f"{type(self).__name__} supports step_mode {names} only, got {value!r}"
            )
        self._step_mode = mode


class SingleStepModule(StepModule):
    """A module that only runs in single-step mode."""

    def supported_step_mode(self) -> tuple[StepMode, ...]:
        return (StepMode.SINGLE,)


class MultiStepModule(StepModule):
    """A module that only runs in multi-step mode."""

    def supported_step_mode(self) -> tuple[StepMode, ...]:
        return (StepMode.MULTI,)


class MemoryModule(nn.Module, StepModule):
    """Base class of stateful modules.

    States are registered with `register_memory(name, initial_value)` and read
    and written as plain attributes (`self.v`).  `reset()` puts every state back
    to its initial value; a float initial value is broadcast to the input's
    shape on first use (see `materialize_memory`).  Subclasses implement
    `single_step_forward`; the default `multi_step_forward` loops over time.
    """

    def __init__(self, step_mode: str | StepMode = StepMode.SINGLE) -> None:
        super().__init__()
        self._memories: dict[str, Any] = {}
        self._memories_rv: dict[str, Any] = {}
        self.step_mode = step_mode

    # ---- forward -------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.step_mode is StepMode.SINGLE:
            return self.single_step_forward(*args, **kwargs)
        return self.multi_step_forward(*args, **kwargs)

    def single_step_forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement single_step_forward")

    def multi_step_forward(self, x_seq: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        """Run `single_step_forward` on x_seq[0], x_seq[1], ... and stack the outputs."""
        return torch.stack([self.single_step_forward(x_seq[t], *args, **kwargs) for t in range(x_seq.shape[0])])

    def extra_repr(self) -> str:
        return f"step_mode={self.step_mode}"

    # ---- states --------------------------------------------------------------
    def register_memory(self, name: str, value: Any) -> None:
        """Declare state `name` whose value after `reset()` is `value`."""
        if name in self._memories or hasattr(self, name):
            raise StateError(f"{type(self).__name__}: cannot register memory {name!r}: the name is taken")
        self._memories[name] = value
        self._memories_rv[name] = copy.deepcopy(value)

    def reset(self) -> None:
        """Put every state back to its initial value."""
        for name, value in self._memories_rv.items():
            self._memories[name] = copy.deepcopy(value)

    def detach(self) -> None:
        """Cut the autograd history of the states (truncated BPTT)."""
        for name, value in self._memories.items():
            if isinstance(value, Tensor):
                self._memories[name] = value.detach()

    def materialize_memory(self, name: str, like: Tensor) -> Tensor:
        """Return state `name` as a tensor shaped like `like`.

        A non-tensor value (the initial float) becomes `torch.full_like(like, value)`
        and is stored; a stored tensor of another shape raises StateError, since
        it belongs to a different input (forgot `functional.reset_net`?).
        """
        value = self._memories[name]
        if not isinstance(value, Tensor):
            value = torch.full_like(like, value, requires_grad=False)
            self._memories[name] = value
        elif value.shape != like.shape:
            raise StateError(
                f"{type(self).__name__}: state {name!r} has shape {list(value.shape)} but the input step has "
                f"shape {list(like.shape)}; call functional.reset_net(net) before feeding a new batch"
            )
        return value

    def memories(self) -> Iterator[Any]:
        yield from self._memories.values()

    def named_memories(self) -> Iterator[tuple[str, Any]]:
        yield from self._memories.items()

    # ---- attribute plumbing: states read and write like attributes -----------
    def __getattr__(self, name: str) -> Any:
        memories = self.__dict__.get("_memories")
        if memories is not None and name in memories:
            return memories[name]
        return super().__getattr__(name)

    def __setattr__(self, name: str, value: Any) -> None:
        memories = self.__dict__.get("_memories")
        if memories is not None and name in memories:
            memories[name] = value
        else:
            super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        memories = self.__dict__.get("_memories")
        if memories is not None and name in memories:
            del memories[name]
            del self._memories_rv[name]
        else:
            super().__delattr__(name)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._memories))

    def __getstate__(self) -> dict[str, Any]:
        # deepcopy / pickle: keep state values, drop their autograd history.
        state = super().__getstate__()
        state["_memories"] = {k: v.detach() if isinstance(v, Tensor) else v for k, v in self._memories.items()}
        return state

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> MemoryModule:
        # .to() / .cuda() / .double() move tensor states along with parameters.
        for store in (self._memories, self._memories_rv):
            for name, value in store.items():
                if isinstance(value, Tensor):
                    store[name] = fn(value)
        return super()._apply(fn, *args, **kwargs)
