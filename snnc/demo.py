"""The digits demo: train a small CNN, convert it with `max` and `99.9%`, print accuracy vs T."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from snnc.core import datasets
from snnc.core.fileio import cache_dir
from snnc.core.progress import track

T_VALUES = (2, 4, 8, 16, 32, 64)
MODES = ("max", "99.9%")
_RECIPE = "digits-cnn-v1:epochs=30,lr=3e-3,bs=64,seed=0"


class DigitsCNN(nn.Module):
    """conv-bn-relu-pool x2 -> linear, for 1x8x8 digits."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AvgPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AvgPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 2 * 2, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def train_digits_cnn(data: datasets.Split, *, epochs: int = 30, seed: int = 0,
                     progress: bool | None = None) -> DigitsCNN:
    """Train DigitsCNN deterministically (2-60 s on 2 cores, by CPU), with a progress bar on a terminal."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    n = data.x_train.shape[0]
    for _ in track(range(epochs), f"training the digits CNN ({epochs} epochs)", total=epochs, show=progress):
        model.train()
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, 64):
            idx = perm[i:i + 64]
            loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    return model.eval()


def pretrained_digits_cnn(data: datasets.Split | None = None, *, verbose: bool = False) -> DigitsCNN:
    """The demo model, trained once and cached (state dict loaded with weights_only=True)."""
    return _load_or_train(data or datasets.digits(), verbose)[0]


def _load_or_train(data: datasets.Split, verbose: bool) -> tuple[DigitsCNN, float | None]:
    """The demo model and the seconds its training took (None: loaded from the cache)."""
    key = hashlib.sha256(f"{_RECIPE}:torch={torch.__version__.split('+')[0]}".encode()).hexdigest()[:16]
    path = cache_dir() / f"digits_cnn-{key}.pt"
    model = DigitsCNN()
    if path.is_file():
        try:
            model.load_state_dict(torch.load(path, weights_only=True))
            return model.eval(), None
        except Exception:  # noqa: BLE001 - a corrupt cache entry is retrained
            pass
    if verbose:
        print(f"training the digits CNN once: 30 epochs, from 2 s to a minute on 2 cores by CPU (cached at {path})",
              flush=True)
    start = time.perf_counter()
    model = train_digits_cnn(data, progress=None if verbose else False)
    seconds = time.perf_counter() - start
    if verbose:
        print(f"trained in {seconds:.1f} s", flush=True)
    from snnc.core.fileio import atomic_path

    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)
    return model, seconds


def accuracy(pred: torch.Tensor, labels: torch.Tensor) -> float:
    return float((pred == labels).float().mean()) * 100.0


def run_demo(out_dir: str | os.PathLike | None = None, *, calib_samples: int = 512, loihi: bool = True,
             force: bool = False) -> dict:
    """Train (or load), convert in each mode, evaluate at each T; print and return the table.

    Returns {"ann", "snn": {mode: {T: accuracy}}, "loihi", "train_s"} (train_s None: the model was cached).

    `out_dir` may be missing, empty or an earlier demo's folder (else OutputPathError, unless `force`).
    """
    import snnc
    from snnc.core.fileio import check_destination
    from snnc.runtime import Session

    if out_dir is not None:  # before any work
        check_destination(out_dir, directory=True, replaces=is_demo_folder, force=force, what="demo folder")
    start = time.perf_counter()
    data = datasets.digits()
    model, train_s = _load_or_train(data, verbose=True)
    with torch.no_grad():
        ann_acc = accuracy(model(data.x_test).argmax(-1), data.y_test)
    calib = data.x_train[:calib_samples]
    results: dict[str, dict[int, float]] = {}
    graphs = {mode: snnc.convert(model, calib, mode) for mode in MODES}  # calibration shows its own bar
    sessions = {mode: Session(graph) for mode, graph in graphs.items()}
    sweep = [(mode, T) for mode in MODES for T in T_VALUES]
    for mode, T in track(sweep, f"accuracy of the SNN at T = {T_VALUES[0]} ... {T_VALUES[-1]}", total=len(sweep)):
        results.setdefault(mode, {})[T] = accuracy(sessions[mode].predict(data.x_test, T), data.y_test)
    _print_table(ann_acc, results, data.x_test.shape[0])
    lava = demo_rows(model, data, T=32, calib_samples=calib_samples, show=True) if loihi else None
    if out_dir is not None:
        _write_outputs(Path(out_dir), model, graphs, data, force)
    print(f"done in {time.perf_counter() - start:.1f} s")
    return {"ann": ann_acc, "snn": results, "loihi": lava, "train_s": train_s}


def demo_rows(model, data: datasets.Split, *, T: int = 32, calib_samples: int = 512, show: bool = False) -> dict:
    """Digits-demo accuracies (%) on Loihi: float SNN with soft reset vs reset-to-0 vs the Loihi emulation.

    Returns {"T", "latency_steps", "rows": {name: accuracy}, "reset_to_0_cost", "quantization_cost"}.
    """
    import snnc
    from snnc.backends.lava import emulate
    from snnc.backends.lava.convert import convert as lava_convert, reset_to_zero
    from snnc.runtime.session import Session

    calib = data.x_train[:calib_samples]
    x, y = data.x_test, data.y_test
    soft = snnc.convert(model, calib, "99.9%")
    hard = reset_to_zero(soft)
    lava_snn = lava_convert(model, calib, "99.9%", T=T)
    loihi = emulate(lava_snn)
    rows = {
        "SNN, reset by subtraction (float)": accuracy(Session(soft).predict(x, T), y),
        "SNN, reset to 0, same thresholds (float)": accuracy(Session(hard).predict(x, T), y),
        "SNN, reset to 0, calibrated (float)": accuracy(Session(lava_snn).predict(x, T), y),
        f"Loihi emulation (fixed point, {loihi.latency}-step latency)": accuracy(loihi.predict(x, T), y),
    }
    vals = list(rows.values())
    result = {"T": T, "latency_steps": loihi.latency, "rows": rows, "reset_to_0_cost": vals[0] - vals[2],
              "quantization_cost": vals[2] - vals[3]}
    if show:
        print(f"digits on Loihi (T={T}, {x.shape[0]} test images):")
        for k, v in rows.items():
            print(f"  {k:52s} {v:6.2f} %")
        print(f"  cost of reset-to-0 after calibration: {result['reset_to_0_cost']:+.2f} points; "
              f"of fixed point + spiking readout: {result['quantization_cost']:+.2f} points")
    return result


def _print_table(ann_acc: float, results: dict[str, dict[int, float]], n_test: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"digits: ANN vs converted SNN accuracy (%) on {n_test} test images")
    table.add_column("mode")
    table.add_column("ANN", justify="right")
    for T in T_VALUES:
        table.add_column(f"T={T}", justify="right")
    for mode, accs in results.items():
        table.add_row(mode, f"{ann_acc:.2f}", *(f"{accs[T]:.2f}" for T in T_VALUES))
    Console(width=100).print(table)


DEMO_FILES = ("digits_ann.snnir", "digits_snn.snnir", "digits_cpu", "calib.npy", "test_inputs.npz",
              "test_labels.npy")


def is_demo_folder(path: Path) -> bool:
    """Whether `path` is a folder an earlier demo wrote (only its files, read by content where they have one)."""
    from snnc.ir.formats.artifact import is_artifact_folder
    from snnc.ir.serialize import is_snnir_file

    try:
        names = set(os.listdir(path))
    except OSError:
        return False
    return (names <= set(DEMO_FILES) and all(is_snnir_file(path / n) for n in names if n.endswith(".snnir"))
            and ("digits_cpu" not in names or is_artifact_folder(path / "digits_cpu")))


def _write_outputs(out: Path, model: nn.Module, graphs: dict, data: datasets.Split, force: bool = False) -> None:
    """Write the demo's models and data as one folder, atomically."""
    import snnc
    from snnc.core.fileio import atomic_path
    from snnc.ir import save

    with atomic_path(out, directory=True, replaces=is_demo_folder, force=force, what="demo folder") as tmp:
        save(snnc.trace(model, (1, 8, 8), name="digits_cnn"), tmp / "digits_ann.snnir")
        save(graphs["99.9%"], tmp / "digits_snn.snnir")
        snnc.compile(graphs["99.9%"], target="cpu", output=tmp / "digits_cpu")
        np.save(tmp / "calib.npy", data.x_train[:512].numpy())
        np.savez(tmp / "test_inputs.npz", x=data.x_test.numpy())
        np.save(tmp / "test_labels.npy", data.y_test.numpy())
    print(f"wrote {out}/: digits_ann.snnir, digits_snn.snnir, digits_cpu/, calib.npy, test_inputs.npz, "
          "test_labels.npy")
