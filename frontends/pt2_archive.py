"""Validate a torch.export (.pt2) archive before torch.export.load reads it.

torch.export.load trusts its archive: a weight marked `use_pickle` is
unpickled with weights_only=False, the sample inputs fall back to
weights_only=False when the safe load fails, custom/opaque constants are
unpickled, AOTInductor entries load compiled native code, and a weight stored
as an empty record is allocated with whatever size its metadata claims
(torch.zeros of 10^12 elements). `check_archive` refuses each of these from the
zip directory and the JSON configs alone, before torch reads the archive.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import re
import zipfile
from pathlib import Path

from snnc.core.errors import MalformedFileError, TensorTooLargeError, UntrustedPickleError
from snnc.core.limits import check_tensor, max_tensor_bytes, mib

_CONFIG_LIMIT = 64 << 20  # bytes of JSON config read into memory
_HINT = "write it with torch.export.save(torch.export.export(model, args), path)"


def check_archive(path: str | os.PathLike) -> None:
    """Raise an SnncError for an archive that would run code or allocate an oversized tensor when loaded."""
    p = Path(path)
    src = str(p)
    try:
        z = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise MalformedFileError(f"{src}: not a readable zip archive: {e}", hint=_HINT) from None
    with z:
        entries = {}
        for info in z.infolist():
            _, _, rel = info.filename.partition("/")  # torch's reader strips the archive's root folder
            if info.file_size > max_tensor_bytes():
                raise TensorTooLargeError(f"{src}: archive entry {info.filename!r} claims {mib(info.file_size)}, over "
                                          f"snnc's tensor limit of {mib(max_tensor_bytes())}")
            entries[rel] = info
        if "archive_format" not in entries or "archive_version" not in entries:
            raise MalformedFileError(f"{src}: not a torch.export archive (no archive_format/archive_version; "
                                     "the pre-2.8 format is not read)", hint=_HINT)
        native = [n for n in entries if n.startswith(("data/aotinductor/", "data/executorch/", "data/mtia"))]
        if native:
            raise UntrustedPickleError(f"{src}: the archive holds compiled native code ({native[0]}), which "
                                       "snnc does not load (loading it runs that code)",
                                       hint="save only the ExportedProgram: torch.export.save(ep, path)")
        for rel in entries:
            if rel.startswith("data/weights/") and rel.endswith(".pt") or \
                    rel.startswith("data/constants/") and rel.endswith(".pt"):
                raise UntrustedPickleError(f"{src}: {rel} is a pickled legacy weights file, which snnc does not "
                                           "unpickle", hint=_HINT)
        for rel in entries:
            kind = "weight" if rel.startswith("data/weights/") else "constant"
            if rel.endswith(f"_{kind}s_config.json") and rel.startswith(f"data/{kind}s/"):
                _check_config(z, entries, rel, f"data/{kind}s/", kind, src)
        for rel, info in entries.items():
            if rel.startswith("data/sample_inputs/"):
                _check_pickle(z.read(info), f"sample inputs {rel}", src)


def _check_config(z: zipfile.ZipFile, entries: dict, rel: str, folder: str, kind: str, src: str) -> None:
    from torch._export.serde.serialize import _SERIALIZE_TO_TORCH_DTYPE

    info = entries[rel]
    if info.file_size > _CONFIG_LIMIT:
        raise TensorTooLargeError(f"{src}: {rel} is {mib(info.file_size)} of JSON, over {mib(_CONFIG_LIMIT)}")
    try:
        config = json.loads(z.read(info))["config"]
        if not isinstance(config, dict):
            raise TypeError("'config' is not a mapping")
    except Exception as e:  # noqa: BLE001 - bad JSON, missing keys, a damaged entry
        raise MalformedFileError(f"{src}: {rel} is corrupt: {type(e).__name__}: {e}", hint=_HINT) from None
    for fqn, meta in config.items():
        what = f"{kind} '{fqn}'"
        if not isinstance(meta, dict):
            raise MalformedFileError(f"{src}: {rel}: the entry of {what} is not a mapping")
        name = str(meta.get("path_name", ""))
        if meta.get("use_pickle") or name.startswith(("custom_obj_", "opaque_obj_")):
            raise UntrustedPickleError(f"{src}: {what} is stored as a pickled object ({folder}{name}); snnc does not "
                                       "unpickle objects from a model file (it can run arbitrary code)",
                                       hint="export a model whose weights and constants are plain tensors")
        tm = meta.get("tensor_meta")
        try:
            sizes = [int(s["as_int"]) for s in tm["sizes"]]
            strides = [int(s["as_int"]) for s in tm["strides"]]
            offset = int(tm["storage_offset"]["as_int"])
            dtype = _SERIALIZE_TO_TORCH_DTYPE[int(tm["dtype"])]
        except Exception as e:  # noqa: BLE001 - symbolic sizes, missing fields, unknown dtype
            raise MalformedFileError(f"{src}: {rel}: {what} has unreadable tensor metadata ({type(e).__name__}: "
                                     f"{e})") from None
        itemsize = dtype.itemsize
        check_tensor(what, sizes, itemsize, src)
        record = entries.get(folder + name)
        if record is None:
            raise MalformedFileError(f"{src}: {what} is stored in {folder}{name}, which the archive lacks")
        numel = math.prod(sizes)
        stored = record.file_size // itemsize
        if len(strides) != len(sizes) or offset < 0 or any(s < 0 for s in strides):
            raise MalformedFileError(f"{src}: {what} has inconsistent sizes {sizes} / strides {strides} / offset {offset}")
        extent = 0 if numel == 0 else offset + sum((n - 1) * s for n, s in zip(sizes, strides)) + 1
        if extent > stored:
            raise MalformedFileError(f"{src}: {what} claims shape {sizes} but its record {folder}{name} holds only "
                                     f"{record.file_size} bytes ({stored} elements)",
                                     hint="the archive is truncated or damaged")


def _check_pickle(data: bytes, what: str, src: str) -> None:
    """torch.export.load falls back to weights_only=False when this fails: refuse before it can."""
    import torch

    try:
        torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        objs = f"a pickled {found.group(1)}" if found else "pickled Python objects"
        raise UntrustedPickleError(f"{src}: {what} holds {objs}, not plain tensors; torch.export.load would "
                                   "unpickle it unsafely (running any code it names), so snnc refuses the file",
                                   hint=_HINT) from None
    except Exception as e:  # noqa: BLE001 - a truncated or damaged torch.save record
        raise MalformedFileError(f"{src}: {what} cannot be read: {type(e).__name__}: "
                                 f"{(str(e).splitlines() or [''])[0][:200]}", hint=_HINT) from None
