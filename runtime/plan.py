"""Execution plans: which nodes are constant over time, which ops fuse into neurons.

A plan is built once per graph and input kind (constant or sequence per input)
and reused for every run. Every value is held either

    static   [N, *]      the same at every time step (computed once per run)
    dynamic  [c, N, *]   time-major, for the c steps of the current window

With a constant input, the stateless prefix up to the first neuron is static:
it runs once on [N, *] instead of T times, and the first neuron reads its
input with a time stride of 0. Time layouts (TNX, NXT, TN) only matter at the
graph's boundary: inside, every time-valued tensor is time-major, so a
LayoutCast is free.

On the native kernel, a neuron absorbs the Scale before it, the Scale after it
and a 2x2 pooling after that (Scale -> IF -> Scale -> AvgPool is the converted
ReLU -> AvgPool), unless one of them must be seen (an output or a probe).

With `event_conv`, a Conv2d whose input is a spike tensor runs on the
event-driven kernel (runtime/event_conv.py). That is decided here, from the
graph alone (`spike_amplitudes`), never from the data: a neuron's output is
0/1; a Scale by a constant, a max pooling, a flatten or a layout cast keeps a
tensor two-valued {0, a}; a 2x2 average pooling of it takes the five values
k a / 4 (`spike_levels`: listed as k events); anything else (a per-channel
scale, an add) makes it analog. Linear layers on such inputs run on the same
kernel, as 1x1 convs of 1x1 images.

In channels_last plans, an event conv whose only reader is a neuron (directly,
through an Add with another time-varying value, as in a residual block, or through a
2x2 RunningMaxPool2d, as in a converted VGG) becomes one node with it (`ConvNeuron`,
event_conv.conv2d_neuron): the neuron steps each output pixel (or pooled window) as
the conv finishes it, so neither the conv's output nor the sum goes to memory. It
computes the same bits; a probe, an output or statistics on the values in between
keep them apart. Its spikes are listed for the event convs reading them
(`list_output`); where all readers take those lists (event convs, and fused neurons
adding it as a residual, which rebuild each row from the lists), the spikes are not
stored at all (`dense_output` False: ResNet-18's blocks write no spike tensors).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch

from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.runtime import event_conv as event_kernel
from snnc.runtime.native import TILE_MAX, window_2x2
from snnc.core.dynamics import NeuronOutput
from snnc.runtime.neurons import NeuronCall


@dataclass
class Node:
    """One step of a plan. A fused neuron reads `inputs[0]` and produces the value `name`."""

    name: str
    op: ops.OpBase
    inputs: tuple[str, ...]
    static: bool
    neuron: NeuronCall | None = None
    members: tuple[str, ...] = ()  # graph nodes this step computes (more than one when fused)
    spike_amplitude: float | None = None  # a Conv2d/Linear on the event kernel: its input is 0 or this (float32)
    spike_levels: int = 1  # ... or, with L > 1 levels, k * spike_amplitude for k = 0..L (average-pooled spikes)
    spike_signed: bool = False  # ... or 0 or +-spike_amplitude (a SignedIF's spikes, scaled)
    then: "ConvNeuron | None" = None  # an event conv whose output (plus an Add) feeds this neuron: fused
    list_output: bool = False  # (with `then`) also list the output's events for the event convs reading it
    dense_output: bool = True  # False: every reader takes the lists (`_lists_only`), the spikes are not stored


@dataclass(frozen=True)
class ConvNeuron:
    """The neuron an event conv runs on its output (`_fuse_conv_neurons`): the node's value is the
    neuron's (post-scaled) spikes, its state is the neuron's, and with `residual` the node's second
    input is added to the conv's output first (the other operand of an Add)."""

    neuron: ops.NeuronOp
    call: NeuronCall
    residual: bool
    pool: ops.RunningMaxPool2d | None = None  # between the conv and the neuron (2x2, stride 2; no residual)


