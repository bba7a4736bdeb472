"""Bias correction of a converted SNN at a target T (the "BC" step of Li et al. 2021,
"A free lunch from ANN: towards efficient, accurate spiking neural networks calibration").

After conversion, the T-step rate code of layer l, l/T * count, differs from the
ANN's activation a_l on average: truncation, clipping and uneven spike arrival
all bias it. Layer by layer (front to back, each step seeing the corrections
before it), the pass runs the SNN on the calibration data for T steps and adds
the per-channel mean error to the bias of the layer feeding the neuron:

    b_l[c] += E[a_l[c]] - E[decoded SNN output of layer l, channel c]

It needs no labels, only the calibration data and the ANN it was converted from
(the "bias-correction" pass reads both from the ConversionContext; it does nothing
unless the conversion options ask for it).
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor

from snnc.core import spelling
from snnc.core.errors import ResourceError
from snnc.core.progress import track
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.passes.calibrate import batches, converts_to_if
from snnc.passes.context import ConversionContext, calibrated
from snnc.passes.distributed import all_reduce_sums
from snnc.passes.manager import register_pass
from snnc.runtime import memory
from snnc.runtime.interpreter import Interpreter


CHUNK_BUDGET = 1 << 30  # bytes one chunk of calibration images may take to simulate (within the memory limit)


def _channel_sum(value: Tensor, channel_dim: int) -> tuple[Tensor, int]:
    """(float64 sum over every dim but channel_dim, number of values summed per channel), summed in blocks
    along dim 0 so that the float64 copy stays small whatever T and the batch."""
    dims = [d for d in range(value.dim()) if d != channel_dim]
    rows = max(1, (1 << 22) // max(1, value[0].numel())) if value.dim() > 1 and channel_dim != 0 else value.shape[0]
    total = None
    for i in range(0, value.shape[0], rows):
        s = value[i:i + rows].double().sum(dims)
        total = s if total is None else total + s
    if total is None:
        total = torch.zeros(value.shape[channel_dim], dtype=torch.float64)
    return total, value.numel() // max(1, value.shape[channel_dim])


def chunk_size(interp: Interpreter, T: int | None, batch_size: int, budget: int = CHUNK_BUDGET) -> int:
    """Images simulated at once: at most `batch_size`, and as many as fit `budget` bytes and the memory
    limit (a run that observes every layer holds all T steps of the whole chunk); 1 when even one image
    is over the budget (its run then checks the limit itself and refuses when one image does not fit)."""
    most = memory.largest_batch(interp, T, observe=True, budget=budget)
    return batch_size if most is None else max(1, min(batch_size, most))


def _prefix(graph: Graph, name: str) -> Graph:
    """The part of `graph` that computes %name, with %name its only output: each layer's correction
    simulates only the layers before it (the same values; about half the work over a network)."""
    keep, todo = set(), [name]
    links = graph.state_links()
    while todo:
        n = todo.pop()
        if n not in keep:
            keep.add(n)
            todo += [*graph.nodes[n].inputs, *([links[n]] if n in links else [])]
    g = graph.copy()
    for n in reversed(list(g.nodes)):
        if n not in keep:
            g.remove(n)
    g.add(ops.Output(name=g.fresh_name(f"{name}_out"), inputs=(name,)))
    g.drop_unused_params()
    return g


def _means(graph: Graph, data, names: set[str], T: int | None, channel_dim: int,
           batch_size: int, *, what: str = "", show_progress: bool | None = None,
           budget: int = CHUNK_BUDGET) -> dict[str, Tensor]:
    """Per-channel means of the nodes `names` over `data`, run for T steps; the images are simulated in
    chunks that fit `budget` (see chunk_size), summed per chunk and divided once."""
    interp = Interpreter(graph)
    sums: dict[str, list] = {}
    for n in sorted(names):  # the same order on every rank: the sums are all-reduced in it
        feats = graph.type_of(n).features
        sums[n] = [torch.zeros(feats[0] if feats else 1, dtype=torch.float64), 0]
    inp = graph.inputs[0].name
    chunk = chunk_size(interp, T, batch_size, budget)

    def observe(op, value):
        if op.name in sums:
            s, k = _channel_sum(value, channel_dim)
            sums[op.name][0] = sums[op.name][0] + s
            sums[op.name][1] += k

    def chunks():
        for x in batches(data, batch_size):
            yield from x.split(chunk) if x.numel() else ()

    total = None
    if isinstance(data, Tensor):
        total = -(-data.shape[0] // chunk) if batch_size % chunk == 0 else None
    with torch.no_grad():
        for x in track(chunks(), f"bias correction{what}: {chunk} images at a time", total=total,
                       show=show_progress):
            interp.reset()
            try:
                interp.run({inp: x}, T, observe=observe)
            except ResourceError as e:  # even one image does not fit (chunk_size leaves the refusal to the run)
                at = f" at T={T}" if T else ""
                raise ResourceError(f"bias correction{what}{at} cannot simulate even {x.shape[0]} "
                                    f"calibration image(s) with every layer observed: {e.message}",
                                    hint=f"convert with a lower {spelling.flag('time_steps')} or without "
                                         "bias_correction, or allow more memory") from None
    out = {}
    for n, (s, k) in sums.items():  # summed over ranks when calibration is distributed
        s, k = all_reduce_sums(s, torch.tensor([k], dtype=torch.float64))
        out[n] = s / max(float(k[0]), 1.0)
    return out


def correct_biases(snn: Graph, ann: Graph, data, time_steps: int, *, batch_size: int = 256,
                   relus: Iterable[str] | None = None, iterations: int = 2, show_progress: bool | None = None,
                   budget: int = CHUNK_BUDGET) -> Graph:
    """Shift the bias feeding each converted ReLU by the per-channel mean rate-code error at T steps.

    `snn` is `relu_to_if(ann, ...)` before any folding: each ReLU name r is there the
    output Scale of `producer -> Scale(1/l) -> IF -> Scale(l)`. Layers whose producer
    is not a Conv2d/Linear keep their bias. The calibration images are simulated in chunks of at
    most `budget` bytes (all T steps of every layer of a chunk are live at once); the means are the
    same as over the whole batch, up to float rounding.
    """
    names = list(relus) if relus is not None else [op.name for op in ann if converts_to_if(op)]
    if not names:
        return snn
    target = _means(ann, data, set(names), None, 1, batch_size, what=" (ANN)", show_progress=show_progress,
                    budget=budget)
    g = snn.copy()
    for i, r in enumerate(names):
        producer = _producer(g, r)
        if producer is None:
            continue
        cout = g.params[producer.weight].shape[0]
        if target[r].numel() != cout:
            continue  # a Linear over [.., L, F] features: channel dim 0 is not its output dim
        for it in range(iterations):  # the rate code moves less than the bias (clipping, zeros): repeat
            producer = g.nodes[producer.name]
            what = f" of %{r} ({i + 1}/{len(names)}, pass {it + 1}/{iterations})"
            err = target[r] - _means(_prefix(g, r), data, {r}, time_steps, 2, batch_size, what=what,  # TNX: dim 2
                                     show_progress=show_progress, budget=budget)[r]
            old = g.params[producer.bias].double() if producer.bias else torch.zeros(cout, dtype=torch.float64)
            dtype = g.params[producer.weight].dtype
            bias = g.add_param(producer.bias or f"{producer.weight.rsplit('.', 1)[0]}.bias", (old + err).to(dtype))
            g.replace_op(producer.replace(bias=bias))
    g.drop_unused_params()
    return g


def _producer(g: Graph, relu: str) -> ops.Conv2d | ops.Linear | None:
    out = g.nodes.get(relu)
    if not isinstance(out, ops.Scale):
        return None
    neuron = g.nodes.get(out.inputs[0])
    if not isinstance(neuron, ops.NeuronOp):
        return None
    inv = g.nodes.get(neuron.inputs[0])
    src = g.nodes.get(inv.inputs[0]) if isinstance(inv, ops.Scale) else None
    if isinstance(src, (ops.Conv2d, ops.Linear)) and len(g.users(src.name)) == 1:
        return src
    return None


@register_pass("bias-correction", context=True)
def bias_correction_pass(graph: Graph, context: ConversionContext | None) -> Graph:
    """With --bias-correction: shift biases by the mean rate-code error at -T (else the graph unchanged)."""
    if context is None or not context.options.bias_correction:
        return graph
    ctx = calibrated(context, "bias-correction")
    snn = correct_biases(graph, ctx.ann, ctx.data, ctx.options.time_steps, batch_size=ctx.batch_size,
                         show_progress=ctx.show_progress, budget=CHUNK_BUDGET)
    snn = snn.copy() if snn is graph else snn  # passes never change their input
    snn.meta = {**snn.meta, "conversion": {**snn.meta["conversion"], "bias_correction": True}}
    return snn
