"""The triton runtime: the reference interpreter with neuron groups in Triton kernels.

Stateless ops (conv, linear, pooling) run through torch on the time-folded
batch, as in the CPU runtime (cuDNN/cuBLAS on a GPU). Every neuron runs in one
Triton kernel together with the elementwise ops the fuse pass grouped before
it (`chain.py`: scale, per-channel scale, residual add, relu); optionally a
Linear before a neuron runs in the same kernel (`linear.py`, option
`fused_linear`). On CUDA, small-batch runs are captured and replayed as CUDA
graphs (`graphs.py`, option `cuda_graphs`).

The groups come from the graph's metadata (recorded by the fuse pass, run by the
triton pipeline) or, for a graph that did not go through it, are computed here
(both in snnc.ir.fusion).

Importing this module does not import triton: the kernel modules (chain.py, linear.py) are
imported inside the functions that launch them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from torch import Tensor

from snnc.core.errors import InputError, LoweringError, SnncError
from snnc.ir import ops
from snnc.ir.fusion import fusion_groups, live_groups
from snnc.ir.graph import Graph
from snnc.runtime import encoders as enc
from snnc.runtime import plan as planning
from snnc.runtime.executor import Executor, initial_state
from snnc.runtime.interpreter import Interpreter, RunResult
from snnc.runtime.plan import Node, Plan

from . import graphs
from .options import RuntimeOptions


# -- plan: neuron groups ------------------------------------------------------------------------
@dataclass
class ChainNode(Node):
    """A neuron with the elementwise ops before it. inputs = (main, *add operands)."""

    stages: tuple = ()  # (kind, factor, weight param name | None, operand index) per stage
    feature_channels: tuple[int, int] = (1, 1)  # (channels, inner) of the neuron's step shape


@dataclass
class LinearNode(Node):
    """A Linear and the neuron after it. inputs = (the linear's input,)."""

    linear: ops.Linear | None = None


_CHAIN_OPS = (ops.Scale, ops.ReLU, ops.Identity, ops.Add)


def _stages_of(members: list[ops.OpBase]) -> tuple[list[tuple], list[str]]:
    """Kernel stages and Add operands (value names) of a chain of elementwise ops."""
    from .chain import STAGE_ADD, STAGE_MUL, STAGE_MUL_CHANNEL, STAGE_RELU  # lazy: imports triton

    stages, operands = [], []
    for op in members:
        if isinstance(op, ops.Scale):
            if op.factor != 1.0:
                stages.append((STAGE_MUL, float(op.factor), None, 0))
            if op.weight is not None:
                stages.append((STAGE_MUL_CHANNEL, 1.0, op.weight, 0))
        elif isinstance(op, ops.ReLU):
            stages.append((STAGE_RELU, 1.0, None, 0))
        elif isinstance(op, ops.Add):
            stages.append((STAGE_ADD, 1.0, None, len(operands)))
            operands.append(op.inputs[1])
    return stages, operands


def _groups(graph: Graph) -> dict[str, list[str]]:
    """neuron name -> the members of its fusion group (recorded ones, else computed now)."""
    groups = live_groups(graph) if "fusion_groups" in graph.meta else fusion_groups(graph)
    return {m[-1]: m for m in groups.values() if isinstance(graph.nodes[m[-1]], ops.NeuronOp)}


def group_plan(base: Plan, graph: Graph, *, keep: frozenset[str], no_group: frozenset[str],
               fused_linear: bool, linear_ok=lambda op: True) -> Plan:  # fmt: skip
    """Replace each neuron node of an unfused plan by a ChainNode (or LinearNode) of its group."""
    from .chain import MAX_OPERANDS, MAX_STAGES  # lazy: imports triton

    groups = _groups(graph)
    by_name = {n.name: n for n in base.nodes}
    types = graph.types
    replace: dict[str, Node] = {}
    absorbed: set[str] = set()
    for node in base.nodes:
        op = node.op
        if node.neuron is None or not isinstance(op, ops.NeuronOp) or op.name in no_group:
            continue
        members = groups.get(op.name, [op.name])[:-1]
        chain = [m for m in members if isinstance(graph.nodes[m], _CHAIN_OPS)]
        # the dynamic, unobserved elementwise members right before the neuron (static ones run once)
        take: list[str] = []
        for m in reversed(chain):
            if m in keep or m not in by_name or by_name[m].static:
                break
            take.insert(0, m)
        while take:
            stages, operands = _stages_of([graph.nodes[m] for m in take])
            if len(stages) <= MAX_STAGES and len(operands) <= MAX_OPERANDS and not set(operands) & set(take):
                break
            take.pop(0)  # too long for one kernel: the first member runs on its own
        producer = graph.nodes[members[0]] if members else None
        if (fused_linear and not take and isinstance(producer, ops.Linear) and op.inputs[0] == producer.name
                and producer.name in by_name and not by_name[producer.name].static and producer.name not in keep
                and len(types[producer.inputs[0]].features) >= 1 and linear_ok(producer)):
            replace[op.name] = LinearNode(op.name, op, (producer.inputs[0],), False, node.neuron,
                                          (producer.name, op.name), linear=producer)  # fmt: skip
            absorbed.add(producer.name)
            continue
        stages, operands = _stages_of([graph.nodes[m] for m in take])
        main = graph.nodes[take[0]].inputs[0] if take else op.inputs[0]
        feats = types[op.name].features
        channels = feats[0] if feats else 1
        inner = math.prod(feats[1:]) if len(feats) > 1 else 1
        replace[op.name] = ChainNode(op.name, op, (main, *operands), False, node.neuron, (*take, op.name),
                                     stages=tuple(stages), feature_channels=(channels, inner))  # fmt: skip
        absorbed.update(take)
    nodes = [replace.get(n.name, n) for n in base.nodes if n.name not in absorbed]
    last_use: dict[str, str] = {}
    for n in nodes:
        for i in n.inputs:
            last_use[i] = n.name
    return Plan(base.graph, base.static_inputs, nodes, base.keep, last_use, base.channels_last)


# -- executor -------------------------------------------------------------------------------------
class TritonExecutor(Executor):
    """The reference executor, with ChainNode / LinearNode neurons in the Triton kernels."""

    def _neuron(self, node, ins, c, state, hooks, want_v, t0, t1):
        if not isinstance(node, (ChainNode, LinearNode)):
            return super()._neuron(node, ins, c, state, hooks, want_v, t0, t1)
        op = node.op
        x, is_static = ins[0]
        v = initial_state(op, state)
        try:
            if isinstance(node, LinearNode):
                out, v = self._linear(node, x, v)
            else:
                out, v = self._chain(node, x, is_static, ins[1:], c, v)
        except SnncError:
            raise
        except Exception as e:  # noqa: BLE001 - name the node
            raise LoweringError(f"while executing {op.where()}: {type(e).__name__}: {e}") from e
        state[op.name] = v
        return out

    def _check_state(self, op, v: Tensor | None, step_shape) -> None:
        if v is not None and tuple(v.shape) != tuple(step_shape):
            raise InputError(f"{op.where()}: state has shape {list(v.shape)} but the input step is "
                             f"{list(step_shape)}", hint="call reset() when the batch size changes")

    def _chain(self, node: ChainNode, x: Tensor, is_static: bool, operands: list[tuple[Tensor, bool]], c: int,
               v: Tensor | None):  # fmt: skip
        """Run a ChainNode; `operands` are the (value, static) Add operands, node.inputs[1:]."""
        from .chain import Stage, chain_multi_step  # lazy: imports triton

        step_shape = x.shape if is_static else x.shape[1:]
        self._check_state(node.op, v, step_shape)
        stages = tuple(Stage(k, f, None if w is None else self.params[w], i) for k, f, w, i in node.stages)
        channels, inner = node.feature_channels
        return chain_multi_step(node.neuron.params, x.contiguous(), stages,
                                tuple((y.contiguous(), s) for y, s in operands), steps=c, x_static=is_static,
                                v0=node.neuron.v_init if v is None else v, channels=channels, inner=inner,
                                spike_dtype=x.dtype)  # fmt: skip

    def _linear(self, node: LinearNode, x: Tensor, v: Tensor | None):
        from .linear import linear_multi_step  # lazy: imports triton

        lin = node.linear
        w = self.params[lin.weight]
        self._check_state(node.op, v, (*x.shape[1:-1], w.shape[0]))
        b = self.params[lin.bias] if lin.bias is not None else None
        return linear_multi_step(node.neuron.params, x.contiguous(), w, b,
                                 v0=node.neuron.v_init if v is None else v, spike_dtype=x.dtype)  # fmt: skip


# -- interpreter ----------------------------------------------------------------------------------
class TritonInterpreter(Interpreter):
    """Interpreter whose plans run neuron groups in Triton kernels, with CUDA graph replay."""

    def __init__(self, graph: Graph, *, options: RuntimeOptions | Mapping | None = None, **kwargs):
        kwargs["neuron_impl"] = "triton"
        super().__init__(graph, **kwargs)
        self.options = options if isinstance(options, RuntimeOptions) else RuntimeOptions(**dict(options or {}))
        self._executor = TritonExecutor(self.params, channels_last=self.channels_last,
                                        batch_invariant=self.has_time)  # fmt: skip
        self.graphs = graphs.GraphCache(self.options.graph_cache)
        self.last_decision: graphs.Decision | None = None
        self._capturing = False

    def use_fused_linear(self, op: ops.Linear) -> bool:
        mode = self.options.fused_linear
        if mode == "auto":
            from .linear import resident  # lazy: imports triton

            return self.device.type == "cuda" and resident(self.params[op.weight].shape[1])
        return mode == "on"

    def plan(self, static_inputs, keep, *, fuse=True, fuse_pool=True, no_pool=frozenset()):
        key = ("triton", static_inputs, keep, fuse, fuse_pool, no_pool)
        if key not in self._plans:
            base = planning.build(self.graph, static_inputs, keep=keep, fuse=False, channels_last=self.channels_last,
                                  fuse_pool=False)  # fmt: skip
            # stats (fuse_pool=False) count a Linear's synaptic ops from its own node: keep it unfused then
            self._plans[key] = group_plan(base, self.graph, keep=keep, no_group=no_pool,
                                          fused_linear=fuse_pool, linear_ok=self.use_fused_linear) if fuse else base
        return self._plans[key]

    # -- CUDA graphs --------------------------------------------------------------------------
    def _as_tensor(self, op, x):
        if self._capturing:  # the static input buffer: already checked, and a check would synchronise
            return x
        return super()._as_tensor(op, x)

    def _request(self, feeds, T, kw) -> tuple[graphs.RunRequest, graphs.CaptureKey | None]:
        encoder = kw.get("encoder")
        constant = True
        batch = 0
        shapes = []
        for op in self.graph.inputs:
            x = feeds.get(op.name)
            e = encoder.get(op.name) if isinstance(encoder, Mapping) else encoder
            if not isinstance(x, Tensor) or not isinstance(enc.get_encoder(e), enc.Constant):
                constant = False
                break
            if x.dim() != len(op.type.features) + 1:  # a sequence [T, N, *]
                constant = False
                break
            batch = max(batch, x.shape[0])
            shapes.append((op.name, tuple(x.shape)))
        request = graphs.RunRequest(
            device_type=self.device.type, batch=batch, fresh_state=not self.state, constant_inputs=constant,
            probes=bool(tuple(kw.get("probes") or ())), stats=bool(kw.get("stats")),
            observe=kw.get("observe") is not None, one_step=bool(kw.get("one_step")),
        )  # fmt: skip
        key = None
        if constant and isinstance(T, int) and not kw.get("t_offset"):
            key = graphs.CaptureKey(tuple(shapes), T, kw.get("window"), self.memory_budget, self.dtype, str(self.device))
        return request, key

    def execute(self, feeds, T=None, **kwargs) -> RunResult:
        request, key = self._request(feeds, T, kwargs)
        decision = graphs.decide(request, key, self.graphs, enabled=self.options.cuda_graphs,
                                 max_batch=self.options.graph_max_batch)  # fmt: skip
        self.last_decision = decision
        if decision.action is graphs.Action.REPLAY:
            entry = self.graphs.get(key)
            inputs = {op.name: self._as_tensor(op, feeds[op.name]) for op in self.graph.inputs}
            outputs, state = graphs.replay(entry, inputs)
            self.state.clear()
            self.state.update(state)
            return RunResult(outputs, {}, None, entry.T, entry.window)
        res = super().execute(feeds, T, **kwargs)
        if decision.action is graphs.Action.EAGER_THEN_CAPTURE:
            self._capture(key, feeds, T, kwargs)
        return res

    def _capture(self, key, feeds, T, kwargs) -> None:
        saved = dict(self.state)
        inputs = {op.name: self._as_tensor(op, feeds[op.name]) for op in self.graph.inputs}
        kw = {k: v for k, v in kwargs.items() if k not in ("progress",)}
        self.state.clear()
        self._capturing = True
        try:
            entry = graphs.capture(lambda static: super(TritonInterpreter, self).execute(static, T, **kw),
                                   inputs, self.state)  # fmt: skip
        finally:
            self._capturing = False
            self.state.clear()
            self.state.update(saved)
        self.graphs.put(key, entry)


def make_interpreter(graph: Graph, artifact=None, overrides: Mapping | None = None, **kwargs) -> TritonInterpreter:
    """A TritonInterpreter with the options recorded in a triton artifact, updated by `overrides`."""
    recorded = {}
    if artifact is not None:
        recorded = {k: v for k, v in (artifact.manifest.get("runtime_options") or {}).items()
                    if k in RuntimeOptions.model_fields}  # fmt: skip
    options = RuntimeOptions(**{**recorded, **dict(overrides or {})})
    return TritonInterpreter(graph, options=options, **kwargs)