@dataclass
class Plan:
    """The nodes of one graph in order, classified and fused, with the last reader of each value."""

    graph: Graph
    static_inputs: frozenset[str]
    nodes: list[Node]
    keep: frozenset[str]  # values that must be materialised (outputs, probes)
    last_use: dict[str, str] = field(default_factory=dict)  # value -> the node reading it last
    channels_last: bool = False
    last_list_use: dict[str, str] = field(default_factory=dict)  # value -> the last event conv reading it

    @property
    def dynamic(self) -> list[Node]:
        return [n for n in self.nodes if not n.static]

    @property
    def static(self) -> list[Node]:
        return [n for n in self.nodes if n.static]

    def bytes_per_step(self, batch: int, itemsize: int) -> int:
        """Peak bytes of live dynamic values per time step (plus the largest one as kernel scratch)."""
        types = self.graph.types
        size = {n.name: batch * math.prod(types[n.name].features) * itemsize for n in self.nodes}
        live: dict[str, int] = {}
        peak = biggest = 0
        for n in self.dynamic:
            live[n.name] = size[n.name] if n.dense_output else 0
            if n.list_output:  # its events, kept for the event convs reading it (event_conv.Events)
                c, h, w = types[n.name].features
                live[n.name + "#events"] = batch * h * w * event_kernel.events_bytes_per_pixel(c)
            biggest = max(biggest, size[n.name])
            peak = max(peak, sum(live.values()))
            for i in n.inputs:
                if self.last_list_use.get(i) == n.name:
                    live.pop(i + "#events", None)
                if self.last_use.get(i) == n.name and i not in self.keep:
                    live.pop(i, None)
        return max(1, peak + biggest)


def _fusable_scale(op: ops.OpBase) -> bool:
    return isinstance(op, ops.Scale) and op.weight is None and math.isfinite(op.factor)


def _fusable_pool(op: ops.OpBase, features: tuple[int, ...], channels_last: bool) -> str | None:
    """'avg'/'max' when op is a 2x2, stride-2, unpadded pooling of even-sized planes the native kernel takes."""
    if not isinstance(op, (ops.AvgPool2d, ops.MaxPool2d)) or len(features) != 3:
        return None
    c, h, w = features
    if op.kernel_size != (2, 2) or op.stride != (2, 2) or op.padding != (0, 0) or op.ceil_mode or h % 2 or w % 2:
        return None
    if 2 * w * (c if channels_last else 1) > TILE_MAX:
        return None
    if isinstance(op, ops.AvgPool2d):
        return "avg" if op.divisor_override is None else None
    return "max" if op.dilation == (1, 1) else None


def _f32(x: float) -> float:
    return float(torch.tensor(x, dtype=torch.float32))


def _pass_amplitude(n: Node, amp: dict[str, float]) -> None:
    """amp[n] from amp[its input] when n keeps the input's values (max pooling, flatten, a layout cast or
    identity) or scales them by a constant (fl(a * factor), as the Scale kernel computes it)."""
    op = n.op
    if not n.inputs or n.inputs[0] not in amp:
        return
    if isinstance(op, (ops.MaxPool2d, ops.Flatten, ops.LayoutCast, ops.Identity)):
        amp[n.name] = amp[n.inputs[0]]
    elif _fusable_scale(op):
        a = torch.tensor([amp[n.inputs[0]]], dtype=torch.float32)
        amp[n.name] = float((a * op.factor if op.factor != 1.0 else a)[0])


def spike_amplitudes(nodes: list[Node]) -> dict[str, float]:
    """Value name -> a, for the dynamic values that are 0 or a (float32) at every element.

    A neuron fires 0/1 for every kind and reset (`snnc.core.dynamics.fire`); a fused
    neuron outputs post * S, then (max pooling) the largest of such values or
    (average pooling) their mean, which is not two-valued. Scaling by a constant
    maps a to fl32(a * factor), exactly as the Scale kernel computes it.
    """
    amp: dict[str, float] = {}
    for n in nodes:
        if n.static:
            continue
        if n.neuron is not None:
            if n.neuron.params.output is not NeuronOutput.SPIKES:
                continue  # a leaky integrator outputs its potential
            if n.neuron.pool in (None, "max") and math.isfinite(n.neuron.post):
                amp[n.name] = _f32(n.neuron.post)
        else:
            _pass_amplitude(n, amp)
    return amp


