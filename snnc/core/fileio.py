"""Writing outputs: atomic, never over what is not snnc's, safe with concurrent writers.

A write builds its result in a hidden temporary folder beside the destination,
`.NAME.snnc-PID-XXXXXXXX.tmp`, and moves it into place when it is complete: a
reader sees the old output or the new one, never half of one.

What may be replaced is decided before anything is written and again just before
the move. A missing path is created. An existing one is replaced only when its
writer's `replaces(path)` recognises it as snnc's own output (an artifact folder
with a valid manifest, a `.snnir` file read by content, ...) or is an empty folder;
anything else (a user's folder, a file, a symbolic link) is refused with an
`OutputPathError` unless `force=True` (`--force`). A device, pipe or socket is
refused even then, and is never opened.

Concurrent writers to one path all succeed and the last complete one wins: a
folder is swapped into place with one atomic exchange (Linux `renameat2`), or,
where that is missing, the old folder is moved aside and the move retried.
Temporary folders left by killed writers (their PID is in the name) are removed
by the next write to the same path; a live writer's are never touched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

from snnc.core.errors import MalformedFileError, OutputPathError

Recognizer = Callable[[Path], bool]
FORCE_HINT = "choose a new path (or an empty folder), or pass --force (force=True in Python) to replace it"
_LEGACY_STALE_S = 3600  # temporaries of older snnc versions carry no PID: removed once this old
_WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.ENAMETOOLONG,
                 getattr(errno, "EDQUOT", errno.ENOSPC)}


LFS_POINTER = b"version https://git-lfs.github.com/spec/"


def refuse_lfs_pointer(path: str | os.PathLike) -> None:
    """MalformedFileError when `path` is a Git LFS pointer (a few lines of text standing in for the file)."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = f.read(len(LFS_POINTER))
    except OSError:
        return  # the reader that follows reports it
    if head == LFS_POINTER:
        raise MalformedFileError(f"{p} is a Git LFS pointer ({p.stat().st_size} bytes of text), not the file itself",
                                 hint="fetch the real file: git lfs pull (in the repository it came from)")


def any_regular_file(path: Path) -> bool:
    """A recognizer that accepts any regular file (for caches and other files only snnc writes)."""
    return stat.S_ISREG(os.lstat(path).st_mode)


def npz_with_keys(keys: Iterable[str]) -> Recognizer:
    """A recognizer for an .npz file holding exactly the arrays `keys` (an earlier run's outputs)."""
    want = {f"{k}.npy" for k in keys}

    def recognize(path: Path) -> bool:
        import zipfile

        try:
            with open_regular(path) as f, zipfile.ZipFile(f) as z:
                return set(z.namelist()) == want
        except (OSError, zipfile.BadZipFile, ValueError):
            return False

    return recognize


