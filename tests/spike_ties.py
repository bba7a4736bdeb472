"""Tell a spike that two float32 runs of one network disagree on because of rounding (a tie) from a real difference.

Two runtimes that sum a neuron's input current in different orders (channels_last or event-driven convs
on the cpu reference, time folded into batch on lynxi) get currents that differ in the last bits. A
neuron whose potential lies within that difference of its threshold fires in one run and not in the
other, and a deep network carries that one spike on to different outputs. `explain` finds the first
neuron layer (in graph order) and time step where the spikes of two runs differ and checks that it is
such a tie, against a third run of the same graph in float64:

* every spike before it is the same in all three runs (each layer at every step, that layer before
  the step), so that layer saw the same input spikes in all three;
* that layer's input currents of the two float32 runs agree within `tol` up to that step;
* every neuron that flips there has, in all three runs, a potential (recomputed from its current with
  snnc.core.dynamics) within `tol` of its threshold;

where `tol` is `rel` (1e-5, the zoo tests' tolerance) times the largest input current of that layer up
to that step (at least 1), in float64: float32 rounding grows with the magnitude of the sums.

Otherwise it raises AssertionError naming the layer, the step and the values. Nothing after the first
flip is compared: the flip changes everything downstream.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from snnc.core import dynamics
from snnc.ir import ops
from snnc.ir.graph import Graph


@dataclass
class Run:
    """One run's neuron spikes and neuron input currents, by neuron name, each [T, N, *]."""

    spikes: dict[str, Tensor]
    currents: dict[str, Tensor]


@dataclass
class Tie:
    layer: str
    step: int
    flipped: int  # neurons of `layer` that flip at `step`
    differing: int  # spikes that differ in the whole run (every layer, every step)
    margin: float  # the largest |potential - threshold| of a flipped neuron in the float64 run
    tol: float  # what explain() accepted as rounding there

    def __str__(self) -> str:
        return (f"a rounding tie at %{self.layer}, step {self.step}: {self.flipped} neuron(s) within "
                f"{self.margin:.3g} of the threshold in float64 (accepted: {self.tol:.3g}; {self.differing} "
                f"spikes differ from there on)")


def neurons(graph: Graph) -> list[ops.NeuronOp]:
    return [op for op in graph if isinstance(op, ops.NeuronOp)]


def probes(graph: Graph) -> list[str]:
    """The values to observe on the cpu runtime: every neuron and its input."""
    return [n for op in neurons(graph) for n in (op.name, op.inputs[0])]


def from_values(graph: Graph, values: dict[str, Tensor], T: int, *, folded: bool = False) -> Run:
    """A Run from one run's values by IR value name: probes of the cpu runtime ([T, N, *]), or with
    `folded` the values of a lynxi program ([T*N, *]). A current without time ([N, *]) is held over T."""
    spikes, currents = {}, {}
    for op in neurons(graph):
        s, c = values[op.name], values[op.inputs[0]]
        if folded:
            s = s.reshape(T, -1, *s.shape[1:])
            c = c.reshape(T, -1, *c.shape[1:]) if c.shape[0] == s.shape[0] * s.shape[1] else c
        spikes[op.name] = s
        currents[op.name] = c.unsqueeze(0).expand_as(s) if c.dim() == s.dim() - 1 else c
    return Run(spikes, currents)


def potentials(p: dynamics.NeuronParams, current: Tensor) -> Tensor:
    """H[t] (the potential that fire() compares with the threshold) of every step, [T, N, *], in float64."""
    x = current.double()
    v = torch.full_like(x[0], p.initial_v)
    i = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        xt = x[t]
        if p.has_current:
            i = dynamics.synapse(p, i, xt)
            xt = i
        h = dynamics.charge(p, v, xt)
        out.append(h)
        v = dynamics.reset(p, h, dynamics.fire(p, h))
    return torch.stack(out)


def explain(graph: Graph, ref: Run, got: Run, exact: Run, rel: float = 1e-5) -> Tie | None:
    """None when every spike of `got` equals `ref`'s; the first flip when it is a rounding tie (see the
    module's docstring); AssertionError otherwise. `graph` gives the neurons (in order) and their parameters."""
    order = neurons(graph)
    differing = sum(int((ref.spikes[op.name] != got.spikes[op.name]).sum()) for op in order)
    for k, op in enumerate(order):
        diff = ref.spikes[op.name] != got.spikes[op.name]
        if diff.any():
            break
    else:
        return None
    name, step = op.name, int(diff.flatten(1).any(1).nonzero()[0])
    where = f"{op.where()}, step {step}"
    for up in order[:k]:  # the float64 run saw the same spikes up to there
        bad = exact.spikes[up.name] != ref.spikes[up.name]
        assert not bad.any(), (f"the first spike that differs is at {where}, but the float64 run differs from the "
                               f"reference before it, at %{up.name} ({int(bad.sum())} spikes): cannot tell a tie")
    assert torch.equal(exact.spikes[name][:step], ref.spikes[name][:step]), \
        f"the float64 run differs from the reference at {where} before that step: cannot tell a tie"
    cur = {r: run.currents[name][:step + 1].double() for r, run in (("ref", ref), ("got", got), ("f64", exact))}
    tol = rel * max(1.0, float(cur["f64"].abs().max()))
    off = float((cur["ref"] - cur["got"]).abs().max())
    assert off <= tol, (f"the first spike that differs is at {where}, and the input currents of that layer "
                        f"already differ by {off:.3g} (> {tol:.3g}): not rounding")
    p = op.to_params()
    flipped = diff[step]
    margins = {}
    for r, c in cur.items():
        h = potentials(p, c)[step]
        thr = torch.as_tensor(p.v_threshold, dtype=h.dtype).expand_as(h)  # per-neuron thresholds too
        margins[r] = float((h - thr)[flipped].abs().max())
    assert max(margins.values()) <= tol, (
        f"the first spike that differs is at {where}: {int(flipped.sum())} neuron(s) flip whose potential is "
        f"up to {margins} away from the threshold {p.v_threshold} (> {tol:.3g}): not a rounding tie")
    return Tie(name, step, int(flipped.sum()), differing, margins["f64"], tol)
