"""Calibration: per-activation statistics over data, in bounded memory, mergeable across shards.

`ChannelSketch` keeps one log-bucket histogram per channel (the DDSketch idea):
a positive value x falls in bucket i = ceil(log(x) / log(gamma)) with
gamma = (1 + a) / (1 - a). Any quantile is then returned with relative error at
most a (default 0.5%), whatever the number of samples; zeros and negatives are
counted exactly apart; the maximum is exact. Memory is fixed (~4.3k counters per
channel at a = 0.5%), and two sketches merge by adding counters, so shards can
be calibrated separately (see passes/distributed.py) and the merged sketch is
the one a single pass over all the data builds. `QuantileSketch` is the
one-channel case with float results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import torch
from torch import Tensor

from snnc.core.errors import InputError, PassError
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.core.progress import track
from snnc.core.userdata import as_float, from_numpy
from snnc.runtime.interpreter import Interpreter

def converts_to_if(op: ops.OpBase) -> bool:
    """True for the activations conversion makes IF neurons of: ReLU, and Clamp(0, a) with a > 0 or no a
    (ReLU6, hardtanh(0, a), clamp(0, a), ONNX Clip(0, a))."""
    return isinstance(op, ops.ReLU) or (isinstance(op, ops.Clamp) and op.min == 0.0
                                        and (op.max is None or op.max > 0.0))


def refuse_unconvertible(graph: Graph) -> None:
    """A PassError naming the first Clamp that has no rate code (a lower bound other than 0, or max <= 0)."""
    for op in graph:
        if isinstance(op, ops.Clamp) and not converts_to_if(op):
            why = (f"its lower bound {op.min} is not 0" if op.min != 0.0
                   else f"its upper bound {op.max} leaves nothing above the lower bound 0")
            raise PassError(f"{op.where()} cannot be converted to spiking neurons: {why}, and an IF neuron's rate "
                            "lies between 0 and its maximum",
                            hint="only clamp(0, a) with a > 0 converts (ReLU6, hardtanh(0, a), clamp(0, a), "
                                 "Clip(0, a)); retrain with one of those or ReLU")


MIN_POSITIVE = 1e-9  # positive values below this are counted with the zeros
_MAX_POS = 1e9


class ChannelSketch:
    """Mergeable quantile sketches of C channels with relative value error <= `accuracy`.

    `add` takes [B, C, *] (channels on dim 1); results are float64 tensors [C].
    """

    def __init__(self, channels: int, accuracy: float = 0.005):
        if not 0 < accuracy < 1:
            raise ValueError(f"accuracy must be in (0, 1), got {accuracy}")
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.accuracy = accuracy
        self.channels = channels
        self.gamma = (1 + accuracy) / (1 - accuracy)
        self._log_gamma = math.log(self.gamma)
        self._offset = math.floor(math.log(MIN_POSITIVE) / self._log_gamma)
        nb = math.ceil(math.log(_MAX_POS) / self._log_gamma) - self._offset + 1
        # the mergeable state: summed (counts, zeros, n) or maxed (max) across shards
        self._counts = torch.zeros(channels, nb, dtype=torch.int64)
        self._zeros = torch.zeros(channels, dtype=torch.int64)  # values <= MIN_POSITIVE
        self._n = torch.zeros(channels, dtype=torch.int64)
        self._max = torch.full((channels,), -math.inf, dtype=torch.float64)

    counts = property(lambda self: self._counts, doc="[C, buckets] counters of positive values")
    zeros = property(lambda self: self._zeros, doc="[C] values <= 1e-9 (zeros and negatives)")
    n = property(lambda self: self._n, doc="[C] values seen")
    max = property(lambda self: self._max, doc="[C] exact maxima")

    @property
    def buckets(self) -> int:
        return self._counts.shape[1]

    def add(self, x: Tensor) -> None:
        x = x.detach().float()
        if x.dim() < 2 or x.shape[1] != self.channels:
            raise InputError(f"sketch of {self.channels} channels got a value of shape {list(x.shape)}")
        x = x.transpose(0, 1).reshape(self.channels, -1)
        if x.shape[1] == 0:
            return
        self._n += x.shape[1]
        self._max = torch.maximum(self._max, x.amax(1).double())
        pos = x > MIN_POSITIVE
        self._zeros += (~pos).sum(1)
        if bool(pos.any()):
            vals = x[pos].clamp(max=_MAX_POS).double()
            idx = (torch.ceil(torch.log(vals) / self._log_gamma).long() - self._offset).clamp(0, self.buckets - 1)
            rows = torch.arange(self.channels).unsqueeze(1).expand_as(x)[pos]
            flat = torch.bincount(rows * self.buckets + idx, minlength=self.channels * self.buckets)
            self._counts += flat.view(self.channels, self.buckets)

    def merge(self, other: "ChannelSketch") -> "ChannelSketch":
        if other.accuracy != self.accuracy or other.channels != self.channels:
            raise ValueError("cannot merge sketches of different accuracy or channel count")
        self._counts += other._counts
        self._zeros += other._zeros
        self._n += other._n
        self._max = torch.maximum(self._max, other._max)
        return self

    def bucket_values(self) -> Tensor:
        """The value each bucket stands for: the midpoint of [gamma^(i-1), gamma^i] in relative terms."""
        i = torch.arange(self.buckets, dtype=torch.float64) + self._offset
        return 2 * self.gamma ** i / (self.gamma + 1)

    def channel_quantile(self, q: float) -> Tensor:
        """Per channel, the value of 0-based rank floor(q (n - 1)) in sorted order (torch.quantile's
        interpolation='lower'), within relative error `accuracy`; q >= 1 gives the exact max."""
        if bool((self._n == 0).any()):
            raise ValueError("quantile of an empty sketch")
        if q >= 1.0:
            return self._max.clone()
        rank = torch.floor(q * (self._n - 1).double()).long()
        cum = torch.cumsum(self._counts, 1)
        i = torch.searchsorted(cum, (rank - self._zeros).unsqueeze(1), right=True).squeeze(1)
        value = torch.minimum(self.bucket_values()[i.clamp(max=self.buckets - 1)], self._max)
        return torch.where(rank < self._zeros, torch.zeros_like(value), value)

    quantile = channel_quantile

    def state_dict(self) -> dict:
        return {"accuracy": self.accuracy, "counts": self._counts.clone(), "zeros": self._zeros.clone(),
                "n": self._n.clone(), "max": self._max.clone()}

    @classmethod
    def _from_state(cls, q: "ChannelSketch", s: dict) -> "ChannelSketch":
        q._counts = torch.as_tensor(s["counts"], dtype=torch.int64).reshape(q._counts.shape).clone()
        q._zeros = torch.as_tensor(s["zeros"], dtype=torch.int64).reshape(-1).clone()
        q._n = torch.as_tensor(s["n"], dtype=torch.int64).reshape(-1).clone()
        q._max = torch.as_tensor(s["max"], dtype=torch.float64).reshape(-1).clone()
        return q

    @classmethod
    def from_state_dict(cls, s: dict) -> "ChannelSketch":
        counts = torch.as_tensor(s["counts"])
        return cls._from_state(ChannelSketch(counts.reshape(-1, counts.shape[-1]).shape[0], s["accuracy"]), s)


class QuantileSketch(ChannelSketch):
    """One sketch over all values (any shape); `quantile`, `max`, `n` and `zeros` are plain numbers."""

    def __init__(self, accuracy: float = 0.005):
        super().__init__(1, accuracy)

    counts = property(lambda self: self._counts[0])
    zeros = property(lambda self: int(self._zeros[0]))
    n = property(lambda self: int(self._n[0]))
    max = property(lambda self: float(self._max[0]))

    def add(self, x: Tensor) -> None:
        super().add(x.reshape(1, 1, -1))

    def quantile(self, q: float) -> float:
        return float(self.channel_quantile(q)[0])

    @classmethod
    def from_state_dict(cls, s: dict) -> "QuantileSketch":
        return cls._from_state(QuantileSketch(s["accuracy"]), s)


@dataclass
class ActivationStats:
    """Sketches of the activations after each ReLU node, by node name: one over all values
    (`sketches`) and, when asked for, one per channel (`channel_sketches`)."""

    sketches: dict[str, QuantileSketch] = field(default_factory=dict)
    samples: int = 0
    channel_sketches: dict[str, ChannelSketch] = field(default_factory=dict)

    def merge(self, other: "ActivationStats") -> "ActivationStats":
        for mine, theirs, cls in ((self.sketches, other.sketches, QuantileSketch),
                                  (self.channel_sketches, other.channel_sketches, ChannelSketch)):
            for k, s in theirs.items():
                if k in mine:
                    mine[k].merge(s)
                else:
                    mine[k] = cls.from_state_dict(s.state_dict())
        self.samples += other.samples
        return self

    def all_sketches(self) -> list[ChannelSketch]:
        """Every sketch in a fixed order (sorted by name): the order distributed merging reduces in."""
        return [self.sketches[k] for k in sorted(self.sketches)] + \
               [self.channel_sketches[k] for k in sorted(self.channel_sketches)]


def batches(data, batch_size: int) -> Iterable[Tensor]:
    """Yield [B, *] float tensors from a tensor/array, or from an iterable of tensors or (x, y) pairs."""
    if isinstance(data, np.ndarray):
        data = from_numpy(data, "calibration data")
    if isinstance(data, Tensor):
        for i in range(0, data.shape[0], batch_size):
            yield data[i:i + batch_size]
        return
    for b, item in enumerate(data):
        x = item[0] if isinstance(item, (tuple, list)) else item
        try:
            yield torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError) as e:  # ragged lists, strings, objects
            raise InputError(f"calibration data, batch {b}: a {type(x).__name__} that cannot be converted to a "
                             f"tensor: {e}", hint="give arrays/tensors [batch, *sample_shape]") from None


def check_batch(x, b: int, first: int, name: str, feats: tuple[int, ...]) -> Tensor:
    """One calibration batch as a float tensor [B, *feats]; an InputError naming the batch and sample if not."""
    where = f"calibration data for input %{name}, batch {b}"
    x = as_float(x, where)  # snnc.core.userdata's dtype policy: integers other than 0/1 need a scale
    if tuple(x.shape[1:]) != feats or x.dim() != len(feats) + 1:
        raise InputError(f"{where} has shape {list(x.shape)}; the model takes [batch, {', '.join(map(str, feats))}]",
                         hint="calibration data is [num_samples, *sample_shape] (or batches of that shape), "
                              "without a time dim")
    bad = ~torch.isfinite(x.reshape(x.shape[0], -1)).all(1)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        row = x[i]
        what = "NaN" if bool(torch.isnan(row).any()) else "Inf"
        raise InputError(f"{where}: sample {first + i} (row {i} of the batch) contains {what} "
                         f"({int((~torch.isfinite(row)).sum())} of {row.numel()} values)",
                         hint="clean or drop the non-finite samples before calibrating")
    return x


def calibrate(graph: Graph, data, *, batch_size: int = 256, accuracy: float = 0.005,
              nodes: Iterable[str] | None = None, channelwise: bool = False,
              show_progress: bool | None = None, require_data: bool = True) -> ActivationStats:
    """Run the (ANN) graph on `data` and sketch the output of every ReLU and Clamp(0, a) (or of `nodes`).

    With channelwise=True each watched value also gets a per-channel sketch (channels =
    feature dim 0), which channel-wise normalization needs. require_data=False allows
    an empty shard (one rank of a distributed calibration).
    """
    if len(graph.inputs) != 1:
        raise InputError(f"calibration supports graphs with one input; {graph.name} has {len(graph.inputs)}")
    watch = set(nodes) if nodes is not None else {op.name for op in graph if converts_to_if(op)}
    stats = ActivationStats({n: QuantileSketch(accuracy) for n in watch})
    if channelwise:
        for n in watch:
            feats = graph.type_of(n).features
            stats.channel_sketches[n] = ChannelSketch(feats[0] if feats else 1, accuracy)
    interp = Interpreter(graph)
    name = graph.inputs[0].name

    def observe(op, value):
        if op.name in watch:
            stats.sketches[op.name].add(value)
            if channelwise:
                stats.channel_sketches[op.name].add(value if value.dim() >= 2 else value.unsqueeze(1))

    total = None
    if isinstance(data, (Tensor, np.ndarray)):
        total = math.ceil(data.shape[0] / batch_size) if data.shape[0] else 0
    feats = tuple(graph.inputs[0].type.features)
    with torch.no_grad():
        for b, x in enumerate(track(batches(data, batch_size), "calibrating", total=total, show=show_progress)):
            x = check_batch(x, b, stats.samples, name, feats)
            if x.numel() == 0:
                continue
            interp.run({name: x}, observe=observe)
            stats.samples += x.shape[0]
    if stats.samples == 0 and require_data:
        raise InputError("the calibration set is empty", hint="pass at least one sample (e.g. a few hundred)")
    return stats
