"""The hybrid conversion (`analog=` / `--analog OP,...`): non-ReLU activations run on decoded rates.

No rate code exists for SiLU, sigmoid, hardswish, hardsigmoid, GELU, tanh, softmax or
layer norm. Conversion refuses each of them (one PassError naming the op, its module
and the flag) unless the user names its kind in `analog`. Then the pass `rate-decode`
(after to-time-layout and running-maxpool, before relu-to-if) puts a RateDecode
(ir/ops/analog.py) in front of every such op that reads a rate-coded value:

    d[t] = (x[0] + ... + x[t]) / (t + 1)       the running mean: the value the ANN's op would see
    y[t] = f(d[t])                             the op on the decoded value, an analog current

so the op's output converges to the ANN's as T grows. An analog op that reads only
values computed from the (constant) network input needs no decode: it runs on exact
values, like the first layer of any conversion. A product of a rate-coded value and
an analog one (squeeze-excitation's x * sigmoid(s)) stays as it is: for a fixed gate it
is linear in the rate-coded operand (relu-to-if's refuse_nonlinear lets it through), and
the gate converges. A product of two rate-coded values (self-attention's q k^T, a MatMul) is named
`matmul`: with it, both operands are decoded and the product is analog too.
The pass leaves a report in graph.meta["analog"] (AnalogReport's
fields): how many MACs run on decoded (analog) values, on spikes, and on the input.
"""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict

from snnc.core.errors import PassError
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.passes.analog_kinds import ANALOG_KINDS, analog_kind
from snnc.passes.calibrate import converts_to_if
from snnc.passes.context import ConversionContext, require
from snnc.passes.manager import register_pass
from snnc.runtime.stats import synaptic_ops


def product_of_rates(op: ops.OpBase, rated: set[str]) -> bool:
    """A MatMul of two rate-coded values (self-attention's q k^T): its mean over T is no product of the rates.
    With --analog matmul it reads both decoded rates; a product with one value that no spike drives is linear
    in the other and stays as it is."""
    return isinstance(op, ops.MatMul) and all(i in rated for i in op.inputs)


def _kind(op: ops.OpBase) -> str | None:
    return "matmul" if isinstance(op, ops.MatMul) else analog_kind(op)


def _spiking(graph: Graph) -> set[str]:
    """The rate-coded values: computed from a ReLU/Clamp(0, a) (an IF neuron once converted) or a neuron,
    up to a RateDecode or an analog op (which reads the decoded rate: its output is analog)."""
    rated: set[str] = set()
    for op in graph:
        if isinstance(op, ops.NeuronOp) or converts_to_if(op) or (
                not isinstance(op, ops.RateDecode) and analog_kind(op) is None and not product_of_rates(op, rated)
                and any(i in rated for i in op.inputs)):
            rated.add(op.name)
    return rated


def refuse_analog(graph: Graph, allowed: frozenset[str]) -> None:
    """One PassError naming the first op that has no rate code and is not in `allowed`, and the flag to use.

    Activations (SiLU, sigmoid, ...) are refused wherever they sit; softmax and layer norm only on a
    rate-coded value (on values computed from the input alone they run exactly, as before).
    """
    rated = _spiking(graph)
    bad = [op for op in graph if ((kind := analog_kind(op)) is not None and kind not in allowed
                                  and (isinstance(op, ops.Activation) or any(i in rated for i in op.inputs)))
           or ("matmul" not in allowed and product_of_rates(op, rated))]
    if not bad:
        return
    kinds = sorted({_kind(op) for op in bad}, key=ANALOG_KINDS.index)
    counts = ", ".join(f"{k} x{n}" for k, n in Counter(map(_kind, bad)).items())
    more = f" (one of {len(bad)}: {counts})" if len(bad) > 1 else ""
    flag = ",".join(kinds)
    raise PassError(f"{bad[0].where()} has no rate code: it is not linear{more}; run it on the decoded rate "
                    f"with --analog {flag} (analog={flag!r}) in graph '{graph.name}'",
                    hint="docs/conversion.md, 'Hybrid conversion': analog ops read the running mean of their "
                         "spiking input; graph.meta['analog'] reports the share of MACs that stays analog")


