"""How an error's hint names an option: a Python keyword, or a flag while `snnc` runs as a command.

Errors are raised deep inside snnc (a backend's legalizer, the loader), far from
whoever called it. The `snnc` command declares its flags here for as long as a
command runs, so the same hint reads `--batch-size 16` on the command line and
`batch_size=16` in Python:

    with command_line({"batch_size": "--batch-size", "time_steps": "-T"}):
        ...  # option("batch_size", 16) == "--batch-size 16"
    option("batch_size", 16) == "batch_size=16"

A name the command line has no flag for is a target option there (`-O key=value`).
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Iterator, Mapping

_FLAGS: ContextVar[Mapping[str, str] | None] = ContextVar("snnc_cli_flags", default=None)


@contextlib.contextmanager
def command_line(flags: Mapping[str, str]) -> Iterator[None]:
    """Inside this block hints spell options as these flags (option name -> flag)."""
    token = _FLAGS.set(dict(flags))
    try:
        yield
    finally:
        _FLAGS.reset(token)


def on_command_line() -> bool:
    """True while the `snnc` command runs (hints then name flags, not keywords)."""
    return _FLAGS.get() is not None


def _py(value: object) -> str:
    # placeholders such as '<int>' stay as written; other strings are quoted as Python would
    return value if isinstance(value, str) and value.startswith("<") else repr(value)


def option(name: str, value: object = "<value>") -> str:
    """One option with a value as the user writes it: 'batch_size=16', or '--batch-size 16' / '-O name=value'
    (True for a boolean flag: 'trust_pickle=True', '--trust-pickle')."""
    flags = _FLAGS.get()
    if flags is None:
        return f"{name}={_py(value)}"
    flag = flags.get(name)
    if flag is None:
        return f"-O {name}={value}"
    return flag if value is True else f"{flag} {value}"  # a boolean flag takes no value


def flag(name: str) -> str:
    """An option's name alone: 'batch_size', or '--batch-size' on the command line."""
    flags = _FLAGS.get()
    if flags is None:
        return name
    return flags.get(name, f"-O {name}")


def options(python: str = "{}", **values: object) -> str:
    """Several options: python.format('time_steps=8, batch_size=16'), or '-T 8 --batch-size 16'."""
    if _FLAGS.get() is None:
        return python.format(", ".join(f"{k}={_py(v)}" for k, v in values.items()))
    return " ".join(option(k, v) for k, v in values.items())
