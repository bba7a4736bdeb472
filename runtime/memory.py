"""Peak-memory estimate of a run, computed from the plan before anything is executed.

A run holds, at its peak:

    params    the graph's parameters (already allocated by the interpreter)
    inputs    the bound inputs (one copy each)
    static    every static value [N, *] (the stateless prefix computed once)
    state     one membrane potential [N, *] per neuron (and the sums of a running max pooling)
    window    one window's live activations: plan.bytes_per_step x steps per window
    kept      outputs and probes gathered over all T (and their final copy)

`fit_window` compares that estimate with the limit (the interpreter's
`max_memory`, else the environment variable SNNC_MAX_MEMORY, else the memory
the OS reports available) and shrinks the time window until the run fits, or
raises ResourceError with the estimate when even a 1-step window does not.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Iterable

import torch

from snnc.core import spelling
from snnc.core.errors import InputError, ResourceError
from snnc.core.limits import mib, parse_bytes
from snnc.ir import ops

ENV_VAR = "SNNC_MAX_MEMORY"


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of each part of a run's peak; `total` is their sum, `new` what the run still has to allocate."""

    params: int
    inputs: int
    static: int
    state: int
    per_step: int
    window: int
    kept: int
    T: int
    batch: int

    @property
    def activations(self) -> int:
        return self.per_step * self.window

    @property
    def total(self) -> int:
        return self.params + self.inputs + self.static + self.state + self.activations + self.kept

    @property
    def new(self) -> int:
        return self.total - self.params

    def with_window(self, window: int) -> "MemoryEstimate":
        return MemoryEstimate(self.params, self.inputs, self.static, self.state, self.per_step, window, self.kept,
                              self.T, self.batch)

    def line(self) -> str:
        return (f"estimated peak memory {mib(self.total)} (params {mib(self.params)}, inputs {mib(self.inputs)}, "
                f"static {mib(self.static)}, state {mib(self.state)}, activations {mib(self.activations)} for "
                f"{self.window} of {self.T} steps, outputs/probes {mib(self.kept)})")

    def as_dict(self) -> dict:
        return {"total_bytes": self.total, "params_bytes": self.params, "inputs_bytes": self.inputs,
                "static_bytes": self.static, "state_bytes": self.state, "activation_bytes": self.activations,
                "kept_bytes": self.kept, "window_steps": self.window, "T": self.T, "batch": self.batch}


def estimate(interp, plan, batch: int, steps: int, window: int, inputs_bytes: int, keep: Iterable[str],
             potentials: Iterable[str] = ()) -> MemoryEstimate:
    """The peak-memory estimate of running `plan` for `steps` steps of `batch` samples in windows of `window`."""
    itemsize = torch.tensor([], dtype=interp.dtype).element_size()
    types = interp.types

    def size(name: str) -> int:
        return batch * math.prod(types[name].features) * itemsize

    params = sum(t.numel() * t.element_size() for t in interp.params.values())
    static = sum(size(n.name) for n in plan.static if not isinstance(n.op, ops.Input))
    state = (sum(size(op.name) * len(op.state_names()) for op in interp.graph if isinstance(op, ops.NeuronOp))
             + sum(size(op.inputs[0]) * sum(s.stacked for s in op.state)
                   for op in interp.graph if op.stateful and not isinstance(op, ops.NeuronOp)))
    kept = sum(steps * size(name) for name in set(keep) | set(potentials))
    return MemoryEstimate(params, inputs_bytes, static, state, plan.bytes_per_step(batch, itemsize),
                          window, kept, steps, batch)


def limit(interp) -> tuple[int | None, str]:
    """(bytes a run may use, where that figure comes from); None when unknown."""
    own = getattr(interp, "max_memory", None)
    if own:
        return int(own), "max_memory"
    env = os.environ.get(ENV_VAR)
    if env:
        try:
            return parse_bytes(env), ENV_VAR
        except ValueError:
            pass
    return available(interp.device), "available memory"


