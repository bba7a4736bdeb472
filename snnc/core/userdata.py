"""User data: arrays from files or from callers, checked in one place and turned into float tensors.

Every path by which data reaches a model goes through `as_float`: `snnc run -i`,
`--calib`, `report --eval`, `snnc.convert(model, data)`, `Session.run/step`, the
Loihi emulation and the Lynxi runner. Its policy:

- float16/32/64 and bfloat16: used as they are;
- bool, and integers whose values are all 0 or 1 (spikes, binary images): 0.0 and 1.0;
- other integers (uint8 images 0..255, event counts, scikit-learn's digits 0..16):
  refused, since the scale the model was trained on cannot be read from the data.
  Give it: `--input-scale 1/255` (command line) or `x.float() / 255` (Python);
  `--input-scale 1` uses the values as they are;
- complex numbers, strings, Python objects, records, dates: refused;
- NaN or Inf: refused, naming the first sample that has one (`check_finite`).

`read_arrays` reads a data file: .npy, .npz, or a .pt holding a tensor or a dict of
tensors (torch.load with weights_only=True: no pickled objects). It recognises the
kind by content, checks every array header against snnc's tensor size limit before
reading it, and never echoes a file's bytes in an error.
"""

from __future__ import annotations

import math
import numbers
import pickle
import zipfile
from pathlib import Path
from typing import Union

import numpy as np
import torch
from torch import Tensor

from snnc.core import spelling
from snnc.core.errors import InputError, SnncError
from snnc.core.limits import check_tensor

Array = Union[np.ndarray, Tensor]

ACCEPTED = ("give a .npy file (numpy.save), an .npz (numpy.savez, one array per input name) or a .pt file "
            "holding a tensor or a dict of tensors (torch.save)")
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_REFUSED_KINDS = {"O": "Python objects", "U": "strings", "S": "byte strings", "V": "records (a structured dtype)",
                  "M": "dates", "m": "time deltas", "c": "complex numbers"}
_TORCH_INTS = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint16, torch.uint32,
               torch.uint64)


# ---------------------------------------------------------------- T
def check_time_steps(T, what: str = "T") -> int | None:
    """T as an int (None stays None); an InputError for 0, negatives, bools and non-integers."""
    if T is None:
        return None
    if isinstance(T, bool) or not isinstance(T, numbers.Integral) or int(T) <= 0:
        raise InputError(f"{what} must be a positive int (a number of time steps), got {T!r}")
    return int(T)


# ---------------------------------------------------------------- values
def parse_scale(text: str) -> float:
    """'1/255', '0.5', '1' -> a positive finite float; InputError otherwise."""
    num, sep, den = str(text).partition("/")
    try:
        value = float(num) / float(den) if sep else float(num)
    except (ValueError, ZeroDivisionError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"--input-scale: not a positive number: {text!r}", hint="e.g. --input-scale 1/255")
    return value


def _int_refusal(what: str, dtype, lo, hi) -> InputError:
    d = 255 if str(dtype).endswith("uint8") and hi <= 255 else hi
    if spelling.on_command_line():
        hint = (f"--input-scale 1/{d} maps {d} to 1, for a model trained on values in [0, 1]; "
                "--input-scale 1 uses the values as they are")
    else:
        hint = (f"pass x.float() / {d} for a model trained on values in [0, 1], or x.float() to use the values "
                "as they are")
    return InputError(f"{what} has integer dtype {str(dtype).removeprefix('torch.')} with values {lo}..{hi}; snnc "
                      "does not guess the scale the model was trained on", hint=hint)


def as_float(x, what: str, *, scale: float | None = None) -> Tensor:
    """`x` (tensor, array, nested lists) as a float tensor under the module's dtype policy.

    `what` names the data in errors ("input %x", "inputs file a.npz, array 'x'").
    `scale` multiplies every value (integers are then allowed whatever their range).
    Float data is not copied when scale is None.
    """
    if isinstance(x, np.ndarray):
        kind = x.dtype.kind
        if kind in _REFUSED_KINDS or kind not in "biuf":
            raise InputError(f"{what} holds {_REFUSED_KINDS.get(kind, f'values of dtype {x.dtype}')}, "
                             f"not real numbers (dtype {x.dtype})", hint="give a numeric array (float32 preferred)")
        if kind == "f" and x.dtype.itemsize > 8:  # long double: torch has no such dtype
            x = x.astype(np.float64)
        x = torch.from_numpy(x.astype(np.int64) if x.dtype in (np.uint16, np.uint32) else x)
    elif not isinstance(x, Tensor):
        try:
            x = torch.as_tensor(x)
        except Exception as e:  # noqa: BLE001 - strings, ragged lists, objects
            raise InputError(f"{what}: a {type(x).__name__} that cannot be converted to a tensor "
                             f"({type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]})",
                             hint="give a numeric array or tensor (float32 preferred)") from None
    if x.is_complex() or not (x.is_floating_point() or x.dtype == torch.bool or x.dtype in _TORCH_INTS):
        raise InputError(f"{what} has dtype {x.dtype}; expected real numbers (float32 preferred)")
    if x.is_floating_point():
        return x if scale is None else x * scale
    if x.dtype == torch.bool:
        x = x.to(torch.float32)
        return x if scale is None else x * scale
    if scale is not None:
        return (x.to(torch.float64) * scale).to(torch.float32)
    if x.numel():
        # min/max are not implemented for the unsigned 64-bit type
        v = x.to(torch.float64) if x.dtype == torch.uint64 else x
        lo, hi = v.min().item(), v.max().item()
        if lo < 0 or hi > 1:
            raise _int_refusal(what, x.dtype, int(lo), int(hi))
    return x.to(torch.float32)


