"""Backends: each `backends/<target>/` exposes `Options`, `legalize` and `lower`."""

from __future__ import annotations

import importlib

from snnc.errors import LoweringError

TARGETS = ("cpu",)


def get(target: str):
    """The backend module for `target`."""
    if target not in TARGETS:
        raise LoweringError(f"unknown target {target!r}; known targets: {', '.join(TARGETS)}")
    return importlib.import_module(f"snnc.backends.{target}")
