"""The artifact format, reading side: a folder with a manifest.json saying what is inside.

The manifest records the sha256 and size of every other file in the folder
(`checksums`); `Artifact.open` checks them, and that every file the manifest names
is a plain name inside the folder, before any file is used. The writing side
(write_manifest, write_artifact) is snnc.backends.artifact; running an artifact is
snnc.runtime.protocol.open_session (dispatched by the manifest's target).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from snnc.core.errors import MalformedFileError, UnsafeFileReferenceError
from snnc.ir.graph import Graph
from snnc.ir.serialize import load

FORMAT_NAME = "snnc-artifact"  # the manifest's "format"
ARTIFACT_FORMAT_VERSION = 2  # 2: `checksums` of every file
MANIFEST = "manifest.json"
GRAPH_FILE = "graph.snnir"
# manifest fields that name a file of the folder ("files" is a mapping of them)
PATH_FIELDS = ("graph", "netx", "nir")


@dataclass(frozen=True)
class Artifact:
    """A compiled model on disk: `path` is a folder holding `manifest.json` and the target's files."""

    path: Path
    target: str
    manifest: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def open(path: Path) -> "Artifact":
        """Read and check an artifact: its manifest, then every file's size and sha256."""
        path = Path(path)
        if path.is_file() and path.suffix == ".snnir":
            return Artifact(path, "snnir", {"graph": path.name})
        mf = path / MANIFEST
        if not mf.is_file():
            raise MalformedFileError(f"{path} is not an snnc artifact (no {MANIFEST})",
                                     hint="compile a model first: snnc compile MODEL -o OUT")
        manifest = read_manifest(mf)
        try:
            target = manifest["target"]
            version = int(manifest["format_version"])
        except (ValueError, KeyError, TypeError) as e:
            raise MalformedFileError(f"{mf}: corrupt manifest: {type(e).__name__}: {e}") from None
        if version != ARTIFACT_FORMAT_VERSION:
            raise MalformedFileError(f"{mf}: artifact format version {version} is not supported "
                                     f"(this snnc reads {ARTIFACT_FORMAT_VERSION})",
                                     hint="compile the model again with this snnc")
        verify_files(path, manifest)
        return Artifact(path, target, manifest)

    def graph(self) -> Graph:
        """The IR graph inside (every snnc artifact keeps it, for inspection and reference runs)."""
        if self.target == "snnir":
            return load(self.path)
        return load(self.path / self.manifest.get("graph", GRAPH_FILE))


