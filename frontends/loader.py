"""Pick a frontend for a model given as a path or a `package.module:attribute` spec."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Sequence

import torch

from snnc.errors import FrontendError, MalformedFileError, UntrustedPickleError
from snnc.ir.graph import Graph

KNOWN_KINDS = ".snnir files, and Python specs 'package.module:attribute' (a module or a factory)"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def sniff(path: Path) -> str:
    """The kind of model file, by content (not only by suffix)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise FrontendError(f"cannot read {path}: {e.strerror}") from None
    if head == _HDF5_MAGIC:
        import h5py

        try:
            with h5py.File(path, "r") as f:
                if f.attrs.get("format") == "snnir":
                    return "snnir"
        except OSError:
            raise MalformedFileError(f"{path}: HDF5 file is truncated or corrupt") from None
        return "hdf5"
    return "unknown"


def load_model(spec: str | Path, *, input_shape: Sequence[int] | None = None, weights: str | None = None,
               name: str | None = None) -> Graph:
    """Read a model into an IR graph: a .snnir file or a Python `module:attribute` spec."""
    spec_s = str(spec)
    path = Path(spec_s)
    if path.exists():
        kind = sniff(path)
        if kind == "snnir":
            from snnc.ir.serialize import load

            return load(path)
        raise FrontendError(f"cannot tell what kind of model {path} is", hint=f"snnc reads {KNOWN_KINDS}")
    if ":" in spec_s and not spec_s.startswith(("/", ".")):
        return _from_python(spec_s, input_shape, weights, name)
    raise FrontendError(f"no such file: {spec_s}", hint=f"snnc reads {KNOWN_KINDS}")


def _from_python(spec: str, input_shape, weights, name) -> Graph:
    from snnc.frontends.torch_fx import trace

    mod_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(mod_name)
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise FrontendError(f"cannot import {spec}: {e}") from None
    model = obj if isinstance(obj, torch.nn.Module) else obj() if callable(obj) else None
    if not isinstance(model, torch.nn.Module):
        raise FrontendError(f"{spec} is neither a torch.nn.Module nor a factory returning one")
    if weights:
        model.load_state_dict(load_state_dict(weights))
    if input_shape is None:
        raise FrontendError(f"{spec}: give the per-sample input shape (--input-shape x:[1,8,8])")
    return trace(model.eval(), input_shape, name=name or attr.rsplit(".", 1)[-1])


def load_state_dict(path: str | Path) -> dict:
    """torch.load with weights_only=True: tensors and plain containers, never arbitrary objects."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FrontendError(f"no such weights file: {path}") from None
    except Exception as e:  # noqa: BLE001 - pickle.UnpicklingError and friends
        raise UntrustedPickleError(f"{path} is not a plain state dict (loading it would unpickle arbitrary "
                                   f"objects, which can run code): {str(e).splitlines()[0]}",
                                   hint="save weights with torch.save(model.state_dict(), path)") from None
    if not isinstance(state, dict):
        raise FrontendError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state
