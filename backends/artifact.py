"""Artifacts: what a backend writes, a folder with a manifest.json saying what is inside."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snnc.errors import MalformedFileError

ARTIFACT_FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Artifact:
    """A compiled model on disk: `path` is a folder holding `manifest.json` and the target's files."""

    path: Path
    target: str
    manifest: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def open(path: Path) -> "Artifact":
        path = Path(path)
        if path.is_file() and path.suffix == ".snnir":
            return Artifact(path, "snnir", {"graph": path.name})
        mf = path / MANIFEST
        if not mf.is_file():
            raise MalformedFileError(f"{path} is not an snnc artifact (no {MANIFEST})",
                                     hint="compile a model first: snnc compile MODEL -o OUT")
        try:
            manifest = json.loads(mf.read_text())
            target = manifest["target"]
            version = int(manifest["format_version"])
        except (ValueError, KeyError, TypeError) as e:
            raise MalformedFileError(f"{mf}: corrupt manifest: {e}") from None
        if version != ARTIFACT_FORMAT_VERSION:
            raise MalformedFileError(f"{mf}: artifact format version {version} is not supported "
                                     f"(this snnc reads {ARTIFACT_FORMAT_VERSION})")
        return Artifact(path, target, manifest)

    def graph(self):
        """The IR graph inside (every snnc artifact keeps it, for inspection and reference runs)."""
        from snnc.ir.serialize import load

        if self.target == "snnir":
            return load(self.path)
        return load(self.path / self.manifest.get("graph", "graph.snnir"))

    def session(self, **kwargs):
        """A runnable session for this artifact: the Loihi emulation for 'lava', else the CPU runtime."""
        if self.target == "lava":
            from snnc.runtime.loihi import LoihiSession

            return LoihiSession(self, **kwargs)
        from snnc.runtime.session import Session

        return Session(self, **kwargs)


def write_manifest(folder: Path, target: str, graph, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    from snnc import __version__

    types = graph.types
    manifest = {
        "format": "snnc-artifact",
        "format_version": ARTIFACT_FORMAT_VERSION,
        "snnc_version": __version__,
        "target": target,
        "graph": "graph.snnir",
        "inputs": [{"name": op.name, "type": str(op.type)} for op in graph.inputs],
        "outputs": [{"name": op.name, "type": str(types[op.name])} for op in graph.outputs],
        **(extra or {}),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def write_ir_artifact(graph, target: str, output, extra: dict[str, Any] | None = None) -> Artifact:
    """An artifact that is the IR itself (cpu, triton): graph.snnir + manifest.json, written atomically."""
    from snnc.errors import LoweringError
    from snnc.fileio import atomic_path
    from snnc.ir.serialize import save

    if output is None:
        raise LoweringError(f"the {target} target needs an output folder")
    out = Path(output)
    with atomic_path(out, directory=True) as tmp:
        save(graph, tmp / "graph.snnir")
        manifest = write_manifest(tmp, target, graph, extra)
    return Artifact(out, target, manifest)