def read_manifest(mf: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(mf.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise MalformedFileError(f"{mf}: corrupt manifest: {e}") from None
    if not isinstance(manifest, dict):
        raise MalformedFileError(f"{mf}: corrupt manifest: not a JSON object")
    return manifest


def file_digest(path: Path) -> tuple[str, int]:
    """(sha256 hex, size in bytes) of a file."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _plain_name(name: object) -> bool:
    """A relative path of ordinary names: not absolute, no '..' or '.', no drive or backslash."""
    if not isinstance(name, str) or not name or "\\" in name or "\0" in name:
        return False
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() or PureWindowsPath(name).drive:
        return False
    parts = name.split("/")
    return all(p not in ("", ".", "..") for p in parts)


def _check_member(folder: Path, name: object, where: str, mf: Path) -> Path:
    """`folder/name` when `name` is a plain name of a regular file inside the folder (no symlink on the way)."""
    if not _plain_name(name):
        raise UnsafeFileReferenceError(f"{mf}: {where} names {name!r}, which is not a plain file name inside "
                                       "the artifact folder (absolute, '..' or empty)",
                                       hint="an artifact's files must all be inside its folder")
    p = folder
    for part in str(name).split("/"):
        p = p / part
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            raise MalformedFileError(f"{mf}: {where}: file {name} is missing from the artifact",
                                     hint="compile the model again") from None
        if stat.S_ISLNK(st.st_mode):
            raise UnsafeFileReferenceError(f"{mf}: {where}: {name} is a symbolic link (to {os.readlink(p)}); "
                                           "an artifact's files must be plain files inside its folder")
    if not stat.S_ISREG(st.st_mode):
        raise MalformedFileError(f"{mf}: {where}: {name} is not a regular file")
    return p


def named_files(manifest: dict[str, Any]) -> dict[str, object]:
    """The manifest's file references: {'graph': 'graph.snnir', 'files.onnx': 'model.onnx', ...}."""
    refs: dict[str, object] = {k: manifest[k] for k in PATH_FIELDS if k in manifest}
    files = manifest.get("files")
    if isinstance(files, dict):
        refs.update({f"files.{k}": v for k, v in files.items()})
    elif files is not None:
        refs["files"] = files
    return refs


def verify_files(folder: Path, manifest: dict[str, Any]) -> None:
    """Check every checksummed file (plain name, size, sha256) and that every named file is checksummed."""
    mf = folder / MANIFEST
    sums = manifest.get("checksums")
    if not isinstance(sums, dict) or not sums:
        raise MalformedFileError(f"{mf}: corrupt manifest: no 'checksums' of the artifact's files",
                                 hint="compile the model again")
    for name, rec in sorted(sums.items()):
        p = _check_member(folder, name, f"checksums[{name!r}]", mf)
        if not (isinstance(rec, dict) and isinstance(rec.get("sha256"), str) and isinstance(rec.get("size"), int)):
            raise MalformedFileError(f"{mf}: corrupt manifest: checksums[{name!r}] needs 'sha256' and 'size'")
        size = os.lstat(p).st_size
        if size != rec["size"]:
            how = "truncated" if size < rec["size"] else "longer than written"
            raise MalformedFileError(f"{folder / name}: the artifact's file is {how} ({size} bytes, the manifest "
                                     f"records {rec['size']})", hint="compile the model again")
        if file_digest(p)[0] != rec["sha256"]:
            raise MalformedFileError(f"{folder / name}: the artifact's file was modified or is corrupt (its "
                                     "sha256 differs from the manifest's)", hint="compile the model again")
    for where, name in named_files(manifest).items():
        _check_member(folder, name, f"field {where!r}", mf)
        if name not in sums:
            raise MalformedFileError(f"{mf}: field {where!r} names {name}, which has no checksum in the manifest")


def is_artifact_folder(path: Path) -> bool:
    """Whether `path` is a folder snnc may replace: an artifact's, holding only the files its manifest lists.

    Its checksums need not match (a corrupt artifact may be compiled again), but a
    file the manifest does not list (a user's note put in the folder) keeps it.
    """
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return False
        manifest = read_manifest(path / MANIFEST)
    except (OSError, MalformedFileError):
        return False
    if manifest.get("format") != FORMAT_NAME or not isinstance(manifest.get("target"), str):
        return False
    sums = manifest.get("checksums")
    listed = set(sums) if isinstance(sums, dict) else \
        {v for v in named_files(manifest).values() if isinstance(v, str)}  # format 1: no checksums
    present = {str(p.relative_to(path).as_posix()) for p in path.rglob("*") if not p.is_dir() or p.is_symlink()}
    dirs = {str(p.relative_to(path).as_posix()) for p in path.rglob("*") if p.is_dir() and not p.is_symlink()}
    return present <= listed | {MANIFEST} and all(any(n.startswith(d + "/") for n in listed) for d in dirs)


def checksums(folder: Path) -> dict[str, dict[str, Any]]:
    """{relative name: {'sha256', 'size'}} of every file under `folder` but the manifest, sorted by name."""
    out = {}
    for p in sorted(folder.rglob("*")):
        name = p.relative_to(folder).as_posix()
        if name == MANIFEST or p.is_dir():
            continue
        if p.is_symlink() or not p.is_file():
            raise MalformedFileError(f"{p}: an artifact may hold only regular files")
        digest, size = file_digest(p)
        out[name] = {"sha256": digest, "size": size}
    return out
