"""`snnc eval`: classification accuracy against T over a data set of shards, on one process or many.

    snnc eval model.snnir --calib digits --data shards/ -T 4,8,16,32 --mode max,99.9%
    torchrun --nproc-per-node 4 -m snnc eval model.snnir --calib digits --data shards/ -T 4,8,16,32

The data set is `digits` (the bundled test split), one file, or a folder of shards: `.npz` files holding
arrays `x` and `y` (as `numpy.savez(path, x=inputs, y=labels)` writes them), or pairs `NAME.x.npy` +
`NAME.y.npy`. Shards are taken in sorted order.

Under torchrun (WORLD_SIZE > 1) each rank evaluates its part and the counts of correct predictions are
summed with torch.distributed (gloo on CPU, nccl on GPU): with at least as many shards as ranks, rank r
reads shards r, r + K, ...; with fewer, every rank reads every shard and takes its rows r, r + K, ....
The reference runtime's predictions do not depend on which samples share a batch, and every rank
converts the ANN identically (each calibrates on the whole `--calib` set), so K processes give exactly
the accuracies one process gives.

Each batch runs once, for the largest T; the prediction at a smaller T is the argmax of the output
averaged over its first T steps (the runtime is causal: `run(x, T)` is the first T steps of a longer
run, which the tests check).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.distributed as tdist

from snnc.core import progress
from snnc.core.errors import InputError
from snnc.core.userdata import as_float, check_finite, read_arrays
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.ops.temporal import after_time_mean
from snnc.passes import distributed
from snnc.runtime.interpreter import Interpreter
from snnc.runtime.session import Session

EVAL_FORMAT = "snnc-eval/1"  # the "format" of the results file `snnc eval -o` writes
X_KEYS, Y_KEYS = ("x", "inputs", "data"), ("y", "labels", "targets")


@dataclass(frozen=True)
class Shard:
    """One file of the data set: an .npz with x and y, or an x .npy with its labels `y_path`."""

    path: Path
    y_path: Path | None = None

    @property
    def name(self) -> str:
        return self.path.name


def find_shards(spec: str) -> list[Shard]:
    """The shards of `spec`: 'digits', one .npz file, or a folder of .npz files / NAME.x.npy + NAME.y.npy pairs."""
    if spec == "digits":
        return [Shard(Path("digits"))]
    p = Path(spec)
    if p.is_file():
        if p.name.endswith(".x.npy"):
            return [_npy_pair(p)]
        return [Shard(p)]
    if not p.is_dir():
        raise InputError(f"--data {spec}: no such file or folder", hint="give 'digits', an .npz file with x and y, "
                         "or a folder of .npz shards (or NAME.x.npy + NAME.y.npy pairs)")
    shards = [Shard(f) for f in sorted(p.glob("*.npz")) if f.is_file()]
    shards += [_npy_pair(f) for f in sorted(p.glob("*.x.npy")) if f.is_file()]
    stray = sorted(f.name for f in p.glob("*.npy") if not f.name.endswith((".x.npy", ".y.npy")))
    if stray:
        raise InputError(f"--data {spec}: {stray[0]} is neither NAME.x.npy nor NAME.y.npy",
                         hint="a .npy shard is a pair NAME.x.npy (inputs) + NAME.y.npy (labels); or use .npz "
                              "files with arrays x and y")
    if not shards:
        raise InputError(f"--data {spec}: the folder has no .npz or NAME.x.npy shards")
    return sorted(shards, key=lambda s: s.name)


def _npy_pair(x_path: Path) -> Shard:
    y_path = x_path.with_name(x_path.name[: -len(".x.npy")] + ".y.npy")
    if not y_path.is_file():
        raise InputError(f"shard {x_path}: its labels {y_path.name} are missing")
    return Shard(x_path, y_path)


def load_shard(shard: Shard, scale: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) of one shard, checked: x finite floats (times `scale`), y integer labels, one per input."""
    if shard.path == Path("digits"):
        from snnc.core import datasets

        d = datasets.digits()
        return as_float(d.x_test, "the digits test set", scale=scale), torch.as_tensor(d.y_test).long()
    if shard.y_path is not None:
        x_arr = read_arrays(shard.path, "evaluation")
        y_arr = read_arrays(shard.y_path, "evaluation labels")
        x_raw, y_raw, xk, yk = next(iter(x_arr.values())), next(iter(y_arr.values())), "inputs", "labels"
        where_x, where_y = f"shard {shard.path}", f"shard {shard.y_path}"
    else:
        arrays = read_arrays(shard.path, "evaluation")
        xk = next((k for k in X_KEYS if k in arrays), None)
        yk = next((k for k in Y_KEYS if k in arrays), None)
        if xk is None or yk is None:
            raise InputError(f"shard {shard.path} needs arrays 'x' and 'y' (it has "
                             f"{', '.join(repr(k) for k in arrays if k is not None) or 'one unnamed array'})",
                             hint="save them with numpy.savez(path, x=inputs, y=labels)")
        x_raw, y_raw = arrays[xk], arrays[yk]
        where_x = where_y = f"shard {shard.path}"
    x = as_float(x_raw, f"{where_x}, array '{xk}'", scale=scale)
    check_finite(x, f"{where_x}, array '{xk}'")
    y = torch.as_tensor(np.asarray(y_raw)) if isinstance(y_raw, np.ndarray) else y_raw
    if y.dtype == torch.bool or y.is_complex() or (y.is_floating_point() and not bool((y == y.round()).all())):
        raise InputError(f"{where_y}: array '{yk}' must hold integer class labels; it has dtype {y.dtype}")
    y = y.long()
    if y.dim() != 1 or x.dim() < 2 or y.shape[0] != x.shape[0]:
        raise InputError(f"{where_y}: {x.shape[0] if x.dim() else 0} inputs of shape {list(x.shape)} but labels of "
                         f"shape {list(y.shape)}", hint="one class index per input; inputs are [num_samples, ...]")
    return x, y


