"""Where in the user's code a traced node came from: 'file.py:12', for error messages.

Both capture paths record Python stack traces (torch.fx: `node.stack_trace`
with `record_stack_traces`; torch.export: `node.meta["stack_trace"]`). The
innermost frame outside torch and snnc's own frontends is the user's line
(a model library such as SpikingJelly counts as the user's code).
"""

from __future__ import annotations

import inspect
import linecache
import os
import re
import traceback

import torch

_FRAME = re.compile(r'File "([^"]+)", line (\d+)')
_SKIP = (os.path.dirname(torch.__file__) + os.sep, os.path.dirname(os.path.abspath(__file__)) + os.sep)


def _user(path: str) -> bool:
    return not path.startswith("<") and not os.path.abspath(path).startswith(_SKIP)


def _short(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path
    return path if rel.startswith("..") else rel


def _user_frame(stack_trace: str | None) -> tuple[str, int] | None:
    """(path, line) of the innermost user frame of a recorded stack trace, or None."""
    frames = [(f, int(n)) for f, n in _FRAME.findall(stack_trace or "") if _user(f)]
    return frames[-1] if frames else None


def from_stack_trace(stack_trace: str | None) -> str | None:
    """'file:line' of the innermost user frame of a recorded stack trace, or None."""
    frame = _user_frame(stack_trace)
    return None if frame is None else f"{_short(frame[0])}:{frame[1]}"


def statement_at(stack_trace: str | None) -> str | None:
    """The source text of the innermost user frame's line of a recorded stack trace, stripped, or None."""
    frame = _user_frame(stack_trace)
    return (linecache.getline(*frame).strip() or None) if frame is not None else None


def of_function(fn) -> str | None:
    """'file:line' where function `fn` is defined (a library's forward, for a refusal), or None."""
    try:
        path, line = inspect.getsourcefile(fn), inspect.getsourcelines(fn)[1]
    except (OSError, TypeError):
        return None
    return f"{_short(path)}:{line}" if path else None


def from_exception(exc: BaseException) -> str | None:
    """'file:line' of the innermost user frame where `exc` was raised, or None."""
    frames = [fr for fr in traceback.extract_tb(exc.__traceback__) if _user(fr.filename)]
    if not frames:
        return None
    return f"{_short(frames[-1].filename)}:{frames[-1].lineno}"
