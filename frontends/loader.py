"""Pick a frontend for a model: an object, a file (by content, not only by suffix), or a Python spec."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import pickle
import re
import sys
import zipfile
from pathlib import Path
from typing import Any, Sequence

import torch

from snnc.core import spelling
from snnc.core.fileio import refuse_lfs_pointer
from snnc.core.errors import FrontendError, InputError, MalformedFileError, SnncError, UntrustedPickleError
from snnc.core.safety import open_hdf5
from snnc.frontends.nir import from_nir, load_nir
from snnc.frontends.torch_export import from_exported_program, load_pt2
from snnc.frontends.torch_fx import trace
from snnc.ir.formats.artifact import Artifact
from snnc.ir.formats.netx import read_netx
from snnc.ir.graph import Graph
from snnc.ir.serialize import load as load_snnir

KINDS = {
    "snnir": ".snnir: the snnc IR (HDF5 with format='snnir')",
    "nir": ".nir/.h5: a NIR graph (HDF5 with /node and /version)",
    "netx": ".net: a Lava NetX network for Loihi (HDF5 with /layer)",
    "onnx": ".onnx: an ONNX model (protobuf)",
    "pt2": ".pt2: a torch.export archive (zip with archive_format)",
    "artifact": "an snnc artifact folder (manifest.json)",
    "python": "'package.module:attribute' or 'path/to/file.py:attribute' (an nn.Module or a factory) with "
              "--input-shape and optional --weights",
}
KNOWN_KINDS = "; ".join(KINDS.values())
_SUFFIXES = {".snnir": "snnir", ".nir": "nir", ".h5": "nir", ".hdf5": "nir", ".onnx": "onnx", ".pt2": "pt2", ".net": "netx",
             ".pt": "torch", ".pth": "torch", ".ckpt": "torch"}
_SUFFIX_KIND = {**KINDS, "torch": "a torch.save file (zip or pickle)"}
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGIC = b"PK\x03\x04"


def sniff(path: Path) -> str:
    """The kind of model file by its content: snnir, nir, hdf5, pt2, torch, onnx, artifact or unknown."""
    if path.is_dir():
        return "artifact" if (path / "manifest.json").is_file() else "unknown"
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise FrontendError(f"cannot read {path}: {e.strerror}") from None
    if head.startswith(_HDF5_MAGIC):
        return _sniff_hdf5(path)
    if head.startswith(_ZIP_MAGIC):
        return _sniff_zip(path)
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "torch"  # a pickle (legacy torch.save format)
    if len(head) >= 2 and head[0] == 0x08 and 1 <= head[1] <= 30:
        return "onnx"  # protobuf field 1 (ModelProto.ir_version), a small varint
    return "unknown"


def _sniff_hdf5(path: Path) -> str:
    try:
        # the root's attributes and names only, read in a helper process under a time limit
        with open_hdf5(path, outline=True) as f:
            if f.attrs.get("format") == "snnir":
                return "snnir"
            if "node" in f and "version" in f:
                return "nir"
            if "layer" in f:
                return "netx"
    except SnncError:
        raise
    except Exception as e:  # noqa: BLE001 - h5py raises OSError, KeyError, RuntimeError on damaged files
        raise MalformedFileError(f"{path}: HDF5 file is truncated or corrupt: {e}") from None
    return "hdf5"


def _sniff_zip(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except Exception as e:  # noqa: BLE001 - BadZipFile, OSError, UnicodeDecodeError of damaged names
        raise MalformedFileError(f"{path}: zip archive is truncated or corrupt: {e}",
                                 hint="a .pt2 (torch.export) or torch.save file is a zip archive") from None
    if any(n.endswith("archive_format") for n in names):
        return "pt2"
    if any(n.endswith("data.pkl") for n in names):
        return "torch"
    return "unknown"


def load(source: Any, *, input_shape: Sequence[int] | Sequence[Sequence[int]] | None = None,
         weights: str | os.PathLike | None = None, name: str | None = None, trust_pickle: bool = False,
         dt: float | None = None, **options: Any) -> Graph:
    """Read a model into an IR graph, choosing the frontend by what `source` is.

    `source` is a Graph, an nn.Module (traced; needs `input_shape`), a
    torch.export ExportedProgram, an onnx.ModelProto, a nir.NIRGraph, a path
    to a model file or artifact folder, or a 'package.module:attribute' (or 'path/to/file.py:attribute') spec.
    `options` go to the frontend: `layout`/`step_mode` for tracing, `dt`,
    `fire`, `use_metadata` for NIR. `trust_pickle=True` lets a torch.save file of
    a whole model be unpickled (which can run arbitrary code: only for files you made).
    `dt` is the time step (seconds) of a NIR input's neurons; any other input refuses it.
    """
    if dt is not None:
        kind = _object_kind(source)
        if kind is None and isinstance(source, (str, os.PathLike)) and Path(source).is_file():
            kind = sniff(Path(source))
        missing = isinstance(source, (str, os.PathLike)) and not Path(source).exists() and ":" not in str(source)
        if kind != "nir" and not missing:  # (a missing file is reported as such below)
            what = KINDS.get(kind, "not NIR").split(":")[0] if kind else f"a {type(source).__name__}, not NIR"
            label = str(source) if isinstance(source, (str, os.PathLike)) else "the model"
            raise InputError(f"{spelling.flag('dt')} is the time step of a NIR model's neurons; {label} is {what}",
                             hint=f"drop {spelling.flag('dt')}")
        options["dt"] = dt
    if isinstance(source, Graph):
        return source
    if isinstance(source, torch.nn.Module):
        if input_shape is None:
            raise FrontendError(f"tracing {type(source).__name__} needs the per-sample input shape",
                                hint="pass input_shape=(C, H, W) (without batch and time dims)")
        return trace(source, input_shape, name=name, **options)
    kind = _object_kind(source)
    if kind is not None:
        return _from_object(kind, source, name, options)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.exists():
            if weights is not None:
                raise InputError(f"{spelling.flag('weights')} goes with a Python model spec "
                                 f"('package.module:attribute'); {path} is a model file, which holds its own weights",
                                 hint=f"drop {spelling.flag('weights')}, or give the architecture as "
                                      f"'package.module:attribute' with {spelling.option('weights', str(weights))}")
            if trust_pickle and sniff(path) == "torch":
                return _from_trusted_pickle(path, input_shape, name, options)
            return _from_file(path, name, options)
        spec = str(source)
        if ":" in spec and (not spec.startswith(("/", ".")) or spec.rpartition(":")[0].endswith(".py")):
            return _from_python(spec, input_shape, weights, name, options)
        raise FrontendError(f"no such file: {spec}", hint=f"snnc reads {KNOWN_KINDS}")
    raise FrontendError(f"cannot read a model from a {type(source).__name__}", hint=f"snnc reads {KNOWN_KINDS}")


def load_model(spec: Any, *, input_shape: Sequence[int] | None = None, weights: str | None = None,
               name: str | None = None, trust_pickle: bool = False, dt: float | None = None, **options: Any) -> Graph:
    """The CLI's entry point; the same as `load`."""
    return load(spec, input_shape=input_shape, weights=weights, name=name, trust_pickle=trust_pickle, dt=dt,
                **options)


