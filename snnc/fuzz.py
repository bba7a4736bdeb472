"""Mutation fuzzing of snnc's file readers: every outcome is a result or an SnncError.

A *target* makes valid seed files and reads a file the way a user would
(read, verify, run a tiny input). Each case mutates a seed (truncate, flip
bytes, overwrite a run, or change a field of the embedded JSON) and runs the
reader under a time bound. Anything other than success or an SnncError is a
failure, with the seed and mutation recorded so it can be replayed.

    python -m snnc.fuzz --seconds 60          # `make fuzz`
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from snnc.errors import SnncError


class CaseTimeout(Exception):
    pass


Mutator = Callable[[bytes, random.Random], "tuple[bytes, str]"]


@dataclass
class Target:
    name: str
    seeds: Callable[[Path], list[Path]]  # write valid files into a folder, return their paths
    read: Callable[[Path], object]  # read (and exercise) one file
    mutators: list[Mutator] = field(default_factory=list)  # format-aware mutations (oversized claims, links)


@dataclass
class Report:
    cases: int = 0
    ok: int = 0
    rejected: int = 0  # an SnncError: the expected outcome for most mutants
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"fuzz: {self.cases} cases, {self.ok} read fine, {self.rejected} rejected with an snnc error, "
                f"{len(self.failures)} failures")


TARGETS: dict[str, Target] = {}


def target(name: str, *mutators: Mutator):
    """Register a target: `fn()` returns (seeds, read); `mutators` are used for a quarter of its cases."""
    def deco(fn):
        seeds, read = fn()
        TARGETS[name] = Target(name, seeds, read, list(mutators))
        return fn
    return deco


# ---------------------------------------------------------------- mutations
def mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    if not data:
        return data, "empty"
    kind = rng.choice(["truncate", "flip", "overwrite", "json", "json", "zero"])
    if kind == "truncate":
        n = rng.randrange(len(data))
        return data[:n], f"truncate@{n}"
    if kind == "flip":
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b), "flip"
    if kind == "zero":
        b = bytearray(data)
        i = rng.randrange(len(b))
        n = rng.randint(1, 256)
        b[i:i + n] = bytes(min(n, len(b) - i))
        return bytes(b), f"zero@{i}+{n}"
    if kind == "overwrite":
        b = bytearray(data)
        i = rng.randrange(len(b))
        n = rng.randint(1, 64)
        b[i:i + n] = bytes(rng.randrange(256) for _ in range(min(n, len(b) - i)))
        return bytes(b), f"overwrite@{i}+{n}"
    return _mutate_json(data, rng)


def _mutate_json(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Change one value inside an embedded JSON document of the same length class (shape, dtype, attribute)."""
    start = data.find(b'{"name"')
    if start < 0:
        return mutate(data, rng) if rng.random() < 0.5 else (data[: len(data) // 2], "truncate-half")
    depth, end = 0, start
    for end in range(start, len(data)):
        c = data[end:end + 1]
        depth += c == b"{"
        depth -= c == b"}"
        if depth == 0:
            break
    try:
        doc = json.loads(data[start:end + 1])
    except ValueError:
        return data, "json-unparsed"
    path = _random_leaf(doc, rng)
    if not path:
        return data, "json-noleaf"
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    old = parent[path[-1]]
    parent[path[-1]] = rng.choice([-1, 0, 10**12, 1.5, "bogus", None, [], [10**6, 10**6], float("nan"),
                                   old * 3 if isinstance(old, (int, float)) and not isinstance(old, bool) else "x"])
    new = json.dumps(doc, separators=(",", ":")).encode()
    return data[:start] + new + data[end + 1:], f"json:{'/'.join(map(str, path))}"


def _random_leaf(doc, rng: random.Random) -> list:
    path, node = [], doc
    while isinstance(node, (dict, list)) and node:
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        path.append(key)
        node = node[key]
    return path


# ---------------------------------------------------------------- running
def _alarm(signum, frame):
    raise CaseTimeout()


def run_case(tgt: Target, data: bytes, folder: Path, time_limit: float) -> str:
    """'ok', 'rejected', or a failure description."""
    path = folder / f"case{Path(tgt.name).suffix or '.bin'}"
    path.write_bytes(data)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, time_limit)
    try:
        tgt.read(path)
        return "ok"
    except SnncError:
        return "rejected"
    except CaseTimeout:
        return f"timeout after {time_limit}s"
    except Exception as e:  # noqa: BLE001 - the point: anything else is a bug
        return f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class _Worker:
    """A child process that reads the cases, so that a hang inside C code (which SIGALRM cannot
    interrupt: HDF5 looping on a corrupt heap) is killed and reported instead of stopping the run."""

    def __init__(self):
        import multiprocessing

        self._ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch threads
        self._start()

    def _start(self) -> None:
        self.conn, child = self._ctx.Pipe()
        self.proc = self._ctx.Process(target=_serve, args=(child,), daemon=True)
        self.proc.start()
        child.close()

    def call(self, msg: tuple, timeout: float):
        """The worker's answer, or None when it did not answer within `timeout` s (it is then restarted)."""
        try:
            self.conn.send(msg)
            if self.conn.poll(timeout):
                return self.conn.recv()
        except (EOFError, OSError):  # the worker died (a crash in C code)
            self.restart()
            return "crashed"
        self.restart()
        return None

    def restart(self) -> None:
        self.close()
        self._start()

    def close(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()
        self.conn.close()


def _serve(conn) -> None:
    import warnings

    from snnc import fuzz_targets  # noqa: F401 - registers the targets

    warnings.simplefilter("ignore")
    while True:
        msg = conn.recv()
        if msg[0] == "seeds":
            _, folder, names = msg
            conn.send({n: [p.read_bytes() for p in TARGETS[n].seeds(Path(folder) / n)] for n in names})
        else:
            _, name, data, folder, limit = msg
            conn.send(run_case(TARGETS[name], data, Path(folder), limit))


def fuzz(targets: list[str] | None = None, *, cases: int | None = None, seconds: float | None = None,
         seed: int = 0, time_limit: float = 10.0) -> Report:
    """Fuzz the named targets (default: all) for `cases` cases each or `seconds` in total.

    Cases run in a worker process: past `time_limit` a case is interrupted (SIGALRM), and a
    worker stuck in C code for twice that is killed; both count as failures.
    """
    from snnc import fuzz_targets  # noqa: F401 - registers the targets (and their mutators)

    names = targets or sorted(TARGETS)
    rng = random.Random(seed)
    report = Report()
    worker = _Worker()
    try:
        with tempfile.TemporaryDirectory(prefix="snnc-fuzz-") as tmp:
            seeds = worker.call(("seeds", tmp, names), 600.0)
            if not isinstance(seeds, dict):
                raise RuntimeError(f"fuzz: the worker could not write the seed files ({seeds})")
            deadline = time.monotonic() + seconds if seconds else None
            i = 0
            while True:
                if cases is not None and i >= cases * len(names):
                    break
                if deadline is not None and time.monotonic() > deadline:
                    break
                name = names[i % len(names)]
                base = rng.choice(seeds[name])
                extra = TARGETS[name].mutators
                data, how = rng.choice(extra)(base, rng) if extra and rng.random() < 0.25 else mutate(base, rng)
                outcome = worker.call(("case", name, data, tmp, time_limit), 2 * time_limit + 5)
                if outcome is None:
                    outcome = f"hang: no answer after {2 * time_limit + 5:.0f}s (stuck in C code), worker killed"
                report.cases += 1
                if outcome == "ok":
                    report.ok += 1
                elif outcome == "rejected":
                    report.rejected += 1
                else:
                    report.failures.append(f"[{name}] case {i} ({how}): {outcome}")
                i += 1
    finally:
        worker.close()
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="total time budget")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target", action="append", help="only these targets (repeatable)")
    args = ap.parse_args(argv)
    from snnc.fuzz import fuzz as run  # the importable module, not __main__: targets register there

    rep = run(args.target, seconds=args.seconds, seed=args.seed)
    for f in rep.failures[:20]:
        print(f)
    print(rep.line())
    return 1 if rep.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