def signed_amplitudes(nodes: list[Node]) -> dict[str, float]:
    """Value name -> a, for the dynamic values that are 0, a or -a (float32) at every element: a SignedIF's
    spikes (a = 1), scaled by a constant (fl(-a f) = -fl(a f)), max pooled, flattened, cast or passed on.
    Kept apart from `spike_amplitudes`: an average pool of them is not k * u with k >= 0."""
    amp: dict[str, float] = {}
    for n in nodes:
        if n.static:
            continue
        if isinstance(n.op, ops.SignedIF):
            amp[n.name] = 1.0
        else:
            _pass_amplitude(n, amp)
    return amp


def spike_levels(nodes: list[Node]) -> dict[str, tuple[float, int]]:
    """Value name -> (u, L), for the dynamic values whose every element is k * u, k = 0..L (float32):
    the two-valued ones of `spike_amplitudes` (L = 1), and their 2x2 average pooling (u = a / 4, L = 4).

    The pooling sums the window then multiplies by 0.25 (divides by 4), which is exact: with
    a, 2a, 3a, 4a the running sums, the value is fl(k a) / 4 = fl(k u). A max pooling, flatten,
    layout cast or identity keeps the levels; a Scale does not (fl(fl(k a) f) is not k fl(u f)).
    """
    amp = spike_amplitudes(nodes)
    out: dict[str, tuple[float, int]] = {k: (a, 1) for k, a in amp.items()}
    for n in nodes:
        op = n.op
        if n.static or n.name in out:
            continue
        if n.neuron is not None:
            if (n.neuron.params.output is NeuronOutput.SPIKES and n.neuron.pool == "avg"
                    and math.isfinite(n.neuron.post)):
                out[n.name] = (_f32(_f32(n.neuron.post) * 0.25), 4)
        elif (isinstance(op, ops.AvgPool2d) and n.inputs[0] in out and out[n.inputs[0]][1] == 1
              and op.kernel_size == (2, 2) and op.stride == (2, 2) and op.padding == (0, 0)
              and op.divisor_override is None and not op.ceil_mode):
            out[n.name] = (_f32(out[n.inputs[0]][0] * 0.25), 4)
        elif isinstance(op, (ops.MaxPool2d, ops.Flatten, ops.LayoutCast, ops.Identity)) and n.inputs[0] in out:
            out[n.name] = out[n.inputs[0]]
    return out


def _call(op: ops.NeuronOp, pre: float = 1.0, post: float = 1.0, pool: str | None = None) -> NeuronCall:
    """How the runtime runs neuron `op` (per-neuron parameters are read from the graph when it runs)."""
    per_neuron = tuple(op.per_neuron().items())
    v_init = None if op.v_init is None and "v_reset" in op.per_neuron() else op.initial_v()
    return NeuronCall(op.to_params(), v_init, pre, post, pool, per_neuron)


