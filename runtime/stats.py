"""Run statistics: firing rates, spikes per time step, operation counts and an energy estimate.

Operation counts follow the usual SNN accounting:

- ANN MACs of a Conv2d/Linear: Cout * Hout * Wout * Cin/groups * kH * kW (conv) or
  in * out (linear, per position), per sample, as in the usual FLOP counters.
- A synaptic op whose input is spikes (a neuron's output, or an encoded input,
  seen through scale/pool/flatten/cast ops) is event driven: each nonzero input
  element costs one accumulate per synapse it reaches, its fan-out (zero
  padding has no synapses). SOPs = sum over steps of nonzero(input) . fanout.
- Any other synaptic op costs its MACs each time it runs: once per run when its
  input is constant over time (the runtime hoists it), else once per step.

Energy per operation (Horowitz, "Computing's energy problem (and what we can do
about it)", ISSCC 2014, 45 nm, 0.9 V): 32-bit float add 0.9 pJ, 32-bit float
multiply 3.7 pJ, so a MAC costs 4.6 pJ and an accumulate (AC) 0.9 pJ.

    E_SNN = 4.6 pJ * MACs + 0.9 pJ * SOPs        E_ANN = 4.6 pJ * ANN MACs
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from snnc.core.dynamics import NeuronOutput
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.runtime.plan import Node

E_ADD_PJ = 0.9  # Horowitz, ISSCC 2014: 32-bit float add, 45 nm
E_MULT_PJ = 3.7  # Horowitz, ISSCC 2014: 32-bit float multiply, 45 nm
E_MAC_PJ = E_MULT_PJ + E_ADD_PJ  # 4.6 pJ
E_AC_PJ = E_ADD_PJ  # 0.9 pJ
ENERGY_SOURCE = "Horowitz, ISSCC 2014 (45 nm): fp32 MAC 4.6 pJ, fp32 add (AC) 0.9 pJ"

SYNAPTIC = (ops.Conv2d, ops.Linear)
# Ops through which a spike train stays an event stream (nonzero in, nonzero out).
_EVENT_PRESERVING = (ops.Scale, ops.AvgPool2d, ops.MaxPool2d, ops.RunningMaxPool2d, ops.Flatten, ops.Identity,
                     ops.LayoutCast, ops.Output, ops.Concat)


@dataclass(frozen=True)
class SynapticOp:
    """Static cost figures of one Conv2d/Linear."""

    name: str
    kind: str
    macs: int  # ANN multiply-accumulates per sample
    fanout: Tensor  # [*input features]: synapses each input element reaches


def synaptic_ops(graph: Graph) -> dict[str, SynapticOp]:
    """The Conv2d/Linear nodes of a graph with their MACs per sample and fan-out maps."""
    types = graph.types
    out: dict[str, SynapticOp] = {}
    for op in graph:
        if isinstance(op, ops.Conv2d):
            w = graph.params[op.weight].shape
            fin = types[op.inputs[0]].features
            fout = types[op.name].features
            macs = math.prod(fout) * w[1] * w[2] * w[3]
            fanout = torch.nn.grad.conv2d_input((1, *fin), torch.ones(tuple(w)), torch.ones((1, *fout)),
                                                op.stride, op.padding, op.dilation, op.groups)[0]
            out[op.name] = SynapticOp(op.name, op.kind, macs, fanout.round().long())
        elif isinstance(op, ops.Linear):
            w = graph.params[op.weight].shape
            fin = types[op.inputs[0]].features
            macs = math.prod(fin[:-1]) * w[0] * w[1]
            out[op.name] = SynapticOp(op.name, op.kind, macs, torch.full(tuple(fin), int(w[0]), dtype=torch.long))
    return out


def ann_macs(graph: Graph) -> int:
    """Total ANN MACs per sample (convs and linears)."""
    return sum(s.macs for s in synaptic_ops(graph).values())


def spiking_values(graph: Graph, spiking_inputs: set[str]) -> set[str]:
    """Values that carry events: neuron outputs, spike-encoded inputs, and event-preserving ops of them."""
    spiking: set[str] = set(spiking_inputs)
    for op in graph:
        if (isinstance(op, ops.NeuronOp) and op.output is NeuronOutput.SPIKES) or isinstance(op, ops.Threshold):
            spiking.add(op.name)
        elif isinstance(op, _EVENT_PRESERVING) and op.inputs and all(i in spiking for i in op.inputs):
            spiking.add(op.name)
    return spiking


@dataclass
class LayerStats:
    """One neuron layer over a run."""

    name: str
    source: str
    neurons: int  # per sample
    spikes_per_step: Tensor  # [T] summed over the batch

    @property
    def spikes(self) -> int:
        return int(self.spikes_per_step.sum())

    def rate(self, batch: int) -> float:
        """Mean spikes per neuron per step."""
        steps = self.spikes_per_step.numel()
        return self.spikes / max(1, steps * batch * self.neurons)


@dataclass
class SynapseStats:
    name: str
    kind: str
    event_driven: bool
    ann_macs: int  # per sample
    macs: int = 0  # multiply-accumulates executed, whole batch
    sops: int = 0  # accumulates executed (synaptic operations), whole batch


@dataclass
class RunStats:
    """What a run did: per-layer firing, spikes per step, operation counts, energy."""

    T: int
    batch: int
    layers: list[LayerStats] = field(default_factory=list)
    synapses: list[SynapseStats] = field(default_factory=list)

    @property
    def spikes_per_step(self) -> Tensor:
        """Total spikes of all neuron layers at each step (summed over the batch)."""
        if not self.layers:
            return torch.zeros(self.T, dtype=torch.long)
        return torch.stack([layer.spikes_per_step for layer in self.layers]).sum(0)

    @property
    def rates(self) -> dict[str, float]:
        return {layer.name: layer.rate(self.batch) for layer in self.layers}

    @property
    def sops(self) -> int:
        return sum(s.sops for s in self.synapses)

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.synapses)

    @property
    def ann_macs(self) -> int:
        """ANN MACs per sample."""
        return sum(s.ann_macs for s in self.synapses)

    def energy_pj(self) -> tuple[float, float]:
        """(SNN, ANN) energy per sample in pJ."""
        snn = (E_MAC_PJ * self.macs + E_AC_PJ * self.sops) / max(1, self.batch)
        return snn, E_MAC_PJ * self.ann_macs

    def to_dict(self) -> dict:
        snn, ann = self.energy_pj()
        return {
            "T": self.T, "batch": self.batch,
            "layers": [{"name": ly.name, "source": ly.source, "neurons": ly.neurons, "spikes": ly.spikes,
                        "rate": ly.rate(self.batch), "spikes_per_step": ly.spikes_per_step.tolist()}
                       for ly in self.layers],
            "synapses": [s.__dict__ for s in self.synapses],
            "spikes_per_step": self.spikes_per_step.tolist(),
            "sops_per_sample": self.sops / max(1, self.batch), "macs_per_sample": self.macs / max(1, self.batch),
            "ann_macs_per_sample": self.ann_macs,
            "energy_pj_per_sample": {"snn": snn, "ann": ann, "source": ENERGY_SOURCE},
        }

    def table(self) -> str:
        """A plain-text report."""
        b = max(1, self.batch)
        lines = [f"{'layer':24s} {'source':20s} {'neurons':>8s} {'rate':>7s} {'spikes/sample':>14s}"]
        for ly in self.layers:
            lines.append(f"{ly.name:24.24s} {ly.source:20.20s} {ly.neurons:8d} {ly.rate(self.batch):7.4f} "
                         f"{ly.spikes / b:14.1f}")
        lines.append("")
        lines.append(f"{'synaptic op':24s} {'kind':7s} {'input':6s} {'ANN MACs':>12s} {'SNN MACs':>12s} {'SOPs':>12s}"
                     "   (per sample)")
        for s in self.synapses:
            lines.append(f"{s.name:24.24s} {s.kind:7s} {'spikes' if s.event_driven else 'dense':6s} "
                         f"{s.ann_macs:12,d} {s.macs / b:12,.0f} {s.sops / b:12,.0f}")
        snn, ann = self.energy_pj()
        per_step = self.spikes_per_step.float() / b
        if per_step.numel():
            shown = ", ".join(f"{v:.1f}" for v in per_step[:8].tolist())
            lines.append("")
            lines.append(f"spikes per step per sample: {shown}{', ...' if per_step.numel() > 8 else ''}")
        lines.append(f"T={self.T}  total SOPs/sample {self.sops / b:,.0f}  MACs/sample {self.macs / b:,.0f}  "
                     f"ANN MACs/sample {self.ann_macs:,d}")
        ratio = f"{snn / ann:.2f}" if ann else "n/a"
        lines.append(f"energy/sample: SNN {snn / 1e6:.4f} uJ, ANN {ann / 1e6:.4f} uJ (SNN/ANN = {ratio})  "
                     f"[{ENERGY_SOURCE}]")
        return "\n".join(lines)


class StatsCollector:
    """Run hooks that fill a RunStats."""

    def __init__(self, graph: Graph, T: int, batch: int, spiking_inputs: set[str]):
        self.graph = graph
        self.stats = RunStats(T, batch)
        types = graph.types
        self._layers: dict[str, LayerStats] = {}
        for op in graph:
            if isinstance(op, ops.NeuronOp) and op.output is NeuronOutput.SPIKES:
                src = op.loc.module_path if op.loc else ""
                layer = LayerStats(op.name, src, math.prod(types[op.name].features), torch.zeros(T, dtype=torch.long))
                self._layers[op.name] = layer
                self.stats.layers.append(layer)
        spiking = spiking_values(graph, spiking_inputs)
        self._syn = synaptic_ops(graph)
        self._syn_stats: dict[str, SynapseStats] = {}
        self._readers: dict[str, list[str]] = {}  # value -> event-driven synaptic ops reading it
        for name, s in self._syn.items():
            src = graph[name].inputs[0]
            st = SynapseStats(name, s.kind, src in spiking, s.macs)
            self._syn_stats[name] = st
            self.stats.synapses.append(st)
            if st.event_driven:
                self._readers.setdefault(src, []).append(name)

    def value(self, node: Node, x: Tensor, static: bool, t0: int | None, t1: int | None) -> None:
        if node.neuron is not None and node.op.name in self._layers:
            counts = (x != 0).flatten(1).sum(1)
            self._layers[node.op.name].spikes_per_step[t0:t1] += counts.cpu()
        readers = self._readers.get(node.name)
        if readers and not static:
            nz = (x != 0).flatten(0, 1).sum(0).cpu()
            for r in readers:
                self._syn_stats[r].sops += int((nz * self._syn[r].fanout).sum())
        st = self._syn_stats.get(node.name)
        if st is not None and not st.event_driven:
            batch = x.shape[0] if static else x.shape[1]
            st.macs += st.ann_macs * batch * (1 if static else x.shape[0])

    def potential(self, node: Node, v_seq: Tensor, t0: int, t1: int) -> None:
        pass