def from_numpy(x: np.ndarray, what: str) -> Tensor:
    """A numeric ndarray as a tensor, sharing memory, dtype unchanged (`as_float` applies the policy later);
    strings, objects and the like are refused here already."""
    if x.dtype.kind in "biu" or (x.dtype.kind == "f" and x.dtype.itemsize <= 8):
        return torch.from_numpy(x)
    return as_float(x, what)


def check_finite(x: Tensor, what: str) -> None:
    """An InputError naming the first sample (row of dim 0) with NaN or Inf."""
    if not x.is_floating_point() or x.numel() == 0 or bool(torch.isfinite(x).all()):
        return
    rows = x.reshape(1, -1) if x.dim() == 0 else x.reshape(x.shape[0], -1)
    i = int((~torch.isfinite(rows).all(1)).nonzero()[0, 0])
    row = rows[i]
    bad = "NaN" if bool(torch.isnan(row).any()) else "Inf"
    raise InputError(f"{what}: sample {i} contains {bad} ({int((~torch.isfinite(row)).sum())} of {row.numel()} "
                     "values)", hint="clean or drop the non-finite samples")


# ---------------------------------------------------------------- files
def read_arrays(path: str | Path, what: str) -> dict[str | None, Array]:
    """The arrays of a data file: name -> array for .npz and dicts, {None: array} for one unnamed array.

    `what` names the file's role in errors ("inputs", "calibration"). The kind is
    recognised by content; a pickle (other than torch.save's tensors) is never loaded.
    """
    p = Path(path)
    src = f"{what} file {p}"
    if not p.exists():
        raise InputError(f"{src} does not exist", hint=ACCEPTED)
    if p.is_dir():
        raise InputError(f"{what}: {p} is a folder, not a file", hint=ACCEPTED)
    if not p.is_file():
        raise InputError(f"{what}: {p} is not a regular file (a device, pipe or socket)", hint=ACCEPTED)
    try:
        with open(p, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise InputError(f"cannot read {src}: {e.strerror}") from None
    if not head:
        raise InputError(f"{src} is empty (0 bytes)", hint=ACCEPTED)
    try:
        if head.startswith(_NPY_MAGIC):
            with open(p, "rb") as f:
                _check_npy_header(f, "the array", src)
            return {None: np.load(p, allow_pickle=False)}
        if head.startswith(_ZIP_MAGICS):
            return _read_zip(p, src)
    except SnncError:
        raise
    except Exception as e:  # noqa: BLE001 - numpy/zipfile/torch on a damaged file: ValueError, OSError, EOFError
        raise InputError(f"{src} is damaged or truncated ({type(e).__name__}: "
                         f"{(str(e).splitlines() or [''])[0][:200]})", hint=ACCEPTED) from None
    if head[:1] == b"\x80":
        raise InputError(f"{src} is a Python pickle (pickle.dump, or torch.save before torch 1.6); snnc does not "
                         "unpickle data files", hint=ACCEPTED)
    raise InputError(f"{src} is not a .npy, .npz or .pt file (its content matches none of them)", hint=ACCEPTED)


def _check_npy_header(f, name: str, src: str) -> None:
    """Read a .npy header: refuse object arrays and claims over the size limit before any data is read."""
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read(f)
    if dtype.hasobject:
        raise InputError(f"{src}: {name} holds Python objects (dtype object); snnc reads numeric arrays only and "
                         "does not unpickle", hint=ACCEPTED)
    check_tensor(name, shape, dtype.itemsize, src)


def _read_zip(p: Path, src: str) -> dict[str | None, Array]:
    with zipfile.ZipFile(p) as z:
        names = z.namelist()
        if names and all(n.endswith(".npy") for n in names):
            for n in names:
                with z.open(n) as f:
                    _check_npy_header(f, f"array '{n[:-4]}'", src)
            with np.load(p, allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
    if any(n.endswith("data.pkl") for n in names):
        return _read_torch(p, src)
    if not names:
        raise InputError(f"{src} is an empty .npz archive (no arrays)", hint=ACCEPTED)
    raise InputError(f"{src} is a zip archive that is neither an .npz (numpy.savez) nor a .pt (torch.save)",
                     hint=ACCEPTED)


def _read_torch(p: Path, src: str) -> dict[str | None, Array]:
    try:  # weights_only: tensors and plain containers, never arbitrary objects; mmap: no claim beyond the file
        obj = torch.load(p, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError:
        raise InputError(f"{src} holds pickled Python objects, not tensors; snnc does not unpickle them",
                         hint=ACCEPTED) from None
    if isinstance(obj, Tensor):
        return {None: obj.detach()}
    if isinstance(obj, dict) and obj and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        return {k: v.detach() for k, v in obj.items()}
    raise InputError(f"{src} holds a {type(obj).__name__}, not a tensor or a dict name -> tensor", hint=ACCEPTED)
