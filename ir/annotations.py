"""Typed graph annotations: data a graph carries in `graph.meta[key]` as a frozen pydantic model.

A target's data about a graph (e.g. Loihi's quantization record, snnc.ir.ops.loihi.LoihiInfo)
is a model registered under its meta key. The .snnir codec writes it as JSON and validates it
back into the model on load, so old files holding the same fields as a plain mapping stay readable.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

ANNOTATIONS: dict[str, type[BaseModel]] = {}


def register_annotation(key: str):
    """Register a model as the type of `graph.meta[key]`."""

    def deco(cls: type[BaseModel]) -> type[BaseModel]:
        if ANNOTATIONS.get(key, cls) is not cls:
            raise RuntimeError(f"graph annotation {key!r} registered twice")
        ANNOTATIONS[key] = cls
        return cls

    return deco


def dump_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """`meta` as JSON-ready values: each annotation model as its fields (defaults left out)."""
    return {k: v.model_dump(mode="json", exclude_defaults=True) if isinstance(v, BaseModel) else v
            for k, v in meta.items()}


def load_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """`meta` read from a file: registered keys validated into their models; ValueError names a bad one."""
    out = dict(meta)
    for key, model in ANNOTATIONS.items():
        if key in out:
            try:
                out[key] = model.model_validate(out[key])
            except ValidationError as e:
                err = e.errors()[0]
                where = ".".join(map(str, (key, *err["loc"])))
                raise ValueError(f"graph meta {where}: {err['msg']} (a {model.__name__})") from None
    return out
