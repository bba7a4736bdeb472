"""A/B of two builds of the native kernel library in one process: the kernel sources at a git revision
(default HEAD) against the working tree's, alternating round by round, so that drift in the machine's
speed hits both alike (on a noisy 2-core VM separate processes differ by more than most kernel changes).

    .venv/bin/python benchmarks/kernel_ab.py layer --runs 30            # a fused 64-channel 32x32 layer
    .venv/bin/python benchmarks/kernel_ab.py layer --channels 128 --size 16 --density 0.12
    .venv/bin/python benchmarks/kernel_ab.py resnet18 --runs 10 --base HEAD~1
    .venv/bin/python benchmarks/kernel_ab.py layer --threads 1                # one thread: steadier

`layer` times `event_conv.conv2d_neuron` (T=16, batch 32, 3x3, random spikes of the given density, IF
neuron, spikes listed for the next layer, no dense output); a network name times `Session.run` of that
network of benchmarks/cpu_runtime.py. Prints min, first quartile and median of each build.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `import snnc` does, before torch loads

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from snnc.runtime import event_conv, native  # noqa: E402


def library(srcs: dict[str, str]) -> ctypes.CDLL:
    try:
        return native.build_library(srcs)
    except RuntimeError as e:
        raise SystemExit(f"error: {e}") from None


def sources_at(rev: str) -> dict[str, str]:
    out = {}
    for name in native.sources():
        r = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:runtime/{name}"], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"error: runtime/{name} at {rev}: {r.stderr.strip()}")
        out[name] = r.stdout
    return out


def layer_fn(channels: int, size: int, density: float):
    cl = torch.channels_last
    torch.manual_seed(0)
    T, N, amp = 16, 32, 0.5
    x = ((torch.rand(T * N, channels, size, size) < density).float() * amp).contiguous(memory_format=cl)
    packed = event_conv.pack(torch.randn(channels, channels, 3, 3) * 0.05, None, amp, (1, 1), (1, 1), (1, 1))
    neuron = event_conv.Neuron((0, 0, 0), 1.0, 0.5, 1.0, 0.0, 1.0)
    _, events = event_conv._list_events(x, packed, 1, False)

    def run():
        v = torch.zeros(N, channels, size, size).contiguous(memory_format=cl)
        return event_conv.conv2d_neuron(x, packed, T, neuron, v, events=events, list_output=True,
                                        dense_output=False)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", help="`layer`, or a network of benchmarks/cpu_runtime.py (digits, vgg11, resnet18)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--base", default="HEAD", help="git revision of the base build's kernel sources")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--density", type=float, default=0.1)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if native.load() is None:
        raise SystemExit(f"error: the native kernels are unavailable: {native.why_unavailable()}")
    import cpu_runtime

    if args.what != "layer" and args.what not in cpu_runtime.NETS:
        raise SystemExit(f"error: unknown network {args.what!r}: use layer, {', '.join(cpu_runtime.NETS)}")
    libs = {"base": library(sources_at(args.base)), "new": library(native.sources())}
    if args.what == "layer":
        fn = layer_fn(args.channels, args.size, args.density)
    else:
        methods, x, T = cpu_runtime.build_methods(args.what, only="snnc")
        run = methods["snnc"]

        def fn():
            return run(x, T)
    for lib in libs.values():  # warm up each build
        native._lib = lib
        fn()
    times: dict[str, list[float]] = {k: [] for k in libs}
    for r in range(args.runs):
        for k in (("base", "new") if r % 2 == 0 else ("new", "base")):
            native._lib = libs[k]
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    for k, ts in times.items():
        ts.sort()
        print(f"{k:4s} ({args.base if k == 'base' else 'working tree'}): min {ts[0] * 1e3:.2f} ms, "
              f"q1 {ts[len(ts) // 4] * 1e3:.2f} ms, median {ts[len(ts) // 2] * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