def build(graph: Graph, static_inputs: frozenset[str], *, keep: frozenset[str], fuse: bool,
          channels_last: bool = False, fuse_pool: bool = True, no_pool: frozenset[str] = frozenset(),
          event_conv: bool | str = False) -> Plan:
    """Classify nodes static/dynamic and (when `fuse`) fold the Scale ops next to a neuron, and a
    2x2 pooling after it (`fuse_pool`, except for the neurons in `no_pool`), into the neuron.
    With `event_conv`, mark the convs and linears on spike inputs for the event-driven kernel (with
    "auto", only those where it pays: `event_conv.pays`)."""
    types = graph.types
    # a recurrent edge's source is read one step late: it stays a value of its own (never fused away)
    keep = keep | frozenset(i for op in graph.back_edges() for i in op.inputs)
    users: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for op in graph:
        for i in op.inputs:
            users[i].append(op.name)

    static: dict[str, bool] = {}
    for op in graph:
        if isinstance(op, ops.Input):
            static[op.name] = op.name in static_inputs or not op.type.layout.has_time
        elif isinstance(op, (ops.NeuronOp, ops.Delay, ops.Recur)) or op.stateful:  # state carries over time steps
            static[op.name] = False
        else:
            static[op.name] = all(static[i] for i in op.inputs)

    absorbed: set[str] = set()
    fused: dict[str, Node] = {}  # neuron name -> its fused node
    if fuse:
        for op in graph:
            if not isinstance(op, ops.NeuronOp) or op.name in keep:
                continue
            src, pre, post, out, members = op.inputs[0], 1.0, 1.0, op.name, [op.name]
            prev = graph[src]
            if (_fusable_scale(prev) and not static[prev.name] and users[prev.name] == [op.name]
                    and prev.name not in keep and prev.name not in absorbed):
                src, pre = prev.inputs[0], prev.factor
                members.insert(0, prev.name)
            nxt = [graph[u] for u in users[op.name]]
            if len(nxt) == 1 and _fusable_scale(nxt[0]) and nxt[0].factor != 0.0:
                post, out = nxt[0].factor, nxt[0].name
                members.append(out)
            pool = None
            after = [graph[u] for u in users[out]]
            if fuse_pool and op.name not in no_pool and out not in keep and len(after) == 1:
                pool = _fusable_pool(after[0], types[out].features, channels_last)
                if pool is not None:
                    out = after[0].name
                    members.append(out)
            if len(members) == 1:
                continue
            absorbed.update(members)
            call = _call(op, pre, post, pool)
            fused[op.name] = Node(out, op, (src,), False, call, tuple(members))

    nodes: list[Node] = []
    for op in graph:
        if op.name in fused:
            nodes.append(fused[op.name])
        elif op.name in absorbed:
            continue
        else:
            call = _call(op) if isinstance(op, ops.NeuronOp) else None
            nodes.append(Node(op.name, op, tuple(op.inputs), static[op.name], call, (op.name,)))
    if event_conv:
        levels = spike_levels(nodes)
        signed = signed_amplitudes(nodes)
        for n in nodes:
            if n.static or not n.inputs or (n.inputs[0] not in levels and n.inputs[0] not in signed):
                continue
            sg = n.inputs[0] in signed
            unit, lv = (signed[n.inputs[0]], 1) if sg else levels[n.inputs[0]]
            if event_conv == "auto" and isinstance(n.op, (ops.Conv2d, ops.Linear)) \
                    and not event_kernel.pays(graph.params[n.op.weight]):
                continue
            rows = 2 if sg else lv  # a signed input lists 2 C_in event indices
            if isinstance(n.op, ops.Conv2d) and event_kernel.supported(graph.params[n.op.weight], n.op.groups, rows):
                n.spike_amplitude, n.spike_levels, n.spike_signed = unit, lv, sg
            elif (isinstance(n.op, ops.Linear) and len(types[n.inputs[0]].features) == 1
                  and event_kernel.supported(graph.params[n.op.weight][:, :, None, None], 1, rows)):
                n.spike_amplitude, n.spike_levels, n.spike_signed = unit, lv, sg  # a 1x1 conv on a 1x1 image
    if event_conv and fuse and fuse_pool and channels_last:
        nodes = _fuse_conv_neurons(nodes, keep, no_pool, types)
    last_use: dict[str, str] = {}
    for n in nodes:
        for i in n.inputs:
            last_use[i] = n.name
    last_list_use: dict[str, str] = {}  # the lists of a value serve event convs and fused residuals
    for n in nodes:
        if n.spike_amplitude is not None and not n.static:
            last_list_use[n.inputs[0]] = n.name
        if n.then is not None and n.then.residual:
            last_list_use[n.inputs[1]] = n.name
    return Plan(graph, static_inputs, nodes, keep, last_use, channels_last, last_list_use)