def _from_trusted_pickle(path: Path, input_shape, name: str | None, options: dict) -> Graph:
    """Unpickle a whole nn.Module (opt-in: unpickling runs whatever code the file names)."""
    import warnings

    warnings.warn(f"unpickling {path} with --trust-pickle: this runs any code the file contains; "
                  "only do this for files you created", stacklevel=2)
    try:
        model = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - whatever the pickle raises
        raise MalformedFileError(f"{path}: cannot be unpickled: {type(e).__name__}: {e}") from None
    if not isinstance(model, torch.nn.Module):
        raise FrontendError(f"{path} holds a {type(model).__name__}, not an nn.Module",
                            hint="a state dict needs the architecture: 'package.module:attribute' --weights FILE")
    if input_shape is None:
        raise FrontendError(f"{path}: tracing the model needs its input shape", hint=input_shape_hint(model))
    return trace(model.eval(), input_shape, name=name or path.stem, **options)


def input_shape_hint(model: torch.nn.Module) -> str:
    """How to give the input shape: batch first on the command line, per sample in Python."""
    if not spelling.on_command_line():
        return "pass input_shape=(1, 8, 8): the shape of one sample, without the batch and time dims"
    try:  # the name the traced input will have: forward's first parameter
        params = inspect.signature(model.forward).parameters.values()
        name = next(p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
    except (StopIteration, TypeError, ValueError):
        name = "x"
    return (f"e.g. --input-shape {name}:[1,1,8,8] for samples of shape 1x8x8: batch first "
            f"(NAME:[N,*sample_shape], NAME a parameter of {type(model).__name__}.forward)")


def _object_kind(obj: Any) -> str | None:
    mod = type(obj).__module__
    if mod.startswith("torch.export"):
        from torch.export import ExportedProgram

        return "pt2" if isinstance(obj, ExportedProgram) else None
    if mod.startswith("onnx"):
        import onnx

        return "onnx" if isinstance(obj, onnx.ModelProto) else None
    if mod.startswith("nir"):
        import nir

        return "nir" if isinstance(obj, nir.NIRGraph) else None
    return None


def _from_object(kind: str, obj: Any, name: str | None, options: dict) -> Graph:
    if kind == "pt2":
        return from_exported_program(obj, name=name or "main", **options)
    if kind == "onnx":
        from snnc.frontends.onnx import from_onnx_model  # lazy: imports onnx, for ONNX input only

        return from_onnx_model(obj, name=name or "main", **options)
    return from_nir(obj, name=name or "nir", **options)


def _from_file(path: Path, name: str | None, options: dict) -> Graph:
    kind = sniff(path)
    try:
        return _read(path, kind, name, options)
    except SnncError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged file that got past the frontend's own checks
        raise MalformedFileError(f"{path}: cannot be read as {KINDS.get(kind, kind)}: {type(e).__name__}: "
                                 f"{(str(e).splitlines() or [''])[0][:300]}") from None


def _read(path: Path, kind: str, name: str | None, options: dict) -> Graph:
    expected = _SUFFIXES.get(path.suffix.lower())
    if kind == "unknown":
        refuse_lfs_pointer(path)
        if path.is_file() and path.stat().st_size == 0:
            raise MalformedFileError(f"{path} is empty (0 bytes), not a model", hint=f"snnc reads {KNOWN_KINDS}")
        if expected is not None:  # the content is not quoted: the file may be anything, even a secret
            raise MalformedFileError(f"{path}: the name says {_SUFFIX_KIND.get(expected, expected)}, but the content "
                                     "is not one (wrong magic: it does not start as such a file does)",
                                     hint=f"the file is damaged or not a model; snnc reads {KNOWN_KINDS}")
        raise FrontendError(f"cannot tell what kind of model {path} is", hint=f"snnc reads {KNOWN_KINDS}")
    if kind == "hdf5":
        raise MalformedFileError(f"{path}: an HDF5 file that is neither .snnir (no format='snnir' attribute) nor "
                                 "NIR (no /node and /version)", hint=f"snnc reads {KNOWN_KINDS}")
    if kind == "torch":
        _refuse_torch_pickle(path)
    if kind == "snnir":
        return load_snnir(path)
    if kind == "netx":
        return read_netx(path)
    if kind == "artifact":
        return Artifact.open(path).graph()
    if kind == "nir":
        return load_nir(path, name=name, **options)
    if kind == "onnx":
        from snnc.frontends.onnx import load_onnx  # lazy: imports onnx, for ONNX input only

        return load_onnx(path, name=name)
    return load_pt2(path, name=name)


def _refuse_torch_pickle(path: Path) -> None:
    """A torch.save file: never unpickle objects; a plain state dict still needs the architecture."""
    load_state_dict(path, role="model")  # raises UntrustedPickleError for a pickled model
    raise FrontendError(f"{path} holds only weights (a state dict), not an architecture",
                        hint="give the model as 'package.module:attribute' with "
                             f"{spelling.option('weights', str(path))}, or save it with torch.export.save (.pt2) "
                             "or torch.onnx.export (.onnx)")


def _import_file(path: Path):
    """The Python file `path` as a module, its folder first on sys.path (as `python path` has it), so that
    it imports its sibling modules; registered in sys.modules under its stem unless that name is taken."""
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = path.stem if path.stem.isidentifier() and path.stem not in sys.modules else f"snnc_user_{abs(hash(folder))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _from_python(spec: str, input_shape, weights, name, options: dict) -> Graph:
    target, _, attr = spec.rpartition(":") if spec.rpartition(":")[0].endswith(".py") else spec.partition(":")
    try:
        if target.endswith(".py"):
            if not Path(target).is_file():
                raise FrontendError(f"no such file: {target} (in the model spec {spec})")
            module = _import_file(Path(target))
        else:
            module = importlib.import_module(target)
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, SyntaxError) as e:
        raise FrontendError(f"cannot import {spec}: {e}") from None
    model = obj if isinstance(obj, torch.nn.Module) else obj() if callable(obj) else None
    if not isinstance(model, torch.nn.Module):
        raise FrontendError(f"{spec} is neither a torch.nn.Module nor a factory returning one")
    if weights:
        try:
            model.load_state_dict(load_state_dict(weights))
        except RuntimeError as e:  # missing/unexpected keys, shape mismatches
            raise FrontendError(f"weights {weights} do not fit {spec}: {str(e).splitlines()[0]}") from None
    if input_shape is None:
        raise FrontendError(f"{spec}: tracing the model needs its input shape", hint=input_shape_hint(model))
    return trace(model.eval(), input_shape, name=name or attr.rsplit(".", 1)[-1], **options)


