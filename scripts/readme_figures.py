"""Measure the README's figures on this machine and say which machine it is.

    .venv/bin/python scripts/readme_figures.py --demo-only           # print the demo block
    .venv/bin/python scripts/readme_figures.py --demo-only --write   # and put it into README.md
    .venv/bin/python scripts/readme_figures.py --write               # also the CPU speed table (minutes)
    make figures                                                     # = --demo-only --write

Demo block: `snnc demo` runs twice, each time in a new process. The first run has an empty cache, so it
trains the CNN and builds the C kernels, as a first `make demo` does. The second run has the cache filled.
The block holds the accuracy table and the Loihi rows exactly as the demo printed them, the prose figures
worked out from those rows, and the two run times.
Speed block: the digits, VGG-11 and ResNet-18 rows of benchmarks/cpu_runtime.py, laid out as the README's
table (SpikingJelly in this process and in its own, as its users run it).
Each block begins with the machine (CPU, cores, torch, Python, OS, date) and the load average. --write
replaces only the text between the block's markers (`<!-- figures:demo -->` ... `<!-- /figures:demo -->`).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import snnc  # noqa: F401 - before torch loads, so its OpenMP wait policy (snnc/__init__.py) holds for the speed block

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


# -- the machine -----------------------------------------------------------------
def machine() -> dict:
    """CPU model, cores, whether it is a VM and has AVX-512 (it changes float rounding), torch, Python, date."""
    import torch

    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        info = Path("/proc/cpuinfo").read_text()
        cpu = re.search(r"^model name\s*:\s*(.+)$", info, re.M).group(1).strip()
        flags = set(re.search(r"^flags\s*:\s*(.+)$", info, re.M).group(1).split())
    except (OSError, AttributeError):
        pass
    return {"cpu": cpu, "arch": platform.machine(), "cores": os.cpu_count(), "vm": "hypervisor" in flags,
            "avx512": "avx512f" in flags, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version(), "os": platform.system(),
            "date": datetime.date.today().isoformat(),
            "load": _load()}


def _load() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def load_note(start: float | None) -> str:
    """The 1-minute load average at the start and now: other work on the machine slows the timings."""
    end = _load()
    return "" if start is None or end is None else f" (load average {start:.1f} at the start, {end:.1f} at the end)"


def describe(m: dict) -> str:
    traits = [m["arch"]] + (["AVX-512"] if m["avx512"] else []) + (["virtual machine"] if m["vm"] else [])
    return (f"a {m['cores']}-core {m['cpu']} ({', '.join(traits)}), torch {m['torch']} ({m['threads']} threads), "
            f"Python {m['python']}, {m['os']}, {m['date']}")


# -- the demo block ------------------------------------------------------------------
_DEMO_CHILD = """
import json, sys
from snnc.demo import run_demo
json.dump(run_demo(loihi=True), open(sys.argv[1], "w"))
"""


def run_demo_process(cache: Path) -> tuple[dict, str, float]:
    """Run the demo in a new process with SNNC_CACHE_DIR=cache: (its result, what it printed, wall seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp, "result.json")
        start = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", _DEMO_CHILD, str(result)], env={**os.environ,
                           "SNNC_CACHE_DIR": str(cache)}, stdout=subprocess.PIPE, text=True)  # stderr: progress bars
        wall = time.perf_counter() - start
        print(r.stdout, end="")
        if r.returncode != 0:
            raise SystemExit(f"error: the demo failed (exit code {r.returncode})")
        return json.loads(result.read_text()), r.stdout, wall


def demo_output(stdout: str) -> str:
    """The demo's table and Loihi rows, as printed: from the table's title to the line before `done in`."""
    lines = [line.rstrip() for line in stdout.splitlines()]
    start = next(i for i, line in enumerate(lines) if "ANN vs converted SNN" in line)
    end = next(i for i, line in enumerate(lines) if line.startswith(("done in", "wrote ")))
    return "\n".join(lines[start:end])