def open_regular(path: Path):
    """Open `path` for reading only if it is a regular file (a FIFO or device is never opened)."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped after the lstat
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return os.fdopen(fd, "rb")


def _kind(mode: int) -> str | None:
    """The name of a special file type (never written), or None for a file, folder or link."""
    for test, name in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return None if (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)) else "a special file"


def _entries(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return ["?"]


def _shown(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _identity(path: Path) -> tuple | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as e:  # a parent that is a file, a path too long, no permission to look
        raise OutputPathError(f"cannot write output {path}: {e.strerror or e}") from None
    return st.st_dev, st.st_ino, st.st_mode, st.st_ctime_ns


def check_destination(path: str | os.PathLike, *, directory: bool = False, replaces: Recognizer | None = None,
                      force: bool = False, what: str | None = None) -> Path:
    """Raise OutputPathError unless `path` may be written; return it as an absolute path.

    `replaces(path)` says whether an existing file or folder is snnc's own output
    of this kind (then it is replaced). Without it, an existing regular file may be
    replaced (file outputs) and only an empty folder may be (folder outputs).
    `force` allows replacing anything but a device, pipe or socket.
    """
    dst = Path(os.path.abspath(os.fspath(path)))
    what = what or ("folder" if directory else "file")
    if dst.name in ("", ".", ".."):
        raise OutputPathError(f"output {dst} is not a path snnc can write a {what} to", hint=FORCE_HINT)
    confirmed = False
    for _ in range(100):
        seen = _identity(dst)
        try:
            _judge(dst, directory, replaces, force, what)
            return dst
        except OutputPathError:
            if _identity(dst) == seen:
                if confirmed:
                    raise
                # The same twice running before refusing: a concurrent writer may have moved the
                # output aside and put a new one in while we looked, and a new folder can reuse the
                # inode number of a removed one.
                confirmed = True
            else:
                confirmed = False  # another writer replaced it while we looked: look again
    raise OutputPathError(f"cannot write output {dst}: other writers kept replacing it")


def _judge(dst: Path, directory: bool, replaces: Recognizer | None, force: bool, what: str) -> None:
    try:
        st = os.lstat(dst)
    except FileNotFoundError:
        return
    special = _kind(st.st_mode)
    if special is None and stat.S_ISLNK(st.st_mode):
        with contextlib.suppress(OSError):
            special = _kind(os.stat(dst).st_mode)
            special = special and f"a symbolic link to {special}"
    if special:
        raise OutputPathError(f"output {dst} is {special}: snnc never writes to devices, pipes or sockets "
                              "(not even with --force)", hint="give the path of a new file or folder")
    if force:
        return
    if stat.S_ISLNK(st.st_mode):
        raise OutputPathError(f"output {dst} is a symbolic link (to {os.readlink(dst)}): refusing to replace it",
                              hint="choose a new path, or pass --force to replace the link itself "
                                   "(what it points to is left alone)")
    if stat.S_ISDIR(st.st_mode):
        names = _entries(dst)
        if (directory and not names) or (replaces is not None and replaces(dst)):
            return
        kind = "a non-empty folder" if names else "a folder"
        raise OutputPathError(f"output {dst} is {kind} that is not a snnc {what}"
                              + (f" (it holds {_shown(names)})" if names else "") + ": refusing to replace it",
                              hint=FORCE_HINT)
    ok = (replaces(dst) if replaces is not None else not directory) if stat.S_ISREG(st.st_mode) else False
    if not ok:
        kind = "a file" if stat.S_ISREG(st.st_mode) else "not a regular file"
        raise OutputPathError(f"output {dst} is {kind} that is not a snnc {what}: refusing to replace it",
                              hint=FORCE_HINT)


# ------------------------------------------------------------------ temporaries of killed writers
def _temp_prefix(name: str) -> str:
    return f".{name}.snnc-"


def _alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # on Windows os.kill would end the process: keep everything
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: another user's live process
        return True
    return True


def clean_stale(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries that killed writers left beside `path`; return what was removed.

    Only those whose writer process is gone (or, for older snnc's names without a PID,
    that are over an hour old). If `path` itself is missing because a writer died
    between moving the old output aside and moving the new one in, the old output is
    put back first.
    """
    dst = Path(os.path.abspath(os.fspath(path)))
    ours = re.compile(re.escape(_temp_prefix(dst.name)) + r"(\d+)-[A-Za-z0-9_]+\.tmp")
    legacy = re.compile(re.escape(f".{dst.name}.") + r"(?:[A-Za-z0-9_]{8}\.tmp|old-(\d+))")
    removed = []
    try:
        names = os.listdir(dst.parent)
    except OSError:
        return removed
    for name in sorted(names):
        entry = dst.parent / name
        if m := ours.fullmatch(name):
            stale = not _alive(int(m.group(1)))
        elif m := legacy.fullmatch(name):
            try:
                stale = (not _alive(int(m.group(1)))) if m.group(1) else \
                    time.time() - os.lstat(entry).st_mtime > _LEGACY_STALE_S
            except OSError:
                continue
        else:
            continue
        if not stale:
            continue
        old = entry / "old"
        if name.endswith(".tmp") and os.path.lexists(old) and not os.path.lexists(dst):
            with contextlib.suppress(OSError):
                os.rename(old, dst)
        if os.path.isdir(entry) and not os.path.islink(entry):
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry)
        removed.append(entry)
    return removed