def load_state_dict(path: str | Path, role: str = "weights") -> dict:
    """torch.load with weights_only=True: tensors and plain containers, never arbitrary objects.

    `role` is what the file was given as, for the hint: "weights" (a state dict for a
    Python spec) or "model" (the model itself, which may be unpickled on request).
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FrontendError(f"no such weights file: {path}") from None
    except pickle.UnpicklingError as e:  # what weights_only=True raises for anything but plain data
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f"a pickled {found.group(1)}" if found else "pickled Python objects"
        raise UntrustedPickleError(f"{path} holds {what}, not a plain state dict; snnc does not unpickle "
                                   "objects (loading them can run arbitrary code)", hint=_pickle_hint(role)) from None
    except Exception as e:  # noqa: BLE001 - a truncated zip, a bad header
        raise MalformedFileError(f"{path}: not a readable torch.save file: {type(e).__name__}: "
                                 f"{(str(e).splitlines() or [''])[0][:200]}") from None
    if not isinstance(state, dict):
        raise FrontendError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state


def _pickle_hint(role: str) -> str:
    weights, trust = spelling.flag("weights"), spelling.flag("trust_pickle")
    save = ("save the weights with torch.save(model.state_dict(), path) and give the architecture as "
            f"'package.module:attribute' with {weights}")
    if role == "model":
        return f"{save}; or, for a model file you made yourself, opt in with {spelling.option('trust_pickle', True)}"
    the_model = "as the MODEL argument" if spelling.on_command_line() else "as the source"
    return (f"{weights} takes a state dict: {save}. {trust} does not apply to {weights}: a whole model you saved "
            f"yourself can be given {the_model} with {spelling.option('trust_pickle', True)} and the input shape")