def loihi_rows(output: str) -> dict[str, float]:
    """The accuracy rows of the demo's Loihi section, `  name   99.56 %`, in order."""
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^  (\S.*?)\s+(\d+\.\d+) %$", output, re.M)}


def n_test_images(output: str) -> int:
    return int(re.search(r"on (\d+) test images", output).group(1))


def _cost(d: float, n_test: int, plural: bool = False) -> str:
    """`costs 1.33 points (6 test images)` for an accuracy drop d; whole test images (printed accuracies round)."""
    k = round(d * n_test / 100)
    verb = ("gain" if k < 0 else "cost") + ("" if plural else "s")
    if k == 0:
        return f"{verb} nothing"
    return f"{verb} {abs(k) * 100 / n_test:.2f} points ({abs(k)} test image{'' if abs(k) == 1 else 's'})"


def loihi_prose(rows: dict[str, float], n_test: int) -> str:
    """The README's sentence on the Loihi rows (soft reset, reset to 0, reset to 0 recalibrated, emulation)."""
    soft, hard, calibrated, emulation = rows.values()
    return textwrap.fill(f"Reset-to-0 (what Loihi's CUBA neuron does) {_cost(soft - hard, n_test)} with the float "
                         f"thresholds and {_cost(soft - calibrated, n_test)} after snnc recalibrates them for it; "
                         "8-bit fixed point and the spiking readout then "
                         f"{_cost(calibrated - emulation, n_test, plural=True)}.", 80)


def demo_block(m: dict, first: tuple[dict, str, float], second: tuple[dict, str, float]) -> str:
    result, stdout, wall = first
    output = demo_output(stdout)
    rows = loihi_rows(output)
    if len(rows) != 4:
        raise SystemExit(f"error: expected 4 Loihi rows in the demo's output, found {len(rows)}")
    n_test = n_test_images(output)
    head = textwrap.fill(f"Measured with `scripts/readme_figures.py` on {describe(m)}: the demo's first run "
                         f"(a new process, empty cache) took {wall:.0f} s, training {result['train_s']:.0f} s of it, "
                         f"and a second run {second[2]:.0f} s"
                         f"{load_note(m['load'])}. On "
                         "another CPU or torch build the float sums round differently, which can move a cell at low "
                         f"T by a test image or two ({100 / n_test:.2f} points each).", 80)
    return f"{head}\n\n```\n{output}\n```\n\n{loihi_prose(rows, n_test)}"


def measure_demo(m: dict) -> str:
    with tempfile.TemporaryDirectory() as cache:
        print("first run, empty cache (trains the CNN, builds the C kernels):", flush=True)
        first = run_demo_process(Path(cache))
        print("second run, cache filled:", flush=True)
        second = run_demo_process(Path(cache))
    if second[0]["snn"] != first[0]["snn"]:
        raise SystemExit("error: two runs of the demo gave different accuracies; not writing them")
    return demo_block(m, first, second)


# -- the speed block -----------------------------------------------------------------
SPEED_NETS = {"digits": "digits CNN", "vgg11": "VGG-11 (CIFAR shape)", "resnet18": "ResNet-18 (CIFAR shape)"}
SPEED_METHODS = ("snnc", "snnc-exact", "eager", "spikingjelly", "snnc (own process)", "spikingjelly (own process)")


def _rate(samples_per_s: float) -> str:
    return f"{samples_per_s:.0f}" if samples_per_s >= 1000 else f"{samples_per_s:.1f}"


