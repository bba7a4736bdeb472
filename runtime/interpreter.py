"""The CPU reference interpreter: binds inputs, picks a plan and time windows, gathers results.

    Interpreter(graph).run({"x": x}, T=32)              # output name -> [T, N, *]
    Interpreter(graph).execute(feeds, T, probes=..., stats=True)   # + probes, RunStats

Inputs are [N, *] (held constant over T: the plan hoists the stateless prefix
and computes it once) or sequences [T, N, *], whatever the input's declared
time layout; an encoder (runtime/encoders.py) can turn [N, *] into spikes.
Neuron state lives in `self.state` (neuron name -> V) and persists across
calls until `reset()`. Large T runs in windows of time steps whose size
follows a memory budget; results do not depend on the window size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import torch
from torch import Tensor

from snnc.core import spelling
from snnc.core.errors import InputError, LoweringError
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.types import Layout
from snnc.ir.verify import verify
from snnc.runtime import allocator
from snnc.runtime import encoders as enc
from snnc.runtime import layouts, memory, neurons
from snnc.runtime import plan as planning
from snnc.runtime.executor import Executor
from snnc.runtime.kernels import KERNELS, STATEFUL_KERNELS
from snnc.runtime import stateful  # noqa: F401 - registers the sigma-delta kernel
from snnc.runtime.stats import RunStats, StatsCollector
from snnc.core.userdata import as_float, check_time_steps

Observer = Callable[[ops.OpBase, Tensor], None]

DEFAULT_MEMORY_BUDGET = 256 << 20  # bytes of live activations per window; see `window_steps`


def unsupported_ops(graph: Graph) -> list[ops.OpBase]:
    """The ops this runtime cannot run: no kernel. Every neuron runs (CUBA current and leaky integrators
    in float, per snnc.core.dynamics; Loihi's fixed point is the lava target's emulation)."""
    known = (ops.Input, ops.NeuronOp, ops.LayoutCast, ops.Delay, ops.Recur, *KERNELS, *STATEFUL_KERNELS)
    return [op for op in graph if not isinstance(op, known)]


@dataclass
class RunResult:
    """Outputs (in their declared layouts), probes ([T, N, *] time-major) and statistics of a run."""

    outputs: dict[str, Tensor]
    probes: dict[str, Tensor] = field(default_factory=dict)
    stats: RunStats | None = None
    T: int | None = None
    window: int | None = None  # time steps per window (chunk) used
    memory: "memory.MemoryEstimate | None" = None  # the peak-memory estimate checked before running


@dataclass
class _Bound:
    """One input after checking: a static [N, *] value, or a window function."""

    static: Tensor | None
    window: Callable[[int, int], Tensor] | None
    batch: int
    spiking: bool


class Interpreter:
    """Runs a verified graph with torch kernels on `device` in `dtype`."""

    max_memory: int | None = None  # bytes a run may use (None: what the OS reports available); see runtime/memory.py

    def __init__(self, graph: Graph, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 channels_last: bool = False, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                 neuron_impl: str = "auto", event_conv: bool | str = False):
        self.graph = verify(graph)
        if event_conv not in (True, False, "auto"):
            raise InputError(f"event_conv must be True, False or 'auto', got {event_conv!r}")
        self.event_conv = event_conv
        if neuron_impl not in ("auto", "triton"):
            raise InputError(f"neuron_impl must be 'auto' or 'triton', got {neuron_impl!r}")
        self.neuron_impl = neuron_impl
        bad = unsupported_ops(graph)
        if bad:
            raise LoweringError(f"the CPU runtime has no kernel for {', '.join(op.where() for op in bad)}")
        if dtype not in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
            raise InputError(f"dtype {dtype} is not supported; use float32, float16 or bfloat16")
        self.device = torch.device(device)
        self.dtype = dtype
        if self.device.type == "cpu":
            allocator.retain_freed_memory()
        self.params = {k: (v.to(self.device, dtype) if v.is_floating_point() else v.to(self.device))
                       for k, v in graph.params.items()}
        self.types = graph.types
        self.state: dict[str, Tensor] = {}
        self.memory_budget = memory_budget
        self.channels_last = bool(channels_last)
        # graphs with time need batch-invariant kernels (run == chunks == steps); ANN graphs
        # get exactly what eager torch computes for their batch
        self._executor = Executor(self.params, channels_last=self.channels_last, batch_invariant=self.has_time)
        self._plans: dict[tuple, planning.Plan] = {}
        self._neuron_params = {op.name: op.to_params() for op in graph if isinstance(op, ops.NeuronOp)}

    @property
    def has_time(self) -> bool:
        return any(t.layout.has_time for t in self.types.values())

    @property
    def native(self) -> bool:
        """True when neuron layers run on the compiled kernel (float32 on the CPU, compiler found)."""
        return self.device.type == "cpu" and self.dtype == torch.float32 and neurons.native.available()

    def reset(self) -> None:
        self.state.clear()

    def plan(self, static_inputs: frozenset[str], keep: frozenset[str], *, fuse: bool = True,
             fuse_pool: bool = True, no_pool: frozenset[str] = frozenset()) -> planning.Plan:
        fuse = fuse and self.native
        event_conv = self.event_conv if self.native and self.neuron_impl == "auto" else False
        key = (static_inputs, keep, fuse, fuse_pool, no_pool, event_conv)
        if key not in self._plans:
            self._plans[key] = planning.build(self.graph, static_inputs, keep=keep, fuse=fuse,
                                              channels_last=self.channels_last, fuse_pool=fuse_pool, no_pool=no_pool,
                                              event_conv=event_conv)
        return self._plans[key]

    # -- inputs -----------------------------------------------------------
    def _as_tensor(self, op: ops.Input, x) -> Tensor:
        x = as_float(x, f"input %{op.name}")  # the dtype policy of snnc.core.userdata: integers other than 0/1 refused
        # a fresh (aligned) copy: some BLAS kernels round differently for unaligned rows
        x = x.to(self.device, self.dtype, copy=True, memory_format=torch.contiguous_format)
        if not bool(torch.isfinite(x).all()):
            raise InputError(f"input %{op.name} contains NaN or Inf")
        return x

    def bind(self, op: ops.Input, x, T: int | None, encoder: enc.Encoder, t_offset: int = 0,
             one_step: bool = False) -> tuple[_Bound, int | None]:
        """Check one input against its declared type and make its feed; returns (bound input, T)."""
        ty = op.type
        x = self._as_tensor(op, x)
        feats = tuple(ty.features)
        nf = len(feats)
        shape_ok = tuple(x.shape[-nf:] if nf else ()) == feats and x.dim() in (nf + 1, nf + 2)
        if not shape_ok:
            hint = f"[N, {', '.join(map(str, feats))}]"
            if ty.layout.has_time:
                hint += f" (constant input) or [T, N, {', '.join(map(str, feats))}] (a sequence)"
            raise InputError(f"input %{op.name} expects {ty} but got shape {list(x.shape)}", hint=f"pass {hint}")
        seq = x.dim() == nf + 2
        T_enc = None if one_step else T  # the run's length, as encoders see it (unknown when streaming)
        if not ty.layout.has_time:
            if seq:
                raise InputError(f"input %{op.name} expects one step {ty}, got a sequence of shape {list(x.shape)}")
            return _Bound(x, None, x.shape[0], False), T
        batch = x.shape[1] if seq else x.shape[0]
        if isinstance(encoder, enc.Periodic):
            if not seq:
                raise InputError(f"input %{op.name}: the periodic encoder replays a pattern [P, N, *]; "
                                 f"got shape {list(x.shape)}")
            T = T if T is not None else x.shape[0]
            return _Bound(None, lambda t0, t1: encoder.window(x, t_offset + t0, t_offset + t1, None), batch,
                          _binary(x)), T
        if seq:
            if one_step:
                raise InputError(f"input %{op.name}: step() takes one time step [N, *], got {list(x.shape)}")
            if T is not None and x.shape[0] != T:
                raise InputError(f"input %{op.name} is a sequence of {x.shape[0]} steps but T={T}")
            T = x.shape[0]
            if isinstance(encoder, enc.Poisson):
                return _Bound(None, lambda t0, t1: _poisson_seq(encoder, x, t0, t1, t_offset), batch, True), T
            if isinstance(encoder, enc.Latency):
                raise InputError(f"input %{op.name}: the latency encoder takes one input [N, *] per sample, "
                                 f"got a sequence {list(x.shape)}")
            return _Bound(None, lambda t0, t1: x if (t0, t1) == (0, x.shape[0]) else x[t0:t1].clone(), batch,
                          _binary(x)), T
        if T is None and not one_step:
            raise InputError(f"input %{op.name} is a single step of shape {list(x.shape)}: give "
                             f"{spelling.flag('T')} (the number of time steps) to hold it constant")
        if isinstance(encoder, enc.Constant):
            return _Bound(x, None, batch, False), T
        if isinstance(encoder, enc.Latency):
            if encoder.window_steps is None and T_enc is None:
                raise InputError("the latency encoder needs its window when streaming: "
                                 "encoder=Latency(window_steps=W)")
            encoder.fire_times(x, encoder.window_steps or T_enc)  # check the input range before running
        return _Bound(None, lambda t0, t1: encoder.window(x, t_offset + t0, t_offset + t1, T_enc), batch,
                      True), T

    # -- execution --------------------------------------------------------
    def run(self, feeds: Mapping[str, object], T: int | None = None, *,
            observe: Observer | None = None, keep: set[str] | None = None, **kwargs) -> dict[str, Tensor]:
        """Execute the graph; returns output name -> value (plus the values named in `keep`)."""
        res = self.execute(feeds, T, observe=observe, probes=tuple(keep or ()), **kwargs)
        out = dict(res.outputs)
        for k in keep or ():
            if k not in out:
                out[k] = self._declared(k, res.probes[k])
        return out

    def execute(self, *args, **kwargs) -> RunResult:
        """Run once (see _execute); neuron layers use this interpreter's `neuron_impl`."""
        token = neurons.IMPL.set(self.neuron_impl)
        try:
            return self._execute(*args, **kwargs)
        finally:
            neurons.IMPL.reset(token)

    def _execute(self, feeds: Mapping[str, object], T: int | None = None, *,
                encoder: "enc.Encoder | str | Mapping[str, enc.Encoder | str] | None" = None,
                t_offset: int = 0, one_step: bool = False, window: int | None = None,
                probes: Iterable[str] = (), stats: bool = False, observe: Observer | None = None,
                progress: Callable[[int], Callable[[], None]] | None = None) -> RunResult:
        """Run once (state is kept: call reset() first for a fresh run) and return a RunResult.

        Args:
            encoder: one encoder for every input, or input name -> encoder.
            t_offset: absolute index of the first step (encoders depend on it; `step()` streams).
            one_step: inputs are one time step [N, *] each (T = 1).
            window: time steps per window; None picks it from the memory budget.
            probes: node names, and 'name:v' for a neuron's membrane potential.
            observe: called as observe(op, value) for every node (runs unfused, in one window).
            progress: progress(total) -> tick, for a progress bar over nodes x windows.
        """
        T = check_time_steps(T)
        if one_step:
            T = 1
        probe_nodes, probe_v = self._parse_probes(probes)
        bound: dict[str, _Bound] = {}
        for op in self.graph.inputs:
            if op.name not in feeds:
                raise InputError(f"missing input %{op.name}",
                                 hint=f"inputs: {', '.join(i.name for i in self.graph.inputs)}")
            e = enc.get_encoder(encoder.get(op.name) if isinstance(encoder, Mapping) else encoder)
            bound[op.name], T = self.bind(op, feeds[op.name], T, e, t_offset, one_step)
        timed = self.has_time
        if timed and T is None:
            raise InputError(f"give {spelling.flag('T')} (the number of time steps) for a graph with constant inputs")
        static_inputs = frozenset(k for k, b in bound.items() if b.static is not None)
        collect = [o.name for o in self.graph.outputs] + [p for p in probe_nodes if p not in
                                                          {o.name for o in self.graph.outputs}]
        # statistics count each neuron's spikes, so its output must not be pooled in the kernel
        plan = self.plan(static_inputs, frozenset(collect), fuse=observe is None, fuse_pool=not stats,
                         no_pool=probe_v)
        steps = T if timed else 1
        batch = next(iter(bound.values())).batch
        linked = self._check_state_links(one_step)
        if window is None:
            window = steps if observe is not None else self.window_steps(plan, batch, steps)
        window = steps if linked else max(1, min(int(window), steps))
        mem = memory.fit_window(self, memory.estimate(self, plan, batch, steps, window, memory.input_bytes(
            feeds, self.dtype), collect, probe_v), can_shrink=observe is None and not linked)  # fail before allocating
        window = 1 if self.graph.back_edges() else mem.window  # a recurrent cycle runs step by step
        windows = [(t0, min(steps, t0 + window)) for t0 in range(0, steps, window)]

        gather = _Gather(steps, set(collect), probe_v)
        hooks: list = [gather]
        collector = None
        if stats:
            collector = StatsCollector(self.graph, steps, batch, {k for k, b in bound.items() if b.spiking})
            hooks.append(collector)
        if observe is not None:
            hooks.append(_ObserveHook(self, observe, steps))
        feeds_x = {k: (b.static if b.static is not None else b.window) for k, b in bound.items()}
        tick = progress(len(windows) * max(1, len(plan.dynamic))) if progress is not None else None
        static = self._executor.run(plan, feeds_x, windows, self.state, hooks=hooks, want_v=probe_v,
                                    on_window=gather.window, tick=tick, batch=batch)
        outputs = {o.name: self._finish(o.name, gather.result(o.name, static), steps) for o in self.graph.outputs}
        outputs = {k: self._declared(k, v) for k, v in outputs.items()}
        probes_out = {p: self._finish(p, gather.result(p, static), steps) for p in probe_nodes}
        probes_out.update({f"{n}:v": gather.potentials[n] for n in probe_v})
        return RunResult(outputs, probes_out, collector.stats if collector else None, T, window, mem)

    def _check_state_links(self, one_step: bool) -> bool:
        """True when a neuron continues another's final state (`state_from`): the run then holds all T
        steps in one window (the continuing neuron starts after the other's last step), and streaming,
        which would need that last step before it is given, is refused."""
        links = self.graph.state_links()
        if not links:
            return False
        if one_step or self.state:
            name, src = next(iter(links.items()))
            raise InputError(f"{self.graph[name].where()} starts from the final membrane potential of "
                             f"%{src} (one module called twice on whole sequences), so it cannot run step "
                             "by step or continue an earlier run",
                             hint="run the whole sequence at once: session.run(x, T) (with reset=True)")
        return True

    def window_steps(self, plan: planning.Plan, batch: int, T: int) -> int:
        """Time steps per window: live activations fit `memory_budget` bytes, windows equally long."""
        per_step = plan.bytes_per_step(batch, torch.tensor([], dtype=self.dtype).element_size())
        most = max(1, min(T, self.memory_budget // per_step))
        return -(-T // -(-T // most))  # as many windows as needed, of (nearly) equal length

    def _parse_probes(self, probes: Iterable[str]) -> tuple[list[str], frozenset[str]]:
        nodes, pots = [], set()
        for p in probes:
            name, _, what = str(p).partition(":")
            if name not in self.graph.nodes:
                raise InputError(f"cannot probe %{name}: no such node",
                                 hint=f"nodes: {', '.join(list(self.graph.nodes)[:20])}")
            if what == "v":
                if not isinstance(self.graph[name], ops.NeuronOp):
                    raise InputError(f"cannot probe the membrane potential of {self.graph[name].where()}: "
                                     "not a neuron")
                pots.add(name)
            elif what:
                raise InputError(f"probe {p!r}: unknown quantity {what!r}", hint="use 'name' or 'name:v'")
            elif name not in nodes:
                nodes.append(name)
        return nodes, frozenset(pots)

    def _finish(self, name: str, x: Tensor, steps: int) -> Tensor:
        """Expand a static value of a time type to [T, N, *]; make the result a plain dense tensor."""
        if self.types[name].layout.has_time and x.dim() == len(self.types[name].features) + 1:
            x = x.unsqueeze(0).expand(steps, *x.shape)
        return x.contiguous()

    def _declared(self, name: str, x: Tensor) -> Tensor:
        layout = self.types[name].layout
        if layout in (Layout.NX, Layout.TNX):
            return x
        return layouts.from_tnx(x, layout).contiguous()


def _binary(x: Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def _poisson_seq(encoder: enc.Poisson, x: Tensor, t0: int, t1: int, t_offset: int) -> Tensor:
    out = torch.empty_like(x[t0:t1])
    for i in range(t1 - t0):
        out[i] = encoder.window(x[t0 + i], t_offset + t0 + i, t_offset + t0 + i + 1, None)[0]
    return out


class _Gather:
    """Collects the values of outputs/probes across windows into [T, N, *] (static ones stay [N, *])."""

    def __init__(self, steps: int, names: set[str], potentials: frozenset[str]):
        self.steps = steps
        self.names = names
        self.want_v = potentials
        self.values: dict[str, Tensor] = {}
        self.potentials: dict[str, Tensor] = {}
        self._neuron_values: dict[str, Tensor] = {}

    def window(self, t0: int, t1: int, values: dict[str, Tensor]) -> None:
        for name in self.names:
            if name in values:
                self._put(self.values, name, values[name], t0, t1)

    def _put(self, into: dict[str, Tensor], name: str, x: Tensor, t0: int, t1: int) -> None:
        if t0 == 0 and t1 == self.steps:
            into[name] = x
            return
        if name not in into:
            into[name] = torch.empty((self.steps, *x.shape[1:]), dtype=x.dtype, device=x.device)
        into[name][t0:t1] = x

    def result(self, name: str, static: dict[str, Tensor]) -> Tensor:
        return self.values[name] if name in self.values else static[name]

    # hooks
    def value(self, node, x, static, t0, t1) -> None:
        pass

    def potential(self, node, v_seq: Tensor, t0: int, t1: int) -> None:
        name = node.op.name
        if t0 == 0 and t1 == self.steps:
            self.potentials[name] = v_seq.contiguous()
        else:
            self._put(self.potentials, name, v_seq, t0, t1)


class _ObserveHook:
    """Calls observe(op, value) with each node's value in its declared layout (unfused plans only)."""

    def __init__(self, interp: Interpreter, observe: Observer, steps: int):
        self.interp, self.observe, self.steps = interp, observe, steps

    def value(self, node, x, static, t0, t1) -> None:
        name = node.op.name
        if static and self.interp.types[name].layout.has_time:
            x = x.unsqueeze(0).expand(self.steps, *x.shape)
        if self.interp.types[name].layout.has_time:
            x = layouts.from_tnx(x, self.interp.types[name].layout)
        self.observe(node.op, x)

    def potential(self, node, v_seq, t0, t1) -> None:
        pass
