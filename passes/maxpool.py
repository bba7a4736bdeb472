"""Max pooling in the ANN-to-SNN conversion: reorder-maxpool and running-maxpool.

After conversion a MaxPool2d reads rate-coded values: spikes, or the currents a layer
computes from spikes. Its max at each step, averaged over T steps, overestimates the
max of the averages (mean(max) >= max(mean)), and the gap does not shrink with T. Two
passes remove that error:

* reorder-maxpool (on the ANN, before calibrate): ReLU -> [positive per-channel scales] -> MaxPool
  becomes MaxPool -> ReLU -> [...] (also with a Clamp(0, a) for the ReLU, or a Clamp among the
  scales), exact on the ANN because a nondecreasing elementwise
  function commutes with max (max pooling pads with -inf, so padding never wins). The
  ReLU, later the IF neuron, then sees the pooled value: calibrate measures the pooled
  activations, and the layer has a quarter of the neurons (2x2 pooling). A max pooling
  of the network's input (nothing spiking before it) stays a MaxPool2d: with a constant
  input it runs once, on exact values.
* running-maxpool (after to-time-layout, before relu-to-if): every MaxPool2d that reads a
  value computed from a ReLU (an IF neuron after relu-to-if) becomes RunningMaxPool2d,
  whose output sums to the max of the summed inputs after every step (ir/ops/pool.py),
  so its rate converges to the max of the rates as T grows, wherever it sits (after an
  Add of residual branches, a concatenation, a ReLU with other readers).

relu-to-if warns about each max pooling that would still take the max over spikes (a
pipeline without running-maxpool).
"""

from __future__ import annotations

import warnings

import torch

from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.passes.calibrate import converts_to_if
from snnc.passes.manager import register_pass


def _positive_channelwise(op: ops.OpBase, graph: Graph) -> bool:
    """True when op is y = a x + b per channel (or the identity) with every a > 0: it commutes with max."""
    p = graph.params
    if isinstance(op, (ops.Identity, ops.Clamp)):  # a clamp is nondecreasing
        return True
    if isinstance(op, ops.Scale):
        return op.factor > 0 and (op.weight is None or bool((p[op.weight] > 0).all()))
    if isinstance(op, ops.BatchNorm):
        gamma = p[op.weight] if op.weight is not None else torch.ones_like(p[op.running_var])
        return bool((gamma.double() / torch.sqrt(p[op.running_var].double() + op.eps) > 0).all())
    return False


def _chain_to_relu(graph: Graph, pool: ops.MaxPool2d) -> list[ops.OpBase] | None:
    """The ops from the topmost ReLU down to the pool's input when every one commutes with max and
    is read by the next alone; None when the pool does not read a ReLU that way."""
    chain: list[ops.OpBase] = []
    name = pool.inputs[0]
    top = None
    while True:
        op = graph[name]
        if not (isinstance(op, ops.ReLU) or _positive_channelwise(op, graph)):
            break
        if len(graph.users(name)) != 1:
            break
        chain.append(op)
        if converts_to_if(op):
            top = len(chain)
        name = op.inputs[0]
    return chain[:top][::-1] if top else None


def reorder_maxpool(graph: Graph) -> Graph:
    """ReLU -> (positive per-channel affine ops) -> MaxPool2d  =>  MaxPool2d -> ReLU -> (...): the same ANN."""
    g = graph.copy()
    for name in list(g.nodes):
        pool = g.nodes[name]
        if not isinstance(pool, ops.MaxPool2d):
            continue
        chain = _chain_to_relu(g, pool)
        if chain is None:
            continue
        top, bottom = chain[0], chain[-1]
        g.replace_uses(pool.name, bottom.name)
        g.replace_op(pool.replace(inputs=top.inputs))
        g.replace_op(g.nodes[top.name].replace(inputs=(pool.name,)))
        g.sort()
    return g


@register_pass("reorder-maxpool")
def reorder_maxpool_pass(graph: Graph) -> Graph:
    """Move each MaxPool2d before the ReLU it reads (exact on the ANN): the IF neuron sees the pooled value."""
    return reorder_maxpool(graph)


def _after_relu(graph: Graph) -> set[str]:
    """Values computed from a ReLU or a neuron (rate-coded once converted)."""
    out: set[str] = set()
    for op in graph:
        if isinstance(op, ops.NeuronOp) or converts_to_if(op) or any(i in out for i in op.inputs):
            out.add(op.name)
    return out


def spiking_max_pools(graph: Graph) -> list[ops.MaxPool2d]:
    """The MaxPool2d ops that read a value computed from a ReLU or a neuron."""
    rated = _after_relu(graph)
    return [op for op in graph if isinstance(op, ops.MaxPool2d) and op.inputs[0] in rated]


def running_maxpool(graph: Graph) -> Graph:
    """Each MaxPool2d that reads a value computed from a ReLU or neuron becomes a RunningMaxPool2d."""
    g = graph.copy()
    for op in spiking_max_pools(g):
        g.replace_op(ops.RunningMaxPool2d(name=op.name, inputs=op.inputs, loc=op.loc, kernel_size=op.kernel_size,
                                          stride=op.stride, padding=op.padding, dilation=op.dilation,
                                          ceil_mode=op.ceil_mode))
    return g


@register_pass("running-maxpool")
def running_maxpool_pass(graph: Graph) -> Graph:
    """Max pooling of rate-coded values pools the accumulated inputs, so the rate converges to the max."""
    return running_maxpool(graph)


def warn_max_over_spikes(graph: Graph) -> None:
    """Warn for each MaxPool2d that will take the max over spike trains (relu-to-if calls it)."""
    for op in spiking_max_pools(graph):
        warnings.warn(f"{op.where()} takes the max over spike trains at each step: its rate overestimates the "
                      "max of the rates and the error does not shrink with T; run 'running-maxpool' before "
                      "'relu-to-if' (PIPELINES['convert'] does)", stacklevel=3)