def speed_block(m: dict, rows: list[dict], runs: int, spikingjelly: str | None) -> str:
    """The README's speed table from benchmarks/cpu_runtime.py's rows (method absent: n/a)."""
    sj = f"SpikingJelly {spikingjelly} converter" if spikingjelly else "SpikingJelly converter"
    head = textwrap.fill(f"`benchmarks/cpu_runtime.py`, run by `scripts/readme_figures.py` on {describe(m)}; "
                         f"median of {runs} rounds in one process{load_note(m['load'])}: samples/s, and how many "
                         "times faster snnc's default is than each alternative. The own-process columns time "
                         "each library alone in a fresh process, as its users run it: there SpikingJelly is "
                         "compared with snnc's own process (in one process both share snnc's settings, see "
                         "benchmarks/cpu_runtime.py).", 80)
    lines = [head, "",
             f"| network | snnc | snnc `--eager-exact` | plain eager, step by step | {sj} | snnc, own process "
             f"| {sj}, own process |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for net, label in SPEED_NETS.items():
        by = {r["method"]: r for r in rows if r["net"] == net}
        if "snnc" not in by:
            continue
        cells = [_rate(by["snnc"]["samples_per_s"])]
        for method in SPEED_METHODS[1:]:
            r = by.get(method)
            if r is None:
                cells.append("n/a")
            elif method == "snnc (own process)":
                cells.append(_rate(r["samples_per_s"]))
            elif method == "spikingjelly (own process)":  # against snnc's own process; without it, no ratio
                own = r.get("vs_snnc_own")
                cells.append(_rate(r["samples_per_s"]) + ("" if own is None else f" ({own:.1f}x)"))
            else:
                cells.append(f"{_rate(r['samples_per_s'])} ({r['vs_snnc']:.1f}x)")
        first = by["snnc"]
        lines.append(f"| {label}, T={first['T']}, batch {first['batch']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def measure_speed(m: dict, runs: int) -> str:
    spec = importlib.util.spec_from_file_location("cpu_runtime", ROOT / "benchmarks" / "cpu_runtime.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = [r for net in SPEED_NETS for r in bench.bench(net, runs, memory=False)]
    bench.print_table(rows)  # the whole run, each round's times included, for benchmarks/RESULTS.md
    try:
        from importlib.metadata import version

        sj = version("spikingjelly")
    except Exception:  # noqa: BLE001 - not installed
        sj = None
    return speed_block(m, rows, runs, sj)


# -- README.md -------------------------------------------------------------------------
def replace_block(text: str, name: str, block: str) -> str:
    """`text` with the part between `<!-- figures:NAME -->` and `<!-- /figures:NAME -->` replaced by `block`."""
    begin, end = f"<!-- figures:{name} -->", f"<!-- /figures:{name} -->"
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise SystemExit(f"error: README.md needs one {begin} ... {end} pair")
    head, rest = text.split(begin)
    return f"{head}{begin}\n{block}\n{end}{rest.split(end, 1)[1]}"


def read_block(text: str, name: str) -> str:
    begin, end = f"<!-- figures:{name} -->", f"<!-- /figures:{name} -->"
    return text.split(begin, 1)[1].split(end, 1)[0].strip("\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo-only", action="store_true", help="skip the CPU speed table (several minutes)")
    ap.add_argument("--runs", type=int, default=5, help="rounds of the speed benchmark (median)")
    ap.add_argument("--write", action="store_true", help="put the blocks into README.md")
    args = ap.parse_args()
    m = machine()
    print(f"machine: {describe(m)}", flush=True)
    if m["load"] is not None and m["load"] > 0.5:
        print(f"warning: load average {m['load']:.1f}: other work slows the timings down; an idle machine gives "
              "the figures a user sees", file=sys.stderr)
    blocks = {"demo": measure_demo(m)}
    if not args.demo_only:
        blocks["speed"] = measure_speed(m, args.runs)
    text = README.read_text()
    for name, block in blocks.items():
        print(f"\n<!-- figures:{name} -->\n{block}\n<!-- /figures:{name} -->")
        text = replace_block(text, name, block)
    if args.write:
        README.write_text(text)
        print(f"\nwrote {', '.join(blocks)} into {README}")


if __name__ == "__main__":
    main()
