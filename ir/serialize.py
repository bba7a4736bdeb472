"""The `.snnir` file format: one HDF5 file holding the graph (JSON) and its parameters.

Layout:
    attrs  format = "snnir", format_version = SNNIR_FORMAT_VERSION, snnc_version
    /graph            UTF-8 JSON: {"name", "meta", "nodes": [op...], "params": [{"name","dtype","shape"}]}
                      (meta's typed annotations, snnc.ir.annotations, as their fields)
    /params/p00000    one dataset per parameter, in the order of "params"

Files are deterministic: the same graph gives the same bytes (no timestamps).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import torch

from snnc.core import __version__
from snnc.core.errors import MalformedFileError, one_line
from snnc.core.fileio import atomic_path, open_regular
from snnc.core.safety import H5Group, open_hdf5
from snnc.ir.annotations import dump_meta, load_meta
from snnc.ir.graph import Graph
from snnc.ir.ops import OP_ADAPTER

SNNIR_FORMAT_VERSION = 1
_MAX_PARAM_ELEMENTS = 2**31  # refuse absurd claims before allocating
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
           "float64": torch.float64, "int8": torch.int8, "int16": torch.int16, "int32": torch.int32,
           "int64": torch.int64, "uint8": torch.uint8, "bool": torch.bool}


def _version() -> str:
    return __version__


def graph_to_json(graph: Graph) -> str:
    doc = {
        "name": graph.name,
        "meta": dump_meta(graph.meta),  # typed annotations as their JSON
        "nodes": [OP_ADAPTER.dump_python(op, mode="json") for op in graph],
        "params": [{"name": k, "dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}
                   for k, v in graph.params.items()],
    }
    return json.dumps(doc, sort_keys=False, separators=(",", ":"))


def is_snnir_file(path: str | os.PathLike) -> bool:
    """Whether `path` is a .snnir file, by content (HDF5 with format='snnir'); never opens a device or pipe."""
    try:
        with open_regular(Path(path)) as f:
            if f.read(8) != b"\x89HDF\r\n\x1a\n":
                return False
        # the root's attributes only, read in a helper process under a time limit: a damaged file cannot hang
        return open_hdf5(path, ".snnir", outline=True).attrs.get("format") == "snnir"
    except Exception:  # noqa: BLE001 - whatever h5py makes of a damaged file: not recognised
        return False


def save(graph: Graph, path: str | os.PathLike, *, force: bool = False) -> Path:
    """Write `graph` to `path` atomically.

    An existing `path` is replaced only if it is a .snnir file (or `force`: anything
    but a device, pipe or socket); otherwise OutputPathError.
    """
    with atomic_path(path, replaces=is_snnir_file, force=force, what=".snnir file") as tmp:
        with h5py.File(tmp, "w", track_order=True) as f:
            f.attrs["format"] = "snnir"
            f.attrs["format_version"] = SNNIR_FORMAT_VERSION
            f.attrs["snnc_version"] = _version()
            f.create_dataset("graph", data=np.frombuffer(graph_to_json(graph).encode(), dtype=np.uint8),
                             track_times=False)
            grp = f.create_group("params", track_order=True)
            for i, t in enumerate(graph.params.values()):
                t = t.detach().cpu().contiguous()
                arr = t.view(torch.int16).numpy() if t.dtype == torch.bfloat16 else t.numpy()
                grp.create_dataset(f"p{i:05d}", data=arr, track_times=False)
    return Path(path)


def load(path: str | os.PathLike) -> Graph:
    """Read a `.snnir` file, validating structure before allocating anything large."""
    p = Path(path)
    try:
        return _load(p)
    except MalformedFileError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, AttributeError, IndexError) as e:
        # h5py reports corrupt HDF5 structures with any of these
        raise MalformedFileError(f"{p}: corrupt .snnir file: {type(e).__name__}: {e}") from None


def _load(p: Path) -> Graph:
    # read whole in a child process under a time limit (a damaged file cannot hang this one); no links or
    # external storage into other files, no oversized claims
    with open_hdf5(p, ".snnir") as f:
        if f.attrs.get("format") != "snnir":
            raise MalformedFileError(f"{p}: not a .snnir file (missing format='snnir' attribute)")
        version = int(f.attrs.get("format_version", -1))
        if version != SNNIR_FORMAT_VERSION:
            raise MalformedFileError(f"{p}: .snnir format version {version} is not supported "
                                     f"(this snnc reads version {SNNIR_FORMAT_VERSION})")
        try:
            doc = json.loads(bytes(f["graph"][()]).decode())
            nodes, specs = doc["nodes"], doc["params"]
            if not isinstance(nodes, list) or not isinstance(specs, list):
                raise TypeError("'nodes' and 'params' must be lists")
        except MalformedFileError:
            raise
        except Exception as e:  # noqa: BLE001 - any corruption of the JSON record
            raise MalformedFileError(f"{p}: graph record is corrupt: {e}") from None
        meta = doc.get("meta") or {}
        if not isinstance(meta, dict):
            raise MalformedFileError(f"{p}: graph meta must be a mapping")
        try:
            meta = load_meta(meta)
        except ValueError as e:
            raise MalformedFileError(f"{p}: {e}") from None
        graph = Graph(str(doc.get("name", "main")), meta)
        for i, spec in enumerate(specs):
            graph.params[spec["name"]] = _read_param(f, p, i, spec)
        for i, node in enumerate(nodes):
            try:
                graph.add(OP_ADAPTER.validate_python(node))
            except Exception as e:  # noqa: BLE001 - pydantic ValidationError or a duplicate name
                raise MalformedFileError(f"{p}: node #{i} ({node.get('name', '?') if isinstance(node, dict) else '?'}) "
                                         f"is invalid: {one_line(e)}") from None
    return graph


def _read_param(f: H5Group, p: Path, i: int, spec: dict) -> torch.Tensor:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not isinstance(spec.get("shape"), list):
        raise MalformedFileError(f"{p}: parameter record #{i} is corrupt: {str(spec)[:80]}")
    name = spec["name"]
    key = f"params/p{i:05d}"
    if key not in f:
        raise MalformedFileError(f"{p}: parameter @{name} is missing (no dataset {key})")
    ds = f[key]
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in spec["shape"]):
        raise MalformedFileError(f"{p}: parameter @{name} has a non-integer shape {spec['shape']}")
    shape = tuple(spec["shape"])
    dtype = _DTYPES.get(str(spec.get("dtype")))
    if dtype is None:
        raise MalformedFileError(f"{p}: parameter @{name} has unsupported dtype {spec.get('dtype')!r}")
    if any(d < 0 for d in shape) or int(np.prod(shape, dtype=np.float64)) > _MAX_PARAM_ELEMENTS:
        raise MalformedFileError(f"{p}: parameter @{name} claims shape {list(shape)}, which is too large")
    if tuple(ds.shape) != shape:
        raise MalformedFileError(f"{p}: parameter @{name} has shape {list(ds.shape)}, header says {list(shape)}")
    try:
        arr = ds[()]
    except MalformedFileError:
        raise
    except Exception as e:  # noqa: BLE001 - truncated or corrupt data
        raise MalformedFileError(f"{p}: parameter @{name} cannot be read: {e}") from None
    t = torch.from_numpy(np.ascontiguousarray(arr))
    return t.view(torch.bfloat16) if dtype == torch.bfloat16 else t.to(dtype)
