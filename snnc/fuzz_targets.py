"""The file formats `snnc.fuzz` mutates: a seed-file maker and a reader for each."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from snnc.fuzz import target


def _seed_models() -> list[nn.Module]:
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.AvgPool2d(2),
                        nn.Flatten(), nn.Linear(3 * 2 * 2, 4)).eval()
    mlp = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    return [cnn, mlp]


_SHAPES = [(1, 4, 4), (5,)]


def exercise(graph) -> None:
    """Verify the graph and run a tiny input through it: the user's next steps after reading."""
    from snnc.ir.verify import verify
    from snnc.runtime import Session

    verify(graph)
    op = graph.inputs[0]
    feats = op.type.features
    if any(d > 4096 for d in feats) or len(graph.inputs) != 1:
        return
    Session(graph).run(torch.rand(2, *feats), T=2 if op.type.layout.has_time else None)


@target("snnir")
def _snnir():
    def seeds(folder: Path) -> list[Path]:
        import snnc
        from snnc.ir import save

        folder.mkdir(parents=True, exist_ok=True)
        out = []
        for i, (m, shape) in enumerate(zip(_seed_models(), _SHAPES)):
            ann = snnc.trace(m, shape)
            out.append(save(ann, folder / f"ann{i}.snnir"))
            out.append(save(snnc.convert(ann, torch.rand(8, *shape), "max", show_progress=False),
                            folder / f"snn{i}.snnir"))
        return out

    def read(path: Path) -> None:
        from snnc.ir import load

        exercise(load(path))

    return seeds, read


def _read_any(path: Path) -> None:
    from snnc.frontends.loader import load_model

    exercise(load_model(path))


@target("onnx")
def _onnx():
    def seeds(folder: Path) -> list[Path]:
        import warnings

        folder.mkdir(parents=True, exist_ok=True)
        out = []
        for i, (m, shape) in enumerate(zip(_seed_models(), _SHAPES)):
            path = folder / f"m{i}.onnx"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(m, (torch.rand(1, *shape),), str(path), dynamo=False,
                                  input_names=["x"], dynamic_axes={"x": {0: "N"}})
            out.append(path)
        return out

    return seeds, _read_any


@target("nir")
def _nir():
    def seeds(folder: Path) -> list[Path]:
        import snnc

        folder.mkdir(parents=True, exist_ok=True)
        out = []
        for i, (m, shape) in enumerate(zip(_seed_models(), _SHAPES)):
            snn = snnc.convert(snnc.trace(m, shape), torch.rand(8, *shape), "max", show_progress=False)
            art = snnc.compile(snn, "nir", folder / f"a{i}", soft_reset="as_hard")
            out.extend(p for p in art.path.iterdir() if p.suffix == ".nir")
        return out

    return seeds, _read_any


@target("netx")
def _netx():
    def seeds(folder: Path) -> list[Path]:
        import snnc
        from snnc.backends.lava.convert import convert as lava_convert

        folder.mkdir(parents=True, exist_ok=True)
        out = []
        for i, (m, shape) in enumerate(zip(_seed_models(), _SHAPES)):
            snn = lava_convert(m, torch.rand(16, *shape), "max", T=4)
            out.append(snnc.compile(snn, "lava", folder / f"a{i}", time_steps=4).path / "net.net")
        return out

    def read(path: Path) -> None:
        from snnc.frontends.loader import load_model
        from snnc.runtime.loihi import LoihiSession

        graph = load_model(path)
        feats = graph.inputs[0].type.features
        if all(d <= 4096 for d in feats):
            LoihiSession(graph).run(torch.rand(2, *feats), 3)

    return seeds, read
