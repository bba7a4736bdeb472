"""Runs a plan over windows of time steps: static nodes once, dynamic nodes per window.

Stateless ops see their dynamic inputs with time folded into the batch,
[c*N, *]; neurons run all c steps of a window in one kernel call and keep
their membrane potential in `state` between windows (and between `step()`
calls). A failing kernel is re-raised naming the node and its source.

Delays and recurrent edges keep state too (`state[name]`): a delay its line of
the last `steps` inputs (so any window works), a `recur` its source's value at
the previous step. A graph with a recurrent edge runs one step per window: the
cycle needs each step's value before the next.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Protocol

import torch
from torch import Tensor

from snnc.core.errors import InputError, LoweringError, SnncError
from snnc.ir import ops
from snnc.runtime import event_conv, neurons, stateful  # noqa: F401 - stateful registers its kernels
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


def initial_state(op: ops.OpBase, state: dict[str, Tensor]) -> Tensor | None:
    """The neuron's V before this window: its own, or (first window) a copy of the final V of the neuron
    it continues (`state_from`; the interpreter runs such graphs in one window, so that one has finished)."""
    v = state.get(op.name)
    src = getattr(op, "state_from", None)
    if v is None and src is not None:
        if src not in state:
            raise LoweringError(f"{op.where()} continues the state of %{src}, which has not run yet")
        v = state[src].clone()
    return v


def _unstored(shape: torch.Size) -> Tensor:
    """Stands in for a value whose spikes were only listed (Node.dense_output False): its shape, no memory."""
    return torch.full((), float("nan")).expand(shape)


class Executor:
    """Executes plans of one graph with its parameters on one device and dtype."""

    def __init__(self, params: Mapping[str, Tensor], *, channels_last: bool = False, batch_invariant: bool = True):
        self.params = dict(params)
        self.channels_last = channels_last
        self.batch_invariant = batch_invariant
        self._packed: dict[tuple[str, float], event_conv.PackedConv] = {}  # event convs' packed weights
        self._events: dict[str, event_conv.Events] = {}  # value -> its events, listed by the node computing it
        if channels_last:  # oneDNN's preferred weight layout for channels_last activations
            self.params.update({k: v.contiguous(memory_format=torch.channels_last)
                                for k, v in params.items() if v.dim() == 4})

    def run(self, plan: Plan, feeds: Mapping[str, object], windows: Iterable[tuple[int, int]],
            state: dict[str, Tensor], *, hooks: Iterable[Hooks] = (), want_v: frozenset[str] = frozenset(),
            on_window: Callable[[int, int, dict[str, Tensor]], None] | None = None,
            tick: Callable[[], None] | None = None, batch: int | None = None) -> dict[str, Tensor]:
        """Execute; returns the static values still needed after the static phase.

        `on_window(t0, t1, values)` sees each window's dynamic values before they
        are dropped (the caller gathers outputs/probes from it).
        """
        hooks = list(hooks)
        recurs: dict[str, list[str]] = {}  # source -> the recur ops reading it one step late
        for op in plan.graph.back_edges():
            recurs.setdefault(op.inputs[0], []).append(op.name)
        if recurs:  # the cycle needs step t before step t + 1
            windows = [(t, t + 1) for t0, t1 in windows for t in range(t0, t1)]
        static: dict[str, Tensor] = {}
        for node in plan.static:
            if isinstance(node.op, ops.Input):
                static[node.name] = feeds[node.name]  # type: ignore[assignment]
            else:
                static[node.name] = self._exec(node, [(static[i], True) for i in node.inputs], 0)
            for h in hooks:
                h.value(node, static[node.name], True, None, None)
        if batch is None:  # the batch size (a recur op's first value is zeros of it)
            batch = next((v.shape[0] for k, v in static.items() if isinstance(plan.graph[k], ops.Input)), None)
        needed = {i for n in plan.dynamic for i in n.inputs} | set(plan.keep)
        static = {k: v for k, v in static.items() if k in needed}
        for src in recurs:
            if src in static:
                raise LoweringError(f"{plan.graph[recurs[src][0]].where()} reads %{src}, which is constant over "
                                    "time: a recurrent edge needs a value that depends on it")

        for t0, t1 in windows:
            c = t1 - t0
            values: dict[str, Tensor] = {}
            self._events.clear()  # lists of this window's values only (none left by a run that raised)
            for node in plan.dynamic:
                if isinstance(node.op, ops.Input):
                    values[node.name] = feeds[node.name](t0, t1)  # type: ignore[operator]
                    batch = values[node.name].shape[1]
                elif isinstance(node.op, ops.Recur):
                    values[node.name] = self._recur(node.op, state, c, batch)
                elif isinstance(node.op, ops.Delay):
                    x, is_static = (static[node.inputs[0]], True) if node.inputs[0] in static else \
                        (values[node.inputs[0]], False)
                    values[node.name] = self._delay(node.op, x, is_static, c, state)
                else:
                    ins = [(static[i], True) if i in static else (values[i], False) for i in node.inputs]
                    if node.then is not None:
                        values[node.name] = self._conv_neuron(node, ins, c, state)
                    elif node.neuron is not None:
                        values[node.name] = self._neuron(node, ins, c, state, hooks, node.op.name in want_v, t0, t1)
                    elif node.op.stateful:  # a stateful op other than a spiking neuron (sigma-delta)
                        values[node.name] = self._stateful(node, ins, c, state)
                    else:
                        values[node.name] = self._exec(node, ins, c)
                for r in recurs.get(node.name, ()):
                    state[r] = values[node.name][-1].clone()
                for h in hooks:
                    h.value(node, values[node.name], False, t0, t1)
                for i in node.inputs:  # free early: peak memory ~ two layers of one window
                    if plan.last_list_use.get(i) == node.name:
                        self._events.pop(i, None)  # no event conv reads it after this one
                    if plan.last_use.get(i) == node.name and i not in plan.keep:
                        values.pop(i, None)
                        self._events.pop(i, None)
                if tick is not None:
                    tick()
            if on_window is not None:
                on_window(t0, t1, values)
        return static

    # -- delays and recurrent edges ---------------------------------------------
    def _recur(self, op: ops.Recur, state: dict[str, Tensor], c: int, batch: int | None) -> Tensor:
        """The source's value one step earlier, [1, N, *] (zeros before the first step)."""
        last = state.get(op.name)
        if last is None:
            if batch is None:
                raise LoweringError(f"{op.where()}: the batch size is unknown before the first input")
            dtype = next((p.dtype for p in self.params.values() if p.is_floating_point()), torch.float32)
            last = torch.zeros((batch, *op.type.features), dtype=dtype,
                               device=next(iter(self.params.values())).device if self.params else "cpu")
        elif batch is not None and last.shape[0] != batch:
            raise InputError(f"{op.where()}: state has batch {last.shape[0]} but the input has {batch}",
                             hint="call reset() when the batch size changes")
        return last.unsqueeze(0).expand(c, *last.shape)

    def _delay(self, op: ops.Delay, x: Tensor, is_static: bool, c: int, state: dict[str, Tensor]) -> Tensor:
        """y[t] = x[t - d] (per feature with `delays`); the line keeps the last `steps` inputs across windows."""
        if is_static:
            x = x.unsqueeze(0).expand(c, *x.shape)
        d_max = op.steps
        if d_max == 0:
            return x
        line = state.get(op.name)
        if line is None:
            line = x.new_zeros((d_max, *x.shape[1:]))
        elif line.shape[1:] != x.shape[1:]:
            raise InputError(f"{op.where()}: state has shape {list(line.shape[1:])} but the input step is "
                             f"{list(x.shape[1:])}", hint="call reset() when the batch size changes")
        full = torch.cat([line, x], 0)  # [d_max + c, N, *]: full[d_max + t] = x[t]
        state[op.name] = full[-d_max:].clone()
        if op.delays is None:
            return full[:c]
        d = self._delay_steps(op, tuple(x.shape[2:]), x.device)
        idx = (d_max - d).unsqueeze(0) + torch.arange(c, device=x.device).view(c, *([1] * d.dim()))
        return torch.gather(full, 0, idx.unsqueeze(1).expand(c, *x.shape[1:]))

    def _delay_steps(self, op: ops.Delay, features: tuple[int, ...], device) -> Tensor:
        raw = self.params[op.delays]
        d = raw.to(torch.float64)
        if not bool(((d >= 0) & (d <= op.steps) & (d == d.round())).all()):
            raise LoweringError(f"{op.where()}: per-feature delays @{op.delays} must be whole steps in "
                                f"0..{op.steps}, got {d.min().item()}..{d.max().item()}")
        return d.to(torch.long).to(device).expand(features) if d.numel() == 1 else \
            d.to(torch.long).to(device).reshape(features)

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

    def _packed_conv(self, node: Node) -> event_conv.PackedConv:
        """The event conv's weights, packed once per session for its input amplitude and sign."""
        op = node.op
        key = (op.name, node.spike_amplitude, node.spike_signed)
        packed = self._packed.get(key)
        if packed is None:
            w, b = self.params[op.weight], None if op.bias is None else self.params[op.bias]
            pack = event_conv.pack_signed if node.spike_signed else event_conv.pack
            if isinstance(op, ops.Linear):
                packed = pack(w[:, :, None, None], b, node.spike_amplitude, (1, 1), (0, 0), (1, 1))
            else:
                packed = pack(w, b, node.spike_amplitude, op.stride, op.padding, op.dilation)
            self._packed[key] = packed
        return packed

    def _conv_neuron(self, node: Node, ins: list[tuple[Tensor, bool]], c: int, state: dict[str, Tensor]) -> Tensor:
        """An event conv, the Add after it (node.then.residual: the node's second input) or the running max
        pool (node.then.pool, whose sums are its state), and the neuron reading it, in one kernel
        (plan._fuse_conv_neurons): returns the neuron's output [c, N, *]."""
        then, x = node.then, ins[0][0]
        n = x.shape[1]
        try:
            packed = self._packed_conv(node)
            ho, wo = packed.out_hw(x.shape[-2], x.shape[-1])
            sums = self._pool_sums(then.pool, (n, packed.out_channels, ho, wo), state) if then.pool else None
            side = 2 if then.pool else 1  # the neuron's pixels: the pooled ones
            step_shape = (n, packed.out_channels, ho // side, wo // side)
            v = initial_state(then.neuron, state)
            if v is None:
                v = torch.empty(step_shape, memory_format=torch.channels_last).fill_(float(then.call.v_init))
            elif v.shape != step_shape:
                raise InputError(f"{then.neuron.where()}: state has shape {list(v.shape)} but the input step is "
                                 f"{list(step_shape)}", hint="call reset() when the batch size changes")
            else:
                v = canonical(v, torch.channels_last)
            res = None
            if then.residual:
                r, r_static = ins[1]
                # the residual's lists where its layer made them (the same values, read from ~1/8 the bytes)
                res = None if r_static else self._events.get(node.inputs[1])
                if res is None:
                    res = self._format((r.unsqueeze(0).expand(c, *r.shape) if r_static else r).flatten(0, 1))
            if not event_conv.runs_fused(n * ho * wo):  # too few pixels a step: apart (the same bits)
                y = event_conv.conv2d(x.flatten(0, 1), packed, channels_last=True, levels=node.spike_levels,
                                      signed=node.spike_signed, events=self._events.get(node.inputs[0]))
                if res is not None:
                    y = y + (event_conv.dense(res, tuple(y.shape)) if isinstance(res, event_conv.Events) else res)
                y = y.unflatten(0, (c, n))
                if then.pool:
                    y, state[then.pool.name] = STATEFUL_KERNELS[type(then.pool)](then.pool, y, sums, self.params)
                out, v, _ = neurons.run(then.call, y, c, v, static=False)
                state[then.neuron.name] = v
                return out
            y, made = event_conv.conv2d_neuron(x.flatten(0, 1), packed, c, neurons.event_neuron(then.call), v,
                                               residual=res, levels=node.spike_levels, signed=node.spike_signed,
                                               events=self._events.get(node.inputs[0]),
                                               list_output=node.list_output, dense_output=node.dense_output,
                                               pool_sums=sums)
            if then.pool:
                state[then.pool.name] = sums
        except SnncError:
            raise
        except Exception as e:  # noqa: BLE001 - add the node to the message
            raise LoweringError(f"while executing {node.op.where()} with {then.neuron.where()}: "
                                f"{type(e).__name__}: {e}") from e
        state[then.neuron.name] = v
        if made is not None:
            self._events[node.name] = made
        if y is None:  # only listed (plan: every reader takes the lists); NaN, should anything read it densely
            return _unstored(torch.Size((c, *step_shape)))
        return y.unflatten(0, (c, n))

    @staticmethod
    def _pool_sums(op: ops.RunningMaxPool2d, shape: tuple[int, ...], state: dict[str, Tensor]) -> Tensor:
        """A fused RunningMaxPool2d's sums so far (its state; zeros at the start), channels_last float32, a copy
        (the kernel updates it in place)."""
        s = state.get(op.name)
        if s is None:
            return torch.zeros(shape).contiguous(memory_format=torch.channels_last)
        if tuple(s.shape) != shape:
            raise InputError(f"{op.where()}: state has shape {list(s.shape)} but the input step is {list(shape)}",
                             hint="call reset() when the batch size changes")
        return s.to(torch.float32).contiguous(memory_format=torch.channels_last).clone()

    def _event_conv(self, node: Node, x: Tensor, c: int) -> Tensor:
        """A Conv2d on spike inputs [c, N, C, H, W] (0 or node.spike_amplitude, or k times it for k up to
        node.spike_levels) on the event kernel, or a
        Linear on [c, N, F] as the 1x1 conv of a 1x1 image with F channels (the kernel's pixels are the
        N * c rows: each row adds the weight columns of its events)."""
        linear = isinstance(node.op, ops.Linear)
        packed = self._packed_conv(node)
        xs, lv, sg = x.flatten(0, 1), node.spike_levels, node.spike_signed
        if linear:
            y = event_conv.conv2d(xs[:, :, None, None], packed, channels_last=False, levels=lv, signed=sg)[:, :, 0, 0]
        else:
            y = event_conv.conv2d(xs, packed, channels_last=self.channels_last, levels=lv, signed=sg,
                                  events=self._events.get(node.inputs[0]))
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
        if s is not None and s.shape[s.dim() - (x.dim() - 1):] != x.shape[1:]:  # (stacked) state of one step
            raise InputError(f"{op.where()}: state has shape {list(s.shape)} but the input step is "
                             f"{list(x.shape[1:])}", hint="call reset() when the batch size changes")
        try:
            y, s = STATEFUL_KERNELS[type(op)](op, x, s, self.params)
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
        v = initial_state(op, state)
        step_shape = x.shape if is_static else x.shape[1:]
        call = node.neuron.resolved(self.params)
        if v is not None and v.shape != call.state_shape(tuple(step_shape)):
            raise InputError(f"{op.where()}: state has shape {list(v.shape)} but the input step is "
                             f"{list(step_shape)}", hint="call reset() when the batch size changes")
        try:
            out, v, v_seq = neurons.run(call, x, c, v, static=is_static, want_v=want_v)
        except SnncError:
            raise
        except Exception as e:  # noqa: BLE001
            raise LoweringError(f"while executing {op.where()}: {type(e).__name__}: {e}") from e
        state[op.name] = v
        if v_seq is not None:
            for h in hooks:
                h.potential(node, v_seq, t0, t1)
        return out