def my_part(shards: Sequence[Shard], rank: int, world: int) -> tuple[list[Shard], bool]:
    """This rank's shards, and whether it takes only its rows (rank::world) of each (fewer shards than ranks)."""
    if world <= 1:
        return list(shards), False
    if len(shards) >= world:
        return list(shards[rank::world]), False
    return list(shards), True


@dataclass
class EvalResult:
    """Correct predictions per mode and T over `n` samples (summed over every rank)."""

    t_values: tuple[int, ...]
    n: int = 0
    correct: dict[str, dict[int, int]] = field(default_factory=dict)
    ann_correct: int | None = None
    ranks: int = 1
    shards: int = 0

    def accuracy(self, mode: str, T: int) -> float:
        return self.correct[mode][T] / self.n if self.n else float("nan")

    def table(self) -> str:
        """Accuracy (%) per mode (rows) and T (columns), the ANN's first when there is one."""
        head = ["mode"] + [f"T={t}" for t in self.t_values]
        rows = [[m] + [f"{100 * self.accuracy(m, t):.2f}" for t in self.t_values] for m in self.correct]
        if self.ann_correct is not None:
            rows.insert(0, ["ANN"] + [f"{100 * self.ann_correct / max(1, self.n):.2f}"] * len(self.t_values))
        widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
        lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
                 for r in [head] + rows]
        lines.append(f"accuracy (%) on {self.n} samples from {self.shards} shard(s), {self.ranks} process(es)")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"format": EVAL_FORMAT, "n": self.n, "t_values": list(self.t_values), "ranks": self.ranks, "shards": self.shards,
                "ann_accuracy": None if self.ann_correct is None else self.ann_correct / max(1, self.n),
                "accuracy": {m: {str(t): self.accuracy(m, t) for t in self.t_values} for m in self.correct},
                "correct": {m: {str(t): c for t, c in per.items()} for m, per in self.correct.items()}}


def is_snn(graph: Graph) -> bool:
    return any(ops.is_neuron(op) for op in graph)


def snn_graphs(graph: Graph, calib, modes: Sequence[str | float], analog: str | None = None,
               signed: bool = False) -> dict[str, Graph]:
    """The SNNs to evaluate: `graph` itself if it is one, else its conversion with each of `modes` (and the
    hybrid mode's `analog` op kinds and `signed` neurons, as snnc.convert takes them).

    Every rank converts with the whole calibration set (no sharding), so each rank holds the graph a single
    process would convert.
    """
    if is_snn(graph):
        return {str(graph.meta.get("conversion", {}).get("mode", "snn")): graph}
    if calib is None:
        raise InputError(f"model {graph.name} is an ANN: give --calib to convert it",
                         hint="or evaluate an already converted SNN")
    import snnc

    extra = ({} if analog is None else {"analog": analog}) | ({"signed": True} if signed else {})
    return {str(m): snnc.convert(graph, calib, m, show_progress=False, distributed=False, **extra) for m in modes}


def _time_major(out: torch.Tensor, session: Session) -> torch.Tensor:
    from snnc.ir.types import Layout

    layout = session.graph.type_of(session.graph.outputs[0].name).layout
    if layout is Layout.NXT:
        return out.movedim(-1, 0)
    if layout is Layout.TN:
        raise InputError("the model's output is [T*N, ...] (layout TN): eval needs [T, N, ...] or [N, ..., T]")
    return out


