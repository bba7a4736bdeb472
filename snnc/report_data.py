"""The data of `snnc report`: scores with their Wilson intervals, the raster and trace of one sample, ReportData.

snnc.report collects it and writes the page; snnc.report_plots draws it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from snnc.ir.graph import Graph

Z95 = 1.959963984540054  # the standard normal quantile for a two-sided 95% interval


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion successes/n, as fractions in [0, 1].

    centre = (p + z²/2n) / (1 + z²/n),  half-width = z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n).
    Unlike p ± z·sqrt(p(1-p)/n) it stays inside [0, 1] and is not empty at p = 0 or 1.
    """
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"a proportion needs 0 <= successes <= n and n > 0, got {successes} of {n}")
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # at p = 0 (p = 1) the bound is exactly 0 (1); rounding would leave 1e-17 off
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


@dataclass(frozen=True)
class Score:
    """`correct` right answers out of `n` samples."""

    correct: int
    n: int

    @property
    def percent(self) -> float:
        return 100.0 * self.correct / self.n

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% Wilson score interval, in percent."""
        lo, hi = wilson_interval(self.correct, self.n)
        return 100.0 * lo, 100.0 * hi

    def to_json(self) -> dict[str, Any]:
        return {"correct": self.correct, "n": self.n, "percent": self.percent, "interval95": list(self.interval)}


@dataclass
class Raster:
    """Spikes of a subset of one layer's neurons for one sample; `neurons` are flat indices, ascending."""

    layer: str
    sample: int
    total: int  # neurons in the layer
    neurons: list[int]
    spikes: list[list[int]]  # [T][len(neurons)]
    active: int  # neurons of the layer that spike at least once in this sample
    rule: str  # how `neurons` were chosen, in words

    @property
    def caption(self) -> str:
        k, m = len(self.neurons), self.total
        return (f"spike raster of {self.layer}, sample {self.sample}: {k} of {m} neurons shown ({self.rule}); "
                f"{self.active} of {m} neurons spike at least once")


@dataclass
class Trace:
    """Membrane potential of a few neurons (flat indices) of one layer for one sample."""

    layer: str
    neurons: list[int]
    v: list[list[float]]  # [T][len(neurons)]
    threshold: float
    spike_counts: list[int]  # per neuron, over the T steps


@dataclass
class ReportData:
    title: str
    ann: Score | None
    accuracy: dict[str, dict[int, Score]]  # mode -> T -> score on the evaluation set
    meta: dict[str, Any] = field(default_factory=dict)  # what was measured, and with what (see `collect`)
    rates: dict[str, float] = field(default_factory=dict)  # neuron layer -> mean firing rate
    layer_sizes: dict[str, int] = field(default_factory=dict)  # neuron layer -> neurons per sample
    raster: Raster | None = None
    trace: Trace | None = None
    scatter: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)  # layer -> (ann/λ, rate)
    T: int = 32  # time steps of the detail plots
    detail_samples: int = 0  # samples behind rates, raster and scatter
    snn_graph: Graph | None = None  # the converted graph the details and the drawing show

    @property
    def ann_accuracy(self) -> float | None:
        return None if self.ann is None else self.ann.percent

    def to_json(self) -> str:
        return json.dumps({
            "title": self.title, "meta": self.meta, "ann_accuracy": self.ann_accuracy,
            "ann": None if self.ann is None else self.ann.to_json(),
            "accuracy": {m: {str(t): s.percent for t, s in v.items()} for m, v in self.accuracy.items()},
            "scores": {m: {str(t): s.to_json() for t, s in v.items()} for m, v in self.accuracy.items()},
            "rates": self.rates, "layer_sizes": self.layer_sizes, "T": self.T, "detail_samples": self.detail_samples,
            "raster": None if self.raster is None else {
                "layer": self.raster.layer, "sample": self.raster.sample, "total": self.raster.total,
                "neurons": self.raster.neurons, "active": self.raster.active, "rule": self.raster.rule,
                "caption": self.raster.caption},
            "trace": None if self.trace is None else {"layer": self.trace.layer, "neurons": self.trace.neurons},
        }, indent=1)