def available(device: torch.device) -> int | None:
    """Free memory on `device`: MemAvailable from /proc/meminfo on the CPU, cudaMemGetInfo on a GPU."""
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except Exception:  # noqa: BLE001 - no driver, or a device we cannot query
            return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def fit_window(interp, est: MemoryEstimate, *, can_shrink: bool = True) -> MemoryEstimate:
    """`est` with the largest window (at most its own) that fits the limit; ResourceError if none does."""
    cap, where = limit(interp)
    if cap is None:
        return est
    # against max_memory the whole run counts; against free memory only what is still to be allocated
    used = (lambda e: e.total) if where != "available memory" else (lambda e: e.new)
    if used(est) <= cap:
        return est
    if can_shrink and est.per_step > 0:
        room = cap - used(est.with_window(0))
        w = room // est.per_step
        if w >= 1:
            w = min(int(w), est.window)
            n = -(-est.T // w)
            return est.with_window(-(-est.T // n))  # windows of (nearly) equal length, none larger than w
    smallest = est.with_window(1 if can_shrink else est.window)
    raise ResourceError(
        f"this run needs about {mib(used(smallest))}, more than the {where} ({mib(cap)}): "
        f"{smallest.line()}; batch {est.batch}, T={est.T}",
        hint="run a smaller batch, a lower T, or fewer probes; outputs and probes are kept for all T steps"
             + ("" if where == "available memory" else "; or raise "
                + (spelling.options("Session({})", max_memory="<bytes>") if where == "max_memory" else ENV_VAR)))


def input_bytes(feeds, dtype: torch.dtype) -> int:
    """Bytes of the interpreter's copies of the inputs (each is converted to `dtype`)."""
    itemsize = torch.tensor([], dtype=dtype).element_size()
    total = 0
    for v in feeds.values():
        n = v.numel() if isinstance(v, torch.Tensor) else getattr(v, "size", 0)
        total += int(n) * itemsize if isinstance(n, int) else 0
    return total


def estimate_for_shapes(interp, shapes: dict[str, tuple[int, ...]], T: int | None, probes: Iterable[str] = (),
                        window: int | None = None) -> MemoryEstimate:
    """The estimate of a run with inputs of these full shapes ([N, *] held constant, or [T, N, *] sequences)."""
    static, batch, itemsize = set(), None, torch.tensor([], dtype=interp.dtype).element_size()
    inputs = 0
    for op in interp.graph.inputs:
        if op.name not in shapes:
            raise InputError(f"estimate_memory: no shape for input %{op.name}")
        shape = tuple(int(d) for d in shapes[op.name])
        nf = len(op.type.features)
        if shape[-nf:] != tuple(op.type.features) or len(shape) not in (nf + 1, nf + 2):
            raise InputError(f"estimate_memory: input %{op.name} expects {op.type}, got shape {list(shape)}")
        if len(shape) == nf + 1:
            static.add(op.name)
        elif T is None:
            T = shape[0]
        batch = shape[-nf - 1]
        inputs += math.prod(shape) * itemsize
    if interp.has_time and (T is None or T <= 0):
        raise InputError("estimate_memory: give T (the number of time steps)")
    steps = T if interp.has_time else 1
    nodes, pots = interp._parse_probes(probes)
    outs = [o.name for o in interp.graph.outputs]
    collect = outs + [p for p in nodes if p not in outs]
    plan = interp.plan(frozenset(static), frozenset(collect), no_pool=pots)
    w = window or interp.window_steps(plan, batch, steps)
    return estimate(interp, plan, batch, steps, max(1, min(w, steps)), inputs, collect, pots)


def constant_input_estimate(interp, batch: int, T: int | None, *, observe: bool = False) -> MemoryEstimate:
    """The estimate of `interp.run(feeds, T)` with every input a constant [batch, *] tensor: with
    `observe`, the plan `run(..., observe=...)` uses (unfused, all T steps in one window), else the
    fused plan at its smallest window (1 step), the least such a run can shrink to."""
    itemsize = torch.tensor([], dtype=interp.dtype).element_size()
    static = frozenset(op.name for op in interp.graph.inputs)
    collect = [o.name for o in interp.graph.outputs]
    plan = interp.plan(static, frozenset(collect), fuse=not observe)
    steps = T if (interp.has_time and T) else 1
    inputs = sum(batch * math.prod(op.type.features) * itemsize for op in interp.graph.inputs)
    return estimate(interp, plan, batch, steps, steps if observe else 1, inputs, collect)


def largest_batch(interp, T: int | None, *, observe: bool = False, budget: int | None = None) -> int | None:
    """The largest batch of constant inputs whose run (see `constant_input_estimate`) fits the limit of
    `fit_window` and, when given, `budget` bytes on top of the parameters; 0 when not even one sample
    fits the limit (a run of one sample then raises ResourceError); None when neither bounds it."""
    one = constant_input_estimate(interp, 1, T, observe=observe)
    per_sample = max(1, constant_input_estimate(interp, 2, T, observe=observe).total - one.total)  # linear in batch
    cap, where = limit(interp)
    fixed = one.total - per_sample  # the parameters: allocated already, but counted against max_memory
    room = None if cap is None else cap - (0 if where == "available memory" else fixed)
    if room is not None and room < per_sample:
        return 0
    if budget is not None:
        room = budget if room is None else min(room, budget)
    return None if room is None else max(1, room // per_sample)
