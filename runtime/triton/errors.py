"""Typed errors of the Triton kernel layer, in the snnc hierarchy.

`KernelInputError` is also an `snnc.core.errors.InputError` and a `ValueError`, so
callers that catch either keep working.
"""

from __future__ import annotations

from snnc.core import errors


class TritonRuntimeError(errors.SnncError):
    """Base class for errors raised by `snnc.runtime.triton`."""


class KernelInputError(TritonRuntimeError, errors.InputError, ValueError):
    """An argument of a kernel launcher has the wrong shape, dtype, device or value."""
