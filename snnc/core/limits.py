"""The size limit every model reader applies to a tensor a file claims, before allocating it.

A file is data from elsewhere: its header can claim a 10^12-element tensor in a
few bytes. Readers call `check_tensor` with the claimed shape first, so such a
claim fails at once with an error naming the tensor and the file instead of
allocating (or being killed by the OS). The limit is 8 GiB per tensor; set the
environment variable SNNC_MAX_TENSOR_BYTES (bytes, or with a K/M/G/T suffix) to
change it.
"""

from __future__ import annotations

import math
import os
from typing import Iterable

from snnc.core.errors import TensorTooLargeError

ENV_VAR = "SNNC_MAX_TENSOR_BYTES"
DEFAULT_MAX_TENSOR_BYTES = 8 << 30
_SUFFIXES = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_bytes(text: str) -> int:
    """'4096', '512M', '8G' -> bytes; ValueError for anything else."""
    s = str(text).strip().upper().removesuffix("IB").removesuffix("B")
    scale = _SUFFIXES.get(s[-1:], 1)
    value = float(s[:-1] if s[-1:] in _SUFFIXES else s)
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"not a positive size: {text!r}")
    return int(value * scale)


def max_tensor_bytes() -> int:
    """The current limit: SNNC_MAX_TENSOR_BYTES if set (and valid), else 8 GiB."""
    raw = os.environ.get(ENV_VAR)
    if raw:
        try:
            return parse_bytes(raw)
        except ValueError:
            pass
    return DEFAULT_MAX_TENSOR_BYTES


def mib(nbytes: float) -> str:
    """A byte count for messages: MiB, or KiB below 0.1 MiB."""
    if abs(nbytes) < (1 << 20) / 10:
        return f"{nbytes / 1024:,.1f} KiB"
    return f"{nbytes / (1 << 20):,.1f} MiB"


def check_tensor(what: str, shape: Iterable, itemsize: int, source: str) -> int:
    """The byte size of a claimed tensor; TensorTooLargeError when a dim is negative or it exceeds the limit.

    `what` names the tensor ("initializer 'fc.weight'"), `source` the file.
    """
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise TensorTooLargeError(f"{source}: {what} claims a negative dimension in shape {dims}")
    nbytes = math.prod(dims) * max(1, int(itemsize))  # Python ints: no overflow however large the claim
    limit = max_tensor_bytes()
    if nbytes > limit:
        raise TensorTooLargeError(f"{source}: {what} claims shape {dims} ({math.prod(dims):,} elements, "
                                  f"{mib(nbytes)}), over snnc's limit of {mib(limit)} per tensor",
                                  hint=f"the file is damaged or malicious; for a genuinely large model raise the "
                                       f"limit with {ENV_VAR}=<bytes>")
    return nbytes
