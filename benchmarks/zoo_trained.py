"""Trained weights for the zoo architectures (issue 19): each one trained briefly on the digits data set.

conversion_zoo.py and zoo_sensitivity.py measure the random-weight networks of tests/zoo/ann.py by
default; with `--weights trained` they take them from here instead. Nothing trained can be downloaded,
so each architecture (num_classes=10, 3x32x32) is trained for a small fixed number of Adam steps on the
scikit-learn digits data that snnc's demo uses (`snnc.core.datasets.digits()`, its fixed stratified split):
each 8x8 grey image upsampled bilinearly to 32x32, repeated to 3 channels and normalized with the
training set's mean and standard deviation. Seeds are fixed; after training, each BatchNorm's statistics
are recalibrated as the average over the training images (`tests.zoo.ann.calibrate_bn`).

The state dicts are cached under snnc's cache folder (`~/.cache/snnc/zoo_trained/`, or
`$SNNC_CACHE_DIR/zoo_trained/`), never in the repository, keyed by the architecture and every training
setting (`Recipe.key()`), so a rerun skips training. Nothing here runs in the tests: they check the key,
the recipe table and the cache round trip with a stand-in trainer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from snnc.core import datasets
from snnc.core.fileio import atomic_path, cache_dir
from tests.zoo.ann import ARCHITECTURES, NUM_CLASSES, calibrate_bn

RECIPE_VERSION = 1  # bump when the training code changes what a recipe trains
DEFAULT_STEPS = 200
DEFAULT_BATCH = 64
# Fewer steps where one step costs much more on a CPU thread, so that each trains in about 1-2 minutes on one
# thread (the VGGs: torchvision's 25088x4096 classifier, 129M parameters, 2-4 s per Adam step).
STEPS = {"vgg11_bn": 40, "vgg16_bn": 30, "densenet121": 120, "googlenet": 150, "vit_b_16": 60, "convnext_tiny": 80,
         "regnet_y_400mf": 150, "efficientnet_b0": 150, "squeezenet1_1": 400}
DEFAULT_LR = 1e-3
# A smaller learning rate where 1e-3 left the network at chance (about 19% test accuracy after its steps):
# SqueezeNet (no BatchNorm; its ReLUs die) and the VGGs (the large classifier with dropout).
LR = {"squeezenet1_1": 1e-4, "vgg11_bn": 1e-4, "vgg16_bn": 1e-4}


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the trained weights of one architecture."""

    arch: str
    steps: int = DEFAULT_STEPS
    batch: int = DEFAULT_BATCH
    lr: float = 1e-3
    seed: int = 0
    width: float = 1.0
    blocks: int | None = None

    def key(self) -> str:
        """The cache key: the architecture, every setting, the recipe version and torch's version."""
        fields = ",".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self))
        text = f"zoo-trained-v{RECIPE_VERSION}:{fields}:torch={torch.__version__.split('+')[0]}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def path(self, root: Path | None = None) -> Path:
        return (root or cache_dir() / "zoo_trained") / f"{self.arch}-{self.key()}.pt"

    def describe(self) -> str:
        return f"{self.steps} Adam steps (lr {self.lr:g}, batch {self.batch}, seed {self.seed})"


def recipe(arch: str, steps: int | None = None, batch: int = DEFAULT_BATCH, lr: float | None = None, seed: int = 0,
           width: float = 1.0, blocks: int | None = None) -> Recipe:
    """The recipe of `arch`: `steps` and `lr` when given, else its entries in STEPS and LR (or the defaults)."""
    if arch not in ARCHITECTURES:
        raise KeyError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    return Recipe(arch, STEPS.get(arch, DEFAULT_STEPS) if steps is None else steps, batch,
                  LR.get(arch, DEFAULT_LR) if lr is None else lr, seed, width, blocks)


@dataclass
class Digits:
    """The digits split as 3x32x32 normalized images."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def to_rgb32(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """[N, 1, 8, 8] in [0, 1] -> [N, 3, 32, 32]: bilinear upsampling, 3 equal channels, (x - mean) / std."""
    up = F.interpolate(x.float(), size=(32, 32), mode="bilinear", align_corners=False)
    return ((up - mean) / std).repeat(1, 3, 1, 1).contiguous()


def digits32() -> Digits:
    """snnc's digits split (1347 training, 450 test images), normalized with the training images' statistics."""
    d = datasets.digits()
    up = F.interpolate(d.x_train.float(), size=(32, 32), mode="bilinear", align_corners=False)
    mean, std = float(up.mean()), float(up.std())
    return Digits(to_rgb32(d.x_train, mean, std), d.y_train, to_rgb32(d.x_test, mean, std), d.y_test)


def train(r: Recipe, data: Digits) -> nn.Module:
    """Train `r.arch` from its seeded random initialization, then recalibrate its BatchNorm statistics."""
    torch.manual_seed(r.seed)
    model = ARCHITECTURES[r.arch](num_classes=NUM_CLASSES, width=r.width, blocks=r.blocks)
    gen = torch.Generator().manual_seed(r.seed)
    opt = torch.optim.Adam(model.parameters(), lr=r.lr)
    n = data.x_train.shape[0]
    perm, pos = torch.randperm(n, generator=gen), 0
    model.train()
    for _ in range(r.steps):
        if pos + r.batch > n:  # a new epoch; a partial last batch is skipped (BatchNorm needs > 1 image)
            perm, pos = torch.randperm(n, generator=gen), 0
        idx = perm[pos:pos + r.batch]
        pos += r.batch
        loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return calibrate_bn(model, data.x_train)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 128) -> float:
    with torch.no_grad():
        pred = torch.cat([model(b).argmax(-1) for b in x.split(batch)])
    return float((pred == y).float().mean())


@dataclass
class Trained:
    model: nn.Module
    recipe: Recipe
    test_accuracy: float  # on all of the digits test split
    train_seconds: float  # when it was trained (also for a cached model)
    cached: bool  # loaded from the cache


def load_or_train(r: Recipe, data: Digits, root: Path | None = None,
                  trainer: Callable[[Recipe, Digits], nn.Module] = train) -> Trained:
    """The trained model of recipe `r`, from the cache or trained now (and cached), in eval mode."""
    path = r.path(root)
    if path.is_file():
        try:
            blob = torch.load(path, weights_only=True)
            torch.manual_seed(r.seed)
            model = ARCHITECTURES[r.arch](num_classes=NUM_CLASSES, width=r.width, blocks=r.blocks)
            model.load_state_dict(blob["state_dict"])
            return Trained(model.eval(), r, float(blob["test_accuracy"]), float(blob["train_seconds"]), True)
        except Exception:  # noqa: BLE001 - a corrupt or stale cache entry is retrained
            pass
    start = time.perf_counter()
    model = trainer(r, data).eval()
    seconds = time.perf_counter() - start
    acc = accuracy(model, data.x_test, data.y_test)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save({"state_dict": model.state_dict(), "test_accuracy": acc, "train_seconds": seconds}, tmp)
    return Trained(model, r, acc, seconds, False)
