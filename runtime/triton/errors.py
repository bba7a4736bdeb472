"""Typed errors of the Triton kernel layer.

`KernelInputError` is also a `ValueError`, so callers that already catch bad
arguments as `ValueError` keep working.
"""

from __future__ import annotations


class TritonRuntimeError(Exception):
    """Base class for errors raised by `snnc.runtime.triton`."""


class TritonUnavailableError(TritonRuntimeError, ImportError):
    """Triton cannot be imported, or there is no device to run the kernels on."""


class KernelInputError(TritonRuntimeError, ValueError):
    """An argument of a kernel launcher has the wrong shape, dtype, device or value."""
