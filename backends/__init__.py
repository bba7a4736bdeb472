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


def get(target: str):
    """The backend module for `target`."""
    if target not in TARGETS:
        raise LoweringError(f"unknown target {target!r}; known targets: {', '.join(TARGETS)}")
    if target not in available():
        raise LoweringError(f"target {target!r} is not available in this build of snnc",
                            hint=f"available targets: {', '.join(available())}")
    return importlib.import_module(f"snnc.backends.{target}")