def correct_at(session: Session, x: torch.Tensor, y: torch.Tensor, t_values: Sequence[int]) -> torch.Tensor:
    """Correct predictions on (x, y) at each T of `t_values` (ascending), from one run of the largest T."""
    seq = _time_major(session.run(x, t_values[-1]), session).float()
    if seq.dim() < 3:
        raise InputError("eval needs a classifier: an output [T, N, classes]")
    if after_time_mean(session.graph, session.graph.outputs[0].name):  # the model averages over T itself
        return torch.tensor([int((seq[t - 1].argmax(-1) == y).sum()) for t in t_values], dtype=torch.int64)
    return torch.tensor([int((seq[:t].mean(0).argmax(-1) == y).sum()) for t in t_values], dtype=torch.int64)


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of ranks (0, 1 without torchrun); starts the process group if needed."""
    if distributed.init_from_env():
        return tdist.get_rank(), tdist.get_world_size()
    return 0, 1


def _batches(x: torch.Tensor, y: torch.Tensor, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for i in range(0, x.shape[0], size):
        yield x[i:i + size], y[i:i + size]


def evaluate(graph: Graph, data: str, t_values: Sequence[int], *, calib=None, modes: Sequence[str | float] = ("max",),
             batch_size: int = 256, scale: float | None = None, show_progress: bool | None = None,
             ann_accuracy: bool = True, analog: str | None = None, signed: bool = False) -> EvalResult:
    """Accuracy of `graph` (an SNN, or an ANN converted with each of `modes` on `calib`) at each T.

    Under torchrun (WORLD_SIZE > 1) the process group is started here and the counts are summed over
    ranks; every rank returns the same EvalResult.
    """
    ts = tuple(sorted(set(int(t) for t in t_values)))
    if not ts or ts[0] <= 0:
        raise InputError(f"the evaluation needs positive time steps, got {list(t_values)}")
    if batch_size <= 0:
        raise InputError(f"--batch-size must be positive, got {batch_size}")
    shards = find_shards(data)  # checked on every rank before any collective, so a bad path fails everywhere
    rank, world = rank_and_world()
    running = world > 1
    snns = snn_graphs(graph, calib, modes, analog, signed)
    ann = None if is_snn(graph) or not ann_accuracy else Interpreter(graph)
    mine, by_rows = my_part(shards, rank, world)
    sessions = {m: Session(g, progress=False) for m, g in snns.items()}
    correct = torch.zeros(len(snns), len(ts), dtype=torch.int64)
    counts = torch.zeros(2, dtype=torch.int64)  # samples, ANN correct
    show = (progress.enabled() if show_progress is None else show_progress) and rank == 0
    for shard in progress.track(mine, f"evaluating {len(shards)} shard(s)" + (f" on {world} ranks" if running else ""),
                                total=len(mine), show=show and len(mine) > 1):
        x, y = load_shard(shard, scale)
        if by_rows:
            x, y = x[rank::world], y[rank::world]
        for xb, yb in _batches(x, y, batch_size):
            counts[0] += yb.shape[0]
            if ann is not None:
                counts[1] += _ann_correct(ann, xb, yb)
            for i, s in enumerate(sessions.values()):
                correct[i] += correct_at(s, xb, yb, ts)
    if running:
        correct, counts = distributed.all_reduce_sums(correct, counts)
    n = int(counts[0])
    if n == 0:
        raise InputError(f"--data {data}: no samples")
    return EvalResult(t_values=ts, n=n, ranks=world, shards=len(shards),
                      ann_correct=int(counts[1]) if ann is not None else None,
                      correct={m: {t: int(correct[i, j]) for j, t in enumerate(ts)} for i, m in enumerate(snns)})


def _ann_correct(ann: Interpreter, x: torch.Tensor, y: torch.Tensor) -> int:
    graph = ann.graph
    out = ann.run({graph.inputs[0].name: x})[graph.outputs[0].name]
    return int((out.argmax(-1) == y).sum())


def is_eval_json(path: Path) -> bool:
    """Whether `path` is a results file an earlier `snnc eval -o` wrote (so -o may replace it)."""
    import json

    try:
        with open(path, "rb") as f:
            head = f.read(1 << 20)
        return json.loads(head).get("format") == EVAL_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def is_main_rank() -> bool:
    """Rank 0 of a torchrun job, or a single process: the one that prints and writes files."""
    return int(os.environ.get("RANK", "0")) == 0
