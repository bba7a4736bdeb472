"""Mutation fuzzing of snnc's file readers: every outcome is a result or an SnncError.

A *target* makes valid seed files and reads a file the way a user would
(read, verify, run a tiny input). Each case mutates a seed (truncate, flip
bytes, overwrite a run, or change a field of the embedded JSON) and runs the
reader in a worker process under a time bound. Anything other than success or
an SnncError is a failure. Each failing case is saved, with its target, seed
and mutation, as one JSON file under `fuzz-failures/` (or $SNNC_FUZZ_OUT), and
`--replay` reruns exactly that input.

    python -m snnc.fuzz --seconds 300 --seed 0    # `make fuzz FUZZ_SECONDS=300 FUZZ_SEED=0`
    python -m snnc.fuzz --replay fuzz-failures/snnir-s1-c465.json
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import signal
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from snnc.core.errors import SnncError
from snnc.fuzz_targets import TARGETS, Target, mutate

OUT_ENV_VAR = "SNNC_FUZZ_OUT"
DEFAULT_OUT = "fuzz-failures"
CASE_FORMAT = "snnc-fuzz-case"


class CaseTimeout(BaseException):
    """A case ran past its time limit (a BaseException: no reader's `except Exception` may swallow it)."""


@dataclass
class Report:
    cases: int = 0
    ok: int = 0
    rejected: int = 0  # an SnncError: the expected outcome for most mutants
    failures: list[str] = field(default_factory=list)
    saved: list[Path] = field(default_factory=list)  # one case file per failure

    def line(self) -> str:
        return (f"fuzz: {self.cases} cases, {self.ok} read fine, {self.rejected} rejected with an snnc error, "
                f"{len(self.failures)} failures")


# ---------------------------------------------------------------- running
def _alarm(signum, frame):
    raise CaseTimeout()


def run_case(tgt: Target, data: bytes, folder: Path, time_limit: float) -> tuple[str, str]:
    """('ok', ''), ('rejected', the snnc error) or ('failure', what went wrong)."""
    from snnc.core.safety import TIMEOUT_ENV_VAR

    path = folder / f"case{Path(tgt.name).suffix or '.bin'}"
    path.write_bytes(data)
    # an HDF5 read stuck in C code is stopped by snnc itself (an snnc error) well inside the case's limit;
    # the seed files read in milliseconds
    os.environ[TIMEOUT_ENV_VAR] = f"{max(0.5, time_limit / 20):g}"
    old = signal.signal(signal.SIGALRM, _alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, time_limit)
        tgt.read(path)
        return "ok", ""
    except SnncError as e:
        return "rejected", f"{type(e).__name__}: {e.message}"
    except CaseTimeout:
        return "failure", f"timeout after {time_limit}s"
    except Exception as e:  # noqa: BLE001 - the point: anything else is a bug
        return "failure", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-4)}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class _Worker:
    """A child process that reads the cases, so that a hang inside C code (which SIGALRM cannot
    interrupt) or a crash is killed and reported instead of stopping the run."""

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

    def run(self, name: str, data: bytes, folder: str, time_limit: float) -> tuple[str, str]:
        """One case in the worker: run_case's answer, or a failure when the worker hung or crashed."""
        grace = 2 * time_limit + 5
        outcome = self.call(("case", name, data, folder, time_limit), grace)
        if outcome is None:
            return "failure", f"hang: no answer after {grace:.0f}s (stuck in C code), worker killed"
        if outcome == "crashed":
            return "failure", "crash: the worker process died (a crash in C code)"
        return outcome

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

    warnings.simplefilter("ignore")
    while True:
        msg = conn.recv()
        if msg[0] == "seeds":
            _, folder, names = msg
            conn.send({n: [(p.name, p.read_bytes()) for p in TARGETS[n].seeds(Path(folder) / n)] for n in names})
        else:
            _, name, data, folder, limit = msg
            conn.send(run_case(TARGETS[name], data, Path(folder), limit))


# ---------------------------------------------------------------- failing cases
def failure_folder(out: str | os.PathLike | None = None) -> Path:
    """Where failing cases go: `out`, else $SNNC_FUZZ_OUT, else ./fuzz-failures."""
    return Path(out or os.environ.get(OUT_ENV_VAR) or DEFAULT_OUT)


