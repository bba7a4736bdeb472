"""What `snnc.fuzz` mutates: the target registry, the generic mutations, and the file formats.

Each target is a seed-file maker and a reader; `@target(name, *mutators)` registers it
with the format-aware mutations used for a quarter of its cases.
"""

from __future__ import annotations

import io
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

Mutator = Callable[[bytes, random.Random], "tuple[bytes, str]"]


@dataclass
class Target:
    name: str
    seeds: Callable[[Path], list[Path]]  # write valid files into a folder, return their paths
    read: Callable[[Path], object]  # read (and exercise) one file
    mutators: list[Mutator] = field(default_factory=list)  # format-aware mutations (oversized claims, links)


TARGETS: dict[str, Target] = {}


def target(name: str, *mutators: Mutator):
    """Register a target: `fn()` returns (seeds, read); `mutators` are used for a quarter of its cases."""
    def deco(fn):
        seeds, read = fn()
        TARGETS[name] = Target(name, seeds, read, list(mutators))
        return fn
    return deco


# ---------------------------------------------------------------- mutations
def mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    if not data:
        return data, "empty"
    kind = rng.choice(["truncate", "flip", "overwrite", "json", "json", "zero"])
    if kind == "truncate":
        n = rng.randrange(len(data))
        return data[:n], f"truncate@{n}"
    if kind == "flip":
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b), "flip"
    if kind == "zero":
        b = bytearray(data)
        i = rng.randrange(len(b))
        n = rng.randint(1, 256)
        b[i:i + n] = bytes(min(n, len(b) - i))
        return bytes(b), f"zero@{i}+{n}"
    if kind == "overwrite":
        b = bytearray(data)
        i = rng.randrange(len(b))
        n = rng.randint(1, 64)
        b[i:i + n] = bytes(rng.randrange(256) for _ in range(min(n, len(b) - i)))
        return bytes(b), f"overwrite@{i}+{n}"
    return _mutate_json(data, rng)


def _mutate_json(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Change one value inside an embedded JSON document of the same length class (shape, dtype, attribute)."""
    start = data.find(b'{"name"')
    if start < 0:
        return mutate(data, rng) if rng.random() < 0.5 else (data[: len(data) // 2], "truncate-half")
    depth, end = 0, start
    for end in range(start, len(data)):
        c = data[end:end + 1]
        depth += c == b"{"
        depth -= c == b"}"
        if depth == 0:
            break
    try:
        doc = json.loads(data[start:end + 1])
    except ValueError:
        return data, "json-unparsed"
    path = _random_leaf(doc, rng)
    if not path:
        return data, "json-noleaf"
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    old = parent[path[-1]]
    parent[path[-1]] = rng.choice([-1, 0, 10**12, 1.5, "bogus", None, [], [10**6, 10**6], float("nan"),
                                   old * 3 if isinstance(old, (int, float)) and not isinstance(old, bool) else "x"])
    new = json.dumps(doc, separators=(",", ":")).encode()
    return data[:start] + new + data[end + 1:], f"json:{'/'.join(map(str, path))}"


def _random_leaf(doc, rng: random.Random) -> list:
    path, node = [], doc
    while isinstance(node, (dict, list)) and node:
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        path.append(key)
        node = node[key]
    return path


# ---------------------------------------------------------------- the formats

_HUGE = [[10**6, 10**6], [10**12], [2**31, 2**31], [-1, 4], [0, 10**13]]


def onnx_tensor_mutation(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Make one tensor of an ONNX model claim a huge shape or point its data outside the model's folder."""
    import onnx

    from snnc.frontends.onnx_tensors import all_tensors

    try:
        model = onnx.load_from_string(data)
        tensors = [t for _, t in all_tensors(model)]
    except Exception:  # noqa: BLE001 - not a model (cannot happen for the seeds)
        return mutate(data, rng)
    if not tensors:
        return mutate(data, rng)
    t = rng.choice(tensors)
    kind = rng.choice(["dims", "external", "length"])
    if kind == "dims":
        dims = rng.choice(_HUGE)
        del t.dims[:]
        t.dims.extend(dims)
        how = f"onnx:{t.name}:dims={dims}"
    else:
        location = rng.choice(["../../etc/passwd", "/etc/passwd", "../outside.bin", "sub/../../x.bin", "missing.bin"])
        length = rng.choice([None, 10**13, 4, -5])
        t.ClearField("raw_data")
        t.data_location = onnx.TensorProto.EXTERNAL
        del t.external_data[:]
        for key, value in (("location", location), ("offset", rng.choice(["0", "-1", "7", "x"])),
                           ("length", None if length is None else str(length))):
            if value is not None:
                e = t.external_data.add()
                e.key, e.value = key, value
        how = f"onnx:{t.name}:external={location},length={length}"
    return model.SerializeToString(), how


def hdf5_dataset_mutation(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Replace one dataset of an HDF5 file by an external link, external storage, or a huge unwritten one."""
    import h5py
    import numpy as np

    buf = io.BytesIO(data)
    try:
        with h5py.File(buf, "r+") as f:
            names: list[str] = []
            f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            if not names:
                return mutate(data, rng)
            name = rng.choice(names)
            dtype = f[name].dtype if f[name].dtype.kind in "fiub" else np.dtype("float32")
            del f[name]
            kind = rng.choice(["link", "external", "huge", "huge"])
            if kind == "link":
                f[name] = h5py.ExternalLink(rng.choice(["../other.h5", "/etc/passwd", "case.h5"]), "/data")
            elif kind == "external":
                f.create_dataset(name, shape=(4,), dtype=dtype, external=[("../../etc/passwd", 0, 4 * dtype.itemsize)])
            else:
                f.create_dataset(name, shape=tuple(rng.choice(_HUGE[:3])), dtype=dtype, chunks=True, fillvalue=0)
    except Exception:  # noqa: BLE001 - h5py refuses this edit: fall back to a byte mutation
        return mutate(data, rng)
    return buf.getvalue(), f"hdf5:{name}:{kind}"


def _seed_models() -> list[nn.Module]:
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.AvgPool2d(2),
                        nn.Flatten(), nn.Linear(3 * 2 * 2, 4)).eval()
    mlp = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    return [cnn, mlp]


_SHAPES = [(1, 4, 4), (5,)]


def _small(feats) -> bool:
    """Whether a tiny input batch of this shape is cheap to run (a mutated file may claim any shape)."""
    return all(isinstance(d, int) for d in feats) and math.prod(feats) <= 1 << 16


def exercise(graph) -> None:
    """Verify the graph and run a tiny input through it: the user's next steps after reading."""
    from snnc.ir.verify import verify
    from snnc.runtime import Session

    verify(graph)
    op = graph.inputs[0]
    feats = op.type.features
    if not _small(feats) or len(graph.inputs) != 1:
        return
    Session(graph).run(torch.rand(2, *feats), T=2 if op.type.layout.has_time else None)


@target("snnir", hdf5_dataset_mutation)
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


@target("onnx", onnx_tensor_mutation)
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


@target("nir", hdf5_dataset_mutation)
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


@target("netx", hdf5_dataset_mutation)
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
        if _small(feats):
            LoihiSession(graph)  # the emulator's network made from the graph (same numbers as below)
            # as `snnc run` runs a lava artifact: the emulator reads the file itself
            LoihiSession(path).run(torch.rand(2, *feats), 3)

    return seeds, read