class AnalogReport(BaseModel):
    """What a hybrid conversion leaves analog; MACs per sample of the Conv2d/Linear ops."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    decoded_ops: dict[str, int] = {}  # analog kind -> ops that run on a decoded rate
    exact_ops: dict[str, int] = {}  # analog kind -> ops on values computed from the input alone (no decode)
    decoded_macs: int = 0  # MACs after a decode, up to the next spiking neuron
    input_macs: int = 0  # MACs on values computed from the input alone (the first layer, ...)
    spiking_macs: int = 0  # MACs on rate-coded (spike-driven) values
    total_macs: int = 0

    @property
    def share(self) -> float:
        """The fraction of MACs that run on decoded rates (analog, between spiking segments)."""
        return self.decoded_macs / self.total_macs if self.total_macs else 0.0

    @property
    def non_spiking_share(self) -> float:
        """The fraction of MACs that no spike drives: decoded ones and those on the input alone."""
        return (self.decoded_macs + self.input_macs) / self.total_macs if self.total_macs else 0.0

    def summary(self) -> str:
        ops_ = ", ".join(f"{k} x{n}" for k, n in self.decoded_ops.items()) or "none"
        exact = ", ".join(f"{k} x{n}" for k, n in self.exact_ops.items())
        return (f"analog share: {100 * self.share:.1f}% of {self.total_macs:,d} MACs/sample run on decoded rates "
                f"(ops on decoded rates: {ops_}{'; on the input alone: ' + exact if exact else ''}); "
                f"{100 * self.non_spiking_share:.1f}% driven by no spike (with the layers before the first neuron)")

    @classmethod
    def of(cls, graph: Graph) -> "AnalogReport | None":
        """The report a hybrid conversion left in graph.meta['analog'] (None when it left none)."""
        meta = graph.meta.get("analog")
        return cls.model_validate(meta) if meta is not None else None


def analog_report(graph: Graph) -> AnalogReport:
    """Classify every value as input-only, rate-coded or decoded, and count the MACs of each class."""
    state: dict[str, str] = {}
    decoded: Counter = Counter()
    exact: Counter = Counter()
    for op in graph:
        ins = [state.get(i, "input") for i in op.inputs]
        if isinstance(op, ops.NeuronOp) or converts_to_if(op):
            state[op.name] = "spiking"
        elif isinstance(op, ops.RateDecode):
            state[op.name] = "decoded"
        else:
            state[op.name] = "spiking" if "spiking" in ins else "decoded" if "decoded" in ins else "input"
        kind = analog_kind(op)
        if kind is not None:
            (decoded if "decoded" in ins else exact)[kind] += 1
        elif _decoded_product(graph, op):
            decoded["matmul"] += 1
    macs = {"input": 0, "spiking": 0, "decoded": 0}
    for name, s in synaptic_ops(graph).items():
        macs[state.get(graph[name].inputs[0], "input")] += s.macs
    order = {k: i for i, k in enumerate(ANALOG_KINDS)}
    return AnalogReport(decoded_ops=dict(sorted(decoded.items(), key=lambda kv: order[kv[0]])),
                        exact_ops=dict(sorted(exact.items(), key=lambda kv: order[kv[0]])),
                        decoded_macs=macs["decoded"], input_macs=macs["input"], spiking_macs=macs["spiking"],
                        total_macs=sum(macs.values()))


def _decoded_product(graph: Graph, op: ops.OpBase) -> bool:
    """A MatMul of two decoded rates (product_of_rates once rate-decode ran)."""
    return isinstance(op, ops.MatMul) and all(isinstance(graph[i], ops.RateDecode) for i in op.inputs)


def insert_rate_decodes(graph: Graph, allowed: frozenset[str]) -> Graph:
    """A RateDecode before each rate-coded input of every analog op (refused unless `allowed` names it);
    graph.meta['analog'] gets the AnalogReport when any analog op is left."""
    refuse_analog(graph, allowed)
    rated = _spiking(graph)
    g = graph.copy()
    decodes: dict[str, str] = {}  # rate-coded value -> its decode (one per value, shared by its analog readers)
    for op in list(g):
        if (analog_kind(op) is None or not any(i in rated for i in op.inputs)) and not product_of_rates(op, rated):
            continue
        inputs = []
        for i in op.inputs:
            if i in rated and i not in decodes:
                decodes[i] = g.fresh_name(f"{i}_rate")
                g.insert_after(i, ops.RateDecode(name=decodes[i], inputs=(i,), loc=op.loc))
            inputs.append(decodes.get(i, i) if i in rated else i)
        g.replace_op(op.replace(inputs=tuple(inputs)))
    g.sort()
    if any(analog_kind(op) is not None or _decoded_product(g, op) for op in g):
        report = analog_report(g)
        if not report.spiking_macs and not any(isinstance(op, ops.NeuronOp) or converts_to_if(op) for op in g):
            warnings.warn(f"graph {g.name} has no ReLU to convert: no neuron spikes, and the analog ops run on "
                          "exact values (the converted graph computes the ANN itself; analog share "
                          f"{100 * report.non_spiking_share:.0f}% with the input layers)", stacklevel=2)
        meta: dict[str, Any] = dict(g.meta)
        meta["analog"] = report.model_dump()
        g.meta = meta
    return g


@register_pass("rate-decode", context=True)
def rate_decode_pass(graph: Graph, context: ConversionContext | None) -> Graph:
    """Hybrid conversion: each analog op (--analog) on a rate-coded value reads its running mean (a RateDecode)."""
    return insert_rate_decodes(graph, require(context, "rate-decode").options.analog)