# ------------------------------------------------------------------ the atomic write
def _exchange_function():
    """libc's renameat2 (Linux), or None."""
    if not hasattr(os, "sched_getaffinity"):  # not Linux
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_renameat2 = _exchange_function()
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap `a` and `b` (both must exist); False where the system cannot."""
    if _renameat2 is None:
        return False
    import ctypes

    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _fsync_tree(root: Path) -> None:
    if os.name == "nt":
        return
    paths = [root] if root.is_file() else [Path(d) / f for d, _, fs in os.walk(root) for f in fs]
    for p in paths:
        with open(p, "rb") as f:
            os.fsync(f.fileno())
    for d in ([root] if root.is_dir() else []) + [root.parent]:
        with contextlib.suppress(OSError):
            fd = os.open(d, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _commit(new: Path, dst: Path, tmp: Path, recheck: Callable[[], object]) -> None:
    """Move `new` onto `dst`, whatever writers beside this one do meanwhile (the last one wins)."""
    for attempt in range(1000):
        recheck()
        try:
            if new.is_dir():
                os.rename(new, dst)  # onto a missing path or an empty folder
            else:
                os.replace(new, dst)  # onto a missing path, a file or a link
            return
        except OSError as e:
            # dst is a non-empty folder (ENOTEMPTY/EEXIST), or a folder/file where the other is wanted
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR, errno.ENOTDIR):
                raise
        try:
            if _exchange(new, dst):
                return  # `new` now names the previous output, removed with `tmp`
            os.rename(dst, tmp / f"old{attempt}" if attempt else tmp / "old")  # no exchange: move it aside
        except FileNotFoundError:
            pass  # another writer moved it first: try again
    raise OutputPathError(f"cannot write output {dst}: other writers kept replacing it")


def _is_write_error(e: OSError, tmp: Path) -> bool:
    return e.errno in _WRITE_ERRNOS or str(tmp) in str(e) or str(tmp) in str(getattr(e, "filename", "") or "")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False, replaces: Recognizer | None = None,
                force: bool = False, what: str | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; move it onto `path` when the block ends without an error.

    `path` is checked first (see `check_destination`: `replaces`, `force`, `what`).
    On any exception (Ctrl-C included) the temporary is removed and `path` is left
    untouched. An OSError while writing (a full disk, a read-only folder) becomes an
    OutputPathError naming `path`.
    """
    dst = check_destination(path, directory=directory, replaces=replaces, force=force, what=what)
    clean_stale(dst)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{_temp_prefix(dst.name)}{os.getpid()}-", suffix=".tmp", dir=dst.parent))
    except OSError as e:
        raise OutputPathError(f"cannot write output {dst}: {e.strerror or e}",
                              hint="check that its folder exists, is a folder and is writable") from None
    target = tmp / dst.name
    try:
        if directory:
            target.mkdir()
        try:
            yield target
            if not os.path.lexists(target):
                raise OutputPathError(f"nothing was written for output {dst}")
            _fsync_tree(target)
            _commit(target, dst, tmp, lambda: check_destination(dst, directory=directory, replaces=replaces,
                                                                 force=force, what=what))
        except OSError as e:
            if not _is_write_error(e, tmp) and str(dst) not in str(e):
                raise
            raise OutputPathError(f"cannot write output {dst}: {e.strerror or e}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cache_dir() -> Path:
    """snnc's cache folder: $SNNC_CACHE_DIR, else $XDG_CACHE_HOME/snnc, else ~/.cache/snnc."""
    base = os.environ.get("SNNC_CACHE_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"),
                                                            "snnc")
    return Path(base)
