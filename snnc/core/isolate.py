"""Run a function in a helper process, under a time limit, so that a hang in C code cannot stop snnc.

C code that loops forever holds the GIL and ignores signals (the HDF5 library
does on some damaged files), so no Python-side timer can stop it in-process.
`run_isolated(fn, *args, seconds=...)` runs `fn(*args)` in a helper process and
waits for its pickled result in `select`, where Ctrl-C raises KeyboardInterrupt
at once. On a timeout, a crash or Ctrl-C the helper is killed and the next call
starts another.

The helper is a fork of this process made at the first call, so it already has
every module imported, and it serves later calls too: a call costs the function
and a pipe round trip, not a fork. Each call carries this process's environment
variables and working folder, so the helper sees them as a fresh fork would.
The helper ignores Ctrl-C (this process decides), arms `alarm()` during each
call so that it dies by itself should this process be killed meanwhile, and
exits when this process closes the pipe. Where `os.fork` is missing (Windows),
`fn` runs in-process without the bound.
"""

from __future__ import annotations

import math
import os
import pickle
import select
import signal
import struct
import threading
import time
import warnings
from typing import Any, Callable

_FRAME = struct.Struct("<QQ")  # length of the pickle, number of out-of-band buffers
_LENGTH = struct.Struct("<Q")


class ChildTimeout(Exception):
    """The helper did not deliver the result within the time limit (it was killed)."""


class ChildDied(Exception):
    """The helper exited (a crash in C code) before delivering the result."""


class ChildFailed(Exception):
    """`fn` raised in the helper, or its result could not be pickled (the message says which)."""


def can_isolate() -> bool:
    return hasattr(os, "fork")


def run_isolated(fn: Callable[..., Any], *args: Any, seconds: float) -> Any:
    """`fn(*args)`'s return value, computed in the helper process within `seconds`.

    `fn` and its arguments must pickle (a module-level function), and so must its result.
    Raises ChildTimeout, ChildDied, ChildFailed (an exception in `fn`: it should catch and
    return those it means to report), or KeyboardInterrupt (Ctrl-C; the helper is killed first).
    """
    global _helper
    if not can_isolate():
        return fn(*args)
    with _lock:
        if _helper is None or not _helper.alive():
            _helper = _Helper()
        helper, _helper = _helper, None  # back in place only after a clean answer
        ok, value = helper.call(fn, args, seconds)
        _helper = helper
    if not ok:
        raise ChildFailed(value)
    return value


_lock = threading.Lock()
_helper: "_Helper | None" = None


def _forget_helper() -> None:
    global _helper, _lock
    _helper, _lock = None, threading.Lock()  # a forked child has its own; the parent's is not its to use


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_helper)


class _Helper:
    def __init__(self):
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        with warnings.catch_warnings():  # Python >= 3.12 warns about fork() in a multi-threaded process; the
            warnings.simplefilter("ignore", DeprecationWarning)  # helper runs only `fn`, never other threads' code
            pid = os.fork()
        if pid == 0:  # the helper: never returns
            os.close(req_w)
            os.close(res_r)
            _serve(req_r, res_w)
        os.close(req_r)
        os.close(res_w)
        self.pid, self.requests, self.results = pid, req_w, res_r

    def alive(self) -> bool:
        """Whether the helper still runs (one that ended, killed from outside, is reaped and closed)."""
        if os.waitpid(self.pid, os.WNOHANG) == (0, 0):
            return True
        for fd in (self.requests, self.results):
            os.close(fd)
        return False

    def call(self, fn, args, seconds: float) -> tuple[bool, Any]:
        try:
            _send(self.requests, (fn, args, seconds, dict(os.environ), _cwd()))
            answer = _receive(self.results, time.monotonic() + seconds)
        except OSError:  # the helper is gone (EPIPE, EBADF)
            answer = None
        except BaseException:  # ChildTimeout, KeyboardInterrupt
            self.close()
            raise
        if answer is None:
            status = self.close()
            raise ChildDied(_describe(status))
        return answer

    def close(self) -> int:
        """Kill the helper; its wait status."""
        for fd in (self.requests, self.results):
            os.close(fd)
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return os.waitpid(self.pid, 0)[1]


def _serve(requests: int, results: int) -> None:
    import faulthandler
    import gc

    try:
        faulthandler.disable()  # a crash is reported by the parent, without a dump of this process's stack
        gc.freeze()  # the parent's objects stay put: collecting its garbage here would run its finalizers
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the parent decides
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        while True:
            request = _receive(requests, None)
            if request is None:
                break  # the parent closed the pipe: it is gone or done with us
            fn, args, seconds, environ, cwd = request
            signal.alarm(max(1, math.ceil(seconds)) + 5)  # dies by itself should the parent be gone
            try:
                if environ != os.environ:  # as if forked now: the settings (SNNC_*) and folder of the call
                    os.environ.clear()
                    os.environ.update(environ)
                if cwd is not None and cwd != _cwd():
                    os.chdir(cwd)
                answer = (True, fn(*args))
            except BaseException as e:  # noqa: BLE001 - reported to the parent, which decides
                answer = (False, f"{type(e).__name__}: {e}")
            try:
                _send(results, answer)
            except Exception as e:  # noqa: BLE001 - unpicklable or too deeply nested: nothing was sent yet
                _send(results, (False, f"the result cannot be sent back: {type(e).__name__}: {e}"))
            signal.alarm(0)
            del request, fn, args, answer  # a large result is not kept while idle
    finally:
        os._exit(0)  # no atexit handlers, no flushing of the parent's buffers or HDF5 files


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # the folder was removed
        return None


def _send(fd: int, obj: Any) -> None:
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    raws = [b.raw() for b in buffers]
    _write(fd, _FRAME.pack(len(data), len(raws)) + b"".join(_LENGTH.pack(len(m)) for m in raws) + data)
    for m in raws:
        _write(fd, m)


def _write(fd: int, data) -> None:
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view):]


def _receive(fd: int, deadline: float | None):
    """The next unpickled message; None when the pipe closed; ChildTimeout past `deadline`."""
    head = _read_exact(fd, bytearray(_FRAME.size), deadline)
    if head is None:
        return None
    size, count = _FRAME.unpack(head)
    lengths = _read_exact(fd, bytearray(_LENGTH.size * count), deadline)
    data = _read_exact(fd, bytearray(size), deadline) if lengths is not None else None
    buffers = [_read_exact(fd, bytearray(n), deadline) for (n,) in _LENGTH.iter_unpack(lengths or b"")]
    if data is None or any(b is None for b in buffers):
        return None
    return pickle.loads(data, buffers=buffers)  # arrays are rebuilt on the received buffers, not copied


def _read_exact(fd: int, buf: bytearray, deadline: float | None) -> bytearray | None:
    view, pos = memoryview(buf), 0
    while pos < len(buf):
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise ChildTimeout()
        n = os.readv(fd, [view[pos:]])
        if n == 0:
            return None
        pos += n
    return buf


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            return f"killed by {signal.Signals(sig).name}"
        except ValueError:
            return f"killed by signal {sig}"
    return f"exited with status {os.waitstatus_to_exitcode(status)} before answering"