def _running_pool(m: Node, conv: Node, types) -> bool:
    """Whether node m is a RunningMaxPool2d that conv2d_neuron can run between event conv `conv` and a neuron."""
    op = m.op
    if not isinstance(op, ops.RunningMaxPool2d) or m.static or m.neuron is not None:
        return False
    _, ho, wo = types[conv.name].features
    return (window_2x2(op.kernel_size, op.stride, op.padding, op.dilation) and isinstance(ho, int)
            and isinstance(wo, int) and event_kernel.pool_fits(ho, wo))


def _fuse_conv_neurons(nodes: list[Node], keep: frozenset[str], no_pool: frozenset[str], types) -> list[Node]:
    """Fold each event conv whose only reader is a neuron, directly, through an Add with another
    time-varying value, or through a 2x2 RunningMaxPool2d (VGG's conv -> max pool -> IF after conversion),
    into one node (`ConvNeuron`; event_conv.conv2d_neuron): the conv's output, the sum and the pooled
    values then never go to memory, and the neuron's input is not read back. The neuron must run on
    the native kernel without pooling (`_run_native`'s plain case) and nothing may need the values in
    between (an output, a probe, a recorded potential)."""
    users: dict[str, list[Node]] = {}
    for n in nodes:
        for i in set(n.inputs):
            users.setdefault(i, []).append(n)
    by_name = {n.name: n for n in nodes}
    fused: dict[str, Node] = {}  # the neuron's value -> the node computing it
    gone: set[str] = set()
    for n in nodes:
        if n.static or n.spike_amplitude is None or not isinstance(n.op, ops.Conv2d) or n.name in keep:
            continue
        after = users.get(n.name, [])
        if len(after) != 1:
            continue
        add, m, res, pool = None, after[0], None, None
        if m.name not in keep and _running_pool(m, n, types):
            nxt = users.get(m.name, [])
            if len(nxt) != 1:
                continue
            pool, m = m, nxt[0]
        elif isinstance(m.op, ops.Add) and m.neuron is None and not m.static and m.name not in keep \
                and len(set(m.inputs)) == 2:
            res = m.inputs[1] if m.inputs[0] == n.name else m.inputs[0]
            nxt = users.get(m.name, [])
            if res not in by_name or by_name[res].static or len(nxt) != 1:
                continue
            add, m = m, nxt[0]
        call = m.neuron
        if (call is None or m.name in fused or res in gone or m.static or m.op.name in no_pool or call.pool is not None or call.general
                or call.params.output is not NeuronOutput.SPIKES or not isinstance(call.v_init, (int, float))
                or m.inputs != ((add or pool or n).name,)):
            continue
        between = add or pool
        members = n.members + (between.members if between else ()) + m.members
        fused[m.name] = replace(n, name=m.name, inputs=(n.inputs[0], *((res,) if add else ())), members=members,
                                then=ConvNeuron(m.op, call, add is not None, pool.op if pool else None))
        gone.update((n.name, *((between.name,) if between else ())))
    out = [fused.get(n.name, n) for n in nodes if n.name not in gone]
    # a fused node lists its spikes for the event convs reading them (one level, unsigned, as they are)
    readers = {n.inputs[0] for n in out if n.spike_amplitude is not None and n.spike_levels == 1
               and not n.spike_signed and isinstance(n.op, ops.Conv2d)}
    out = [replace(n, list_output=True) if n.then is not None and n.name in readers else n for n in out]
    return [replace(n, dense_output=False) if n.list_output and _lists_only(n.name, out, keep) else n for n in out]


def _lists_only(name: str, nodes: list[Node], keep: frozenset[str]) -> bool:
    """True when every reader of a listing node's value takes its lists: event convs of one-level spikes
    reading it as their input and fused neurons adding it as their residual (rebuilt from the lists). The
    value then never needs its dense [T, N, C, H, W] tensor."""
    if name in keep:
        return False
    for n in nodes:
        for j, i in enumerate(n.inputs):
            if i != name:
                continue
            event_input = (j == 0 and not n.static and n.spike_amplitude is not None and n.spike_levels == 1
                           and not n.spike_signed and isinstance(n.op, ops.Conv2d))
            if not (event_input or (j == 1 and n.then is not None and n.then.residual)):
                return False
    return True