def save_case(folder: Path, case: dict, data: bytes) -> Path:
    """Write one failing case as `<target>-s<seed>-c<case>.json` (the input base64-encoded inside) plus
    the raw input next to it, to try by hand (`snnc inspect fuzz-failures/snnir-s0-c12.snnir`)."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{case['target']}-s{case['seed']}-c{case['case']}"
    doc = {"format": CASE_FORMAT, **case, "data": base64.b64encode(data).decode("ascii")}
    (folder / f"{stem}{case.get('suffix') or '.bin'}").write_bytes(data)
    path = folder / f"{stem}.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def load_case(path: str | os.PathLike) -> tuple[dict, bytes]:
    """A saved case and its input bytes; ValueError naming the file when it is not one."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
        if doc.get("format") != CASE_FORMAT:
            raise ValueError(f"format is {doc.get('format')!r}, not {CASE_FORMAT!r}")
        data = base64.b64decode(doc.pop("data"), validate=True)
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as e:
        raise ValueError(f"{p}: not a saved fuzz case ({e})") from None
    if doc.get("target") not in TARGETS:
        raise ValueError(f"{p}: unknown fuzz target {doc.get('target')!r}; known: {', '.join(sorted(TARGETS))}")
    return doc, data


def replay(path: str | os.PathLike, *, time_limit: float | None = None) -> tuple[str, str]:
    """Rerun a saved case exactly (the same bytes, target and time limit) in a worker: run_case's answer."""
    case, data = load_case(path)
    worker = _Worker()
    try:
        with tempfile.TemporaryDirectory(prefix="snnc-fuzz-") as tmp:
            return worker.run(case["target"], data, tmp, float(time_limit or case.get("time_limit", 10.0)))
    finally:
        worker.close()


# ---------------------------------------------------------------- the campaign
def fuzz(targets: list[str] | None = None, *, cases: int | None = None, seconds: float | None = None,
         seed: int = 0, time_limit: float = 10.0, out: str | os.PathLike | None = None) -> Report:
    """Fuzz the named targets (default: all) for `cases` cases each or `seconds` in total.

    Cases run in a worker process: past `time_limit` a case is interrupted (SIGALRM), and a
    worker stuck in C code for twice that is killed; both count as failures. Each failing
    case is saved under `failure_folder(out)` (see `save_case`); `replay` reruns it.
    """
    names = targets or sorted(TARGETS)
    unknown = sorted(set(names) - set(TARGETS))
    if unknown:
        raise ValueError(f"unknown fuzz target(s) {', '.join(unknown)}; known: {', '.join(sorted(TARGETS))}")
    rng = random.Random(seed)
    report = Report()
    folder = failure_folder(out)
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
                seed_name, base = rng.choice(seeds[name])
                extra = TARGETS[name].mutators
                data, how = rng.choice(extra)(base, rng) if extra and rng.random() < 0.25 else mutate(base, rng)
                status, detail = worker.run(name, data, tmp, time_limit)
                report.cases += 1
                if status == "ok":
                    report.ok += 1
                elif status == "rejected":
                    report.rejected += 1
                else:
                    case = {"target": name, "seed": seed, "case": i, "seed_file": seed_name, "mutation": how,
                            "time_limit": time_limit, "outcome": detail, "suffix": Path(seed_name).suffix}
                    saved = save_case(folder, case, data)
                    report.saved.append(saved)
                    report.failures.append(f"[{name}] case {i} ({seed_name}, {how}): {detail}\n  saved: {saved}")
                i += 1
    finally:
        worker.close()
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="total time budget")
    ap.add_argument("--cases", type=int, default=None, help="stop after this many cases per target")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target", action="append", help="only these targets (repeatable)")
    ap.add_argument("--time-limit", type=float, default=None, help="seconds per case (default 10; a replay "
                    "uses the saved case's)")
    ap.add_argument("--out", default=None, help=f"folder for failing cases (default ${OUT_ENV_VAR} or "
                    f"./{DEFAULT_OUT})")
    ap.add_argument("--replay", metavar="FILE", nargs="+", help="rerun saved failing case(s) and report each outcome")
    args = ap.parse_args(argv)
    # the importable module, not __main__ (its worker processes import snnc.fuzz)
    from snnc.fuzz import fuzz as run, replay as rerun

    if args.replay:
        failed = 0
        for path in args.replay:
            try:
                status, detail = rerun(path, time_limit=args.time_limit)
            except ValueError as e:
                print(f"error: {e}")
                return 2
            failed += status == "failure"
            print(f"{path}: {status}" + (f": {detail}" if detail else ""))
        return 1 if failed else 0
    rep = run(args.target, cases=args.cases, seconds=args.seconds, seed=args.seed,
              time_limit=args.time_limit or 10.0, out=args.out)
    for f in rep.failures[:20]:
        print(f)
    print(rep.line())
    if rep.saved:
        print(f"fuzz: {len(rep.saved)} failing case(s) saved under {rep.saved[0].parent}; "
              f"rerun one with: python -m snnc.fuzz --replay {rep.saved[0]}")
    return 1 if rep.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
