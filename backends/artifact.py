"""Artifacts, writing side: every backend writes its folder through `write_artifact`.

Atomically, and only over an earlier artifact (see snnc.core.fileio); the
manifest is written last and records the checksum of every file. The format
itself (names, version, checksums) and reading an artifact back are
snnc.ir.formats.artifact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from snnc.core import __version__
from snnc.core.errors import LoweringError
from snnc.core.fileio import atomic_path, check_destination
from snnc.ir.formats.artifact import (ARTIFACT_FORMAT_VERSION, FORMAT_NAME, GRAPH_FILE, MANIFEST, Artifact,
                                      checksums, is_artifact_folder)
from snnc.ir.graph import Graph
from snnc.ir.serialize import save


def write_manifest(folder: Path, target: str, graph: Graph, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write manifest.json last: what the artifact is, and the checksum of every file already in `folder`."""
    types = graph.types
    manifest = {
        "format": FORMAT_NAME,
        "format_version": ARTIFACT_FORMAT_VERSION,
        "snnc_version": __version__,
        "target": target,
        "graph": GRAPH_FILE,
        "inputs": [{"name": op.name, "type": str(op.type)} for op in graph.inputs],
        "outputs": [{"name": op.name, "type": str(types[op.name])} for op in graph.outputs],
        **(extra or {}),
        "checksums": checksums(folder),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def check_output(output, *, force: bool = False) -> Path:
    """Fail early (before any lowering work) if `output` is a path no artifact may be written to."""
    return check_destination(output, directory=True, replaces=is_artifact_folder, force=force, what="artifact")


def write_artifact(graph: Graph, target: str, output, extra: dict[str, Any] | None = None,
                   write: Callable[[Path], None] | None = None, *, force: bool = False) -> Artifact:
    """Write an artifact folder atomically: graph.snnir, the target's files (`write(folder)`), manifest.json.

    `output` may be missing, an empty folder or an earlier artifact; anything else
    is refused unless `force` (see snnc.core.fileio.atomic_path).
    """
    if output is None:
        raise LoweringError(f"the {target} target needs an output folder")
    out = Path(output)
    with atomic_path(out, directory=True, replaces=is_artifact_folder, force=force, what="artifact") as tmp:
        save(graph, tmp / GRAPH_FILE)
        if write is not None:
            write(tmp)
        manifest = write_manifest(tmp, target, graph, extra)
    return Artifact(out, target, manifest)


def write_ir_artifact(graph: Graph, target: str, output, extra: dict[str, Any] | None = None, *,
                      force: bool = False) -> Artifact:
    """An artifact that is the IR itself (cpu, triton): graph.snnir + manifest.json."""
    return write_artifact(graph, target, output, extra, force=force)
