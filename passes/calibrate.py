"""Calibration: per-activation statistics over data, in bounded memory, mergeable across shards.

`QuantileSketch` is a log-bucket histogram (the DDSketch idea): a positive value
x falls in bucket i = ceil(log(x) / log(gamma)) with gamma = (1 + a) / (1 - a).
Any quantile is then returned with relative error at most a (default 0.5%),
whatever the number of samples; zeros and negatives are counted exactly apart;
the maximum is exact. Memory is fixed (~4.3k counters per activation), and two
sketches merge by adding counters, so shards can be calibrated separately.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import torch
from torch import Tensor

from snnc.errors import InputError
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.progress import track

_MIN_POS = 1e-9  # positive values below this are counted with the zeros
_MAX_POS = 1e9


class QuantileSketch:
    """Mergeable quantile sketch with relative value error <= `accuracy` (see module doc)."""

    def __init__(self, accuracy: float = 0.005):
        if not 0 < accuracy < 1:
            raise ValueError(f"accuracy must be in (0, 1), got {accuracy}")
        self.accuracy = accuracy
        self.gamma = (1 + accuracy) / (1 - accuracy)
        self._log_gamma = math.log(self.gamma)
        self._offset = math.floor(math.log(_MIN_POS) / self._log_gamma)
        n = math.ceil(math.log(_MAX_POS) / self._log_gamma) - self._offset + 1
        self.counts = torch.zeros(n, dtype=torch.int64)
        self.zeros = 0  # values <= _MIN_POS (ReLU outputs are >= 0)
        self.n = 0
        self.max = -math.inf

    def add(self, x: Tensor) -> None:
        x = x.detach().reshape(-1).float()
        if x.numel() == 0:
            return
        self.n += x.numel()
        self.max = max(self.max, float(x.max()))
        pos = x[x > _MIN_POS].clamp(max=_MAX_POS)
        self.zeros += x.numel() - pos.numel()
        if pos.numel():
            idx = torch.ceil(torch.log(pos.double()) / self._log_gamma).long() - self._offset
            self.counts += torch.bincount(idx.clamp(0, len(self.counts) - 1), minlength=len(self.counts))

    def merge(self, other: "QuantileSketch") -> "QuantileSketch":
        if other.accuracy != self.accuracy:
            raise ValueError("cannot merge sketches of different accuracy")
        self.counts += other.counts
        self.zeros += other.zeros
        self.n += other.n
        self.max = max(self.max, other.max)
        return self

    def quantile(self, q: float) -> float:
        """The q-quantile (0 <= q <= 1): the value of 0-based rank floor(q (n - 1)) in sorted order
        (torch.quantile's interpolation='lower'), within relative error `accuracy`."""
        if self.n == 0:
            raise ValueError("quantile of an empty sketch")
        if q >= 1.0:
            return self.max
        rank = math.floor(q * (self.n - 1))
        if rank < self.zeros:
            return 0.0
        cum = torch.cumsum(self.counts, 0)
        i = int(torch.searchsorted(cum, torch.tensor([rank - self.zeros]), right=True))
        i = min(i, len(self.counts) - 1)
        value = 2 * self.gamma ** (i + self._offset) / (self.gamma + 1)  # midpoint of the bucket in relative terms
        return min(value, self.max)

    def state_dict(self) -> dict:
        return {"accuracy": self.accuracy, "counts": self.counts.clone(), "zeros": self.zeros, "n": self.n,
                "max": self.max}

    @classmethod
    def from_state_dict(cls, s: dict) -> "QuantileSketch":
        q = cls(s["accuracy"])
        q.counts, q.zeros, q.n, q.max = s["counts"].clone(), int(s["zeros"]), int(s["n"]), float(s["max"])
        return q


@dataclass
class ActivationStats:
    """Sketches of the activations after each ReLU node, by node name."""

    sketches: dict[str, QuantileSketch] = field(default_factory=dict)
    samples: int = 0

    def merge(self, other: "ActivationStats") -> "ActivationStats":
        for k, s in other.sketches.items():
            if k in self.sketches:
                self.sketches[k].merge(s)
            else:
                self.sketches[k] = QuantileSketch.from_state_dict(s.state_dict())
        self.samples += other.samples
        return self


def batches(data, batch_size: int) -> Iterable[Tensor]:
    """Yield [B, *] float tensors from a tensor/array, or from an iterable of tensors or (x, y) pairs."""
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(data)
    if isinstance(data, Tensor):
        for i in range(0, data.shape[0], batch_size):
            yield data[i:i + batch_size]
        return
    for item in data:
        x = item[0] if isinstance(item, (tuple, list)) else item
        yield torch.as_tensor(x)


def calibrate(graph: Graph, data, *, batch_size: int = 256, accuracy: float = 0.005,
              nodes: Iterable[str] | None = None, show_progress: bool | None = None) -> ActivationStats:
    """Run the (ANN) graph on `data` and sketch the output of every ReLU (or of `nodes`)."""
    from snnc.runtime.interpreter import Interpreter

    if len(graph.inputs) != 1:
        raise InputError(f"calibration supports graphs with one input; {graph.name} has {len(graph.inputs)}")
    watch = set(nodes) if nodes is not None else {op.name for op in graph if isinstance(op, ops.ReLU)}
    stats = ActivationStats({n: QuantileSketch(accuracy) for n in watch})
    interp = Interpreter(graph)
    name = graph.inputs[0].name

    def observe(op, value):
        if op.name in watch:
            stats.sketches[op.name].add(value)

    total = None
    if isinstance(data, (Tensor, np.ndarray)):
        total = math.ceil(data.shape[0] / batch_size) if data.shape[0] else 0
    with torch.no_grad():
        for x in track(batches(data, batch_size), "calibrating", total=total, show=show_progress):
            if x.numel() == 0:
                continue
            interp.run({name: x}, observe=observe)
            stats.samples += x.shape[0]
    if stats.samples == 0:
        raise InputError("the calibration set is empty", hint="pass at least one sample (e.g. a few hundred)")
    return stats
