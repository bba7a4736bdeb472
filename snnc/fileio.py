"""Atomic file and folder writes: a reader sees the old artifact or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path to write; rename it onto `path` on success.

    On any exception (Ctrl-C included) the temporary is removed and `path` is
    left untouched.
    """
    dst = Path(path)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent))
    target = tmp / dst.name
    if directory:
        target.mkdir()
    try:
        yield target
        if directory:
            if dst.exists() and not dst.is_dir():
                raise FileExistsError(f"{dst} exists and is not a folder")
            old = None
            if dst.exists():
                old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
                os.replace(dst, old)
            os.replace(target, dst)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        else:
            with open(target, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(target, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
