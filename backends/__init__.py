"""Backends: each `backends/<target>/` exposes `Options`, `legalize` and `lower`."""

from __future__ import annotations

import importlib

from snnc.core.errors import LoweringError

# Every target; each has a package snnc.backends.<target> exposing Options, legalize and lower.
TARGETS = ("cpu", "triton", "lynxi", "lava", "nir")


def available() -> tuple[str, ...]:
    """The targets whose backend package is installed in this build."""
    import importlib.util

    return tuple(t for t in TARGETS if importlib.util.find_spec(f"snnc.backends.{t}") is not None)


def register_passes() -> None:
    """Import every available target package, so the passes a target owns (e.g. lava's quantize-loihi) are
    in the pass registry; a package that fails to import is reported, not fatal."""
    import warnings

    for target in available():
        try:
            importlib.import_module(f"snnc.backends.{target}")
        except Exception as e:  # noqa: BLE001 - one broken target must not hide the other passes
            warnings.warn(f"target package snnc.backends.{target} failed to import: {type(e).__name__}: {e}",
                          stacklevel=2)


def get(target: str):
    """The backend module for `target`."""
    if target not in TARGETS:
        raise LoweringError(f"unknown target {target!r}; known targets: {', '.join(TARGETS)}")
    if target not in available():
        raise LoweringError(f"target {target!r} is not available in this build of snnc",
                            hint=f"available targets: {', '.join(available())}")
    return importlib.import_module(f"snnc.backends.{target}")
