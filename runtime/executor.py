"""Runs a plan over windows of time steps: static nodes once, dynamic nodes per window.

Stateless ops see their dynamic inputs with time folded into the batch,
[c*N, *]; neurons run all c steps of a window in one kernel call and keep
their membrane potential in `state` between windows (and between `step()`
calls). A failing kernel is re-raised naming the node and its source.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Protocol

import torch
from torch import Tensor

from snnc.core.errors import InputError, LoweringError, SnncError
from snnc.ir import ops
from snnc.runtime import event_conv, neurons
from snnc.runtime.kernels import STATEFUL_KERNELS, call
from snnc.runtime.plan import Node, Plan



class Hooks(Protocol):
    """Observers of a run (probes, statistics). t0/t1 are None for static values."""

    def value(self, node: Node, x: Tensor, static: bool, t0: int | None, t1: int | None) -> None: ...

    def potential(self, node: Node, v_seq: Tensor, t0: int, t1: int) -> None: ...


_PASS_THROUGH = (ops.LayoutCast, ops.Identity, ops.Output)


def canonical(x: Tensor, fmt: torch.memory_format) -> Tensor:
    """x laid out in `fmt` with the canonical strides of that format.

    A dense tensor with a size-1 channel dim counts as both formats, and torch
    picks a conv's output format from the strides, so restride it explicitly.
    """
    x = x.contiguous(memory_format=fmt)
    n, c, h, w = x.shape
    strides = (c * h * w, 1, w * c, c) if fmt is torch.channels_last else (c * h * w, h * w, w, 1)
    return x if x.stride() == strides else x.as_strided(x.shape, strides)


class Executor:
    """Executes plans of one graph with its parameters on one device and dtype."""

    def __init__(self, params: Mapping[str, Tensor], *, channels_last: bool = False, batch_invariant: bool = True):
        self.params = dict(params)
        self.channels_last = channels_last
        self.batch_invariant = batch_invariant
        self._packed: dict[tuple[str, float], event_conv.PackedConv] = {}  # event convs' packed weights
        if channels_last:  # oneDNN's preferred weight layout for channels_last activations
            self.params.update({k: v.contiguous(memory_format=torch.channels_last)
                                for k, v in params.items() if v.dim() == 4})

    def run(self, plan: Plan, feeds: Mapping[str, object], windows: Iterable[tuple[int, int]],
            state: dict[str, Tensor], *, hooks: Iterable[Hooks] = (), want_v: frozenset[str] = frozenset(),
            on_window: Callable[[int, int, dict[str, Tensor]], None] | None = None,
            tick: Callable[[], None] | None = None) -> dict[str, Tensor]:
        """Execute; returns the static values still needed after the static phase.

        `on_window(t0, t1, values)` sees each window's dynamic values before they
        are dropped (the caller gathers outputs/probes from it).
        """
        hooks = list(hooks)
        static: dict[str, Tensor] = {}
        for node in plan.static:
            if isinstance(node.op, ops.Input):
                static[node.name] = feeds[node.name]  # type: ignore[assignment]
            else:
                static[node.name] = self._exec(node, [(static[i], True) for i in node.inputs], 0)
            for h in hooks:
                h.value(node, static[node.name], True, None, None)
        needed = {i for n in plan.dynamic for i in n.inputs} | set(plan.keep)
        static = {k: v for k, v in static.items() if k in needed}

        for t0, t1 in windows:
            c = t1 - t0
            values: dict[str, Tensor] = {}
            for node in plan.dynamic:
                if isinstance(node.op, ops.Input):
                    values[node.name] = feeds[node.name](t0, t1)  # type: ignore[operator]
                else:
                    ins = [(static[i], True) if i in static else (values[i], False) for i in node.inputs]
                    if node.neuron is not None:
                        values[node.name] = self._neuron(node, ins, c, state, hooks, node.op.name in want_v, t0, t1)
                    elif node.op.stateful:
                        values[node.name] = self._stateful(node, ins, c, state)
                    else:
                        values[node.name] = self._exec(node, ins, c)
                for h in hooks:
                    h.value(node, values[node.name], False, t0, t1)
                for i in node.inputs:  # free early: peak memory ~ two layers of one window
                    if plan.last_use.get(i) == node.name and i not in plan.keep:
                        values.pop(i, None)
                if tick is not None:
                    tick()
            if on_window is not None:
                on_window(t0, t1, values)
        return static

    # -- one node ---------------------------------------------------------------
    def _exec(self, node: Node, ins: list[tuple[Tensor, bool]], c: int) -> Tensor:
        op = node.op
        if isinstance(op, _PASS_THROUGH):
            return ins[0][0]
        try:
            if node.spike_amplitude is not None and not node.static:
                return self._event_conv(node, ins[0][0], c)
            if node.static:
                return call(op, [self._format(x) for x, _ in ins], self.params, batch_invariant=self.batch_invariant)
            batch = next(x.shape[1] for x, s in ins if not s)
            folded = []
            for x, s in ins:
                if s:
                    x = x.unsqueeze(0).expand(c, *x.shape)
                folded.append(self._format(x.flatten(0, 1)))
            y = call(op, folded, self.params, batch_invariant=self.batch_invariant)
            return y.unflatten(0, (c, batch))
        except SnncError:
            raise
        except Exception as e:  # noqa: BLE001 - add the node to torch's message
            raise LoweringError(f"while executing {op.where()}: {type(e).__name__}: {e}") from e

    def _event_conv(self, node: Node, x: Tensor, c: int) -> Tensor:
        """A Conv2d on spike inputs [c, N, C, H, W] (0 or node.spike_amplitude) on the event kernel."""
        op: ops.Conv2d = node.op  # type: ignore[assignment]
        key = (op.name, node.spike_amplitude)
        packed = self._packed.get(key)
        if packed is None:
            packed = event_conv.pack(self.params[op.weight], None if op.bias is None else self.params[op.bias],
                                     node.spike_amplitude, op.stride, op.padding, op.dilation)
            self._packed[key] = packed
        y = event_conv.conv2d(x.flatten(0, 1), packed, channels_last=self.channels_last)
        return y.unflatten(0, (c, x.shape[1]))

    def _format(self, x: Tensor) -> Tensor:
        """[B, C, H, W] values in the plan's memory format, whatever the batch size.

        Kernels pick their algorithm (and so their rounding) from the input's
        strides, and torch guesses an output's format from its input's, which is
        ambiguous for B = 1 or C = 1: fixing the format keeps results batch invariant.
        """
        if x.dim() == 4:
            return canonical(x, torch.channels_last if self.channels_last else torch.contiguous_format)
        return x

    def _stateful(self, node: Node, ins: list[tuple[Tensor, bool]], c: int, state: dict[str, Tensor]) -> Tensor:
        """Run a stateful op other than a neuron (kernels.STATEFUL_KERNELS) over one window of c steps."""
        op = node.op
        x, is_static = ins[0]
        if is_static:
            x = x.unsqueeze(0).expand(c, *x.shape)
        s = state.get(op.name)
        if s is not None and s.shape != x.shape[1:]:
            raise InputError(f"{op.where()}: state has shape {list(s.shape)} but the input step is "
                             f"{list(x.shape[1:])}", hint="call reset() when the batch size changes")
        try:
            y, s = STATEFUL_KERNELS[type(op)](op, x, s)
        except SnncError:
            raise
        except Exception as e:  # noqa: BLE001
            raise LoweringError(f"while executing {op.where()}: {type(e).__name__}: {e}") from e
        state[op.name] = s
        return y

    def _neuron(self, node: Node, ins: list[tuple[Tensor, bool]], c: int, state: dict[str, Tensor],
                hooks: list[Hooks], want_v: bool, t0: int, t1: int) -> Tensor:
        """Run a neuron node over one window of c steps.

        `ins` holds (value, static) for every entry of node.inputs, in order; a
        plain neuron reads only the first (subclasses running fused groups, such
        as the Triton runtime's, read the rest too).
        """
        op = node.op
        x, is_static = ins[0]
        if is_static:
            x = self._format(x)
        elif x.dim() == 5:
            x = self._format(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        v = state.get(op.name)
        step_shape = x.shape if is_static else x.shape[1:]
        if v is not None and v.shape != step_shape:
            raise InputError(f"{op.where()}: state has shape {list(v.shape)} but the input step is "
                             f"{list(step_shape)}", hint="call reset() when the batch size changes")
        try:
            out, v, v_seq = neurons.run(node.neuron, x, c, v, static=is_static, want_v=want_v)
        except SnncError:
            raise
        except Exception as e:  # noqa: BLE001
            raise LoweringError(f"while executing {op.where()}: {type(e).__name__}: {e}") from e
        state[op.name] = v
        if v_seq is not None:
            for h in hooks:
                h.potential(node, v_seq, t0, t1)
        return out
