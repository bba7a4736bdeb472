"""The session protocol every runtime follows, and the registry that opens an artifact by its target.

    session = open_session(Artifact.open(path), **options)   # the runtime registered for its target
    out = session.run(x, T=32)                                # [T, N, *] (or a dict name -> [T, N, *])
    labels = session.predict(x, T=32)

A runtime registers its session class (or any callable taking the artifact and
keyword options) for the targets it runs, when its module is imported:
`register_session("lava", LoihiSession)`. snnc.runtime's __init__ imports every
built-in runtime, so the registry is complete whenever this module is usable.
The artifact format (snnc.ir.formats.artifact) names no runtime.

What a session offers beyond the protocol is its own: the reference Session also
streams (`step`, `reset`, `snapshot`), probes and estimates memory; LoihiSession
runs integer NetX networks and exposes them (`network`).
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

from torch import Tensor

from snnc.core.errors import InputError
from snnc.ir.formats.artifact import Artifact
from snnc.ir.graph import Graph


@runtime_checkable
class RuntimeSession(Protocol):
    """A compiled network ready to run. Every runtime's session has these members."""

    graph: Graph | None  # the IR graph it runs (None when it runs a target file that has none)

    def run(self, inputs: Any, T: int | None = None) -> Tensor | dict[str, Tensor]:
        """Run T steps (None: what the inputs or the artifact say) from the initial state; outputs [T, N, *]."""

    def predict(self, inputs: Any, T: int | None = None) -> Tensor:
        """Class labels [N]: the argmax of the (first) output over time."""


SessionOpener = Callable[..., RuntimeSession]  # opener(artifact, **options) -> session

SESSION_OPENERS: dict[str, SessionOpener] = {}


def register_session(target: str, opener: SessionOpener) -> None:
    """Open artifacts of `target` with `opener(artifact, **options)`; a target has one runtime."""
    known = SESSION_OPENERS.get(target)
    if known is not None and known is not opener:
        raise ValueError(f"target {target!r} already opens in {known.__module__}.{known.__qualname__}")
    SESSION_OPENERS[target] = opener


def open_session(artifact: Artifact, **options: Any) -> RuntimeSession:
    """The session of the runtime registered for the artifact's target."""
    opener = SESSION_OPENERS.get(artifact.target)
    if opener is None:
        raise InputError(f"{artifact.path}: no runtime runs '{artifact.target}' artifacts "
                         f"(runtimes exist for: {', '.join(sorted(SESSION_OPENERS))})",
                         hint="compile the model for one of these targets")
    return opener(artifact, **options)
