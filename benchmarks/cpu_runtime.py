"""CPU runtime throughput: snnc vs plain PyTorch eager vs SpikingJelly 2.0's converted model.

    .venv/bin/python benchmarks/cpu_runtime.py            # both networks, 5 runs each
    .venv/bin/python benchmarks/cpu_runtime.py --nets digits --runs 3
    .venv/bin/python benchmarks/cpu_runtime.py --layers --sweep     # ... and the limit, and how cost grows

Networks (ANN -> SNN with 99.9% normalization, constant analog input):
  digits  the demo CNN (snnc.demo.DigitsCNN, trained, cached), T = 32, batch 256
  vgg11   CIFAR-10-shaped VGG-11 with BatchNorm, random weights, calibrated on random data,
          T = 16, batch 32
  resnet18  ResNet-18 for 32x32 inputs (plain_nets.py), the same way, T = 16, batch 32

Methods, all on the same converted network and the same input batch:
  snnc        snnc.runtime.Session(graph).run(x, T), the default: convs in channels_last and
              the convs on spike inputs on the event-driven kernel (runtime/event_conv.py),
              which adds the weights of the nonzero inputs only (rounding differs slightly
              from eager torch; run, step and chunked runs agree exactly)
  snnc-exact  Session(graph, channels_last=False, event_conv=False): dense NCHW convs, every
              value bit-identical to eager NCHW torch
  eager       the same graph run step by step in plain PyTorch: at each step every op once
              (F.conv2d, F.avg_pool2d, ...), neurons by snnc.core.dynamics.step
  spikingjelly  SpikingJelly's Converter(recipe=RateCodingRecipe(loader, mode="99.9%")) model,
              run T times after functional.reset_net (when spikingjelly is installed)
  spikingjelly (own process)  the same, timed in a fresh process that never imports snnc
              (sj_fresh.py), without snnc's process-wide settings: its malloc options speed SJ up,
              its passive OpenMP wait policy slows SJ's many small ops (ResNet-18, 2-core Intel Xeon:
              3.3-4.8 s a batch with it, 2.8-3.8 s with ACTIVE; benchmarks/RESULTS.md)
  snnc (own process)  snnc's default alone in a fresh process: with the row above, each as its users run it

--layers prints, per Conv2d/Linear: the input density (synaptic ops / dense MACs), the synaptic
ops, the dense MACs, its time (wall time of the node, summed over the run) and achieved rate,
against two ceilings measured in the same run: a dense GEMM's MAC/s (torch.mm, 2048^3) and a
streaming add's bytes/s (c = a + b, 12 bytes per element). The whole run is compared with the
sparse bound: every synaptic op at the streaming add's rate (one add each, memory bound). A spike's
weight rows come from cache, not memory, so a second, tighter bound uses the rate of the same add on
arrays that fit in L2 (3 x 128 KiB): "cached add".
--sweep times VGG-11 over T (4..256), batch (1..512) and width (0.5x, 1x, 2x), per sample-step,
and the batch-1 streaming latency of Session.step.

Each method runs once per round, rounds interleave the methods (so load from other
processes hits all of them alike), and the table reports the median of the rounds:
seconds per batch, samples/s, the speed-up of snnc, and the peak resident memory of
one batch in a fresh process per method: the rise of the kernel's peak-RSS mark
(VmHWM, reset before the call) above the RSS after the model is built, run once
on one sample for one step, and free heap pages are returned (malloc_trim).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import io
import os
import platform
import statistics
import sys
import time
import warnings

# The user's own OMP_WAIT_POLICY, not the one an earlier `import snnc` set (scripts/readme_figures.py).
_OMP_POLICY_USER = (None if getattr(sys.modules.get("snnc"), "OPENMP_POLICY_SET", False)
                    else os.environ.get("OMP_WAIT_POLICY"))
# As `import snnc` does (snnc/__init__.py): torch's OpenMP workers wait passively, so they leave the
# cores to snnc's native kernel threads. It must be set before torch loads; SpikingJelly in this
# process runs with it too, and in its own process (sj_fresh.py) with torch's default.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

os.environ.setdefault("TQDM_DISABLE", "1")  # SpikingJelly's calibration progress bars
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # plain_nets, importable by sj_fresh.py too
import cpu_layers  # noqa: E402
import plain_nets  # noqa: E402

import snnc
from snnc.core import dynamics
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.runtime import Session


# -- networks -------------------------------------------------------------------
def make_vgg11(seed: int = 0, width: float = 1.0, batch: int = 32) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """(model, calibration data [64, 3, 32, 32], input batch [batch, 3, 32, 32]), all random, seeded."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = plain_nets.randomize(plain_nets.vgg11(width=width), g)
    return model, torch.rand(64, 3, 32, 32, generator=g), torch.rand(batch, 3, 32, 32, generator=g)


def make_resnet18(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = plain_nets.randomize(plain_nets.resnet18_cifar(), g)
    return model, torch.rand(64, 3, 32, 32, generator=g), torch.rand(32, 3, 32, 32, generator=g)


def make_digits() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    from snnc.core import datasets
    from snnc.demo import pretrained_digits_cnn

    data = datasets.digits()
    cnn = pretrained_digits_cnn(data)
    plain = nn.Sequential(*cnn.features, *cnn.classifier).eval()  # the same forward, plain torch modules
    return plain, data.x_train[:512], data.x_test[:256]


# -- plain eager baseline ------------------------------------------------------------
def _plain_op(op: ops.OpBase, ins: list[torch.Tensor], p: dict[str, torch.Tensor]) -> torch.Tensor:
    """One op as a plain torch call (no snnc runtime code)."""
    F = torch.nn.functional
    x = ins[0]
    b = p.get(getattr(op, "bias", None) or "")
    if isinstance(op, ops.Conv2d):
        return F.conv2d(x, p[op.weight], b, op.stride, op.padding, op.dilation, op.groups)
    if isinstance(op, ops.Linear):
        return F.linear(x, p[op.weight], b)
    if isinstance(op, ops.Scale):
        y = x * op.factor
        return y * p[op.weight].view(-1, *([1] * (x.dim() - 2))) if op.weight else y
    if isinstance(op, ops.AvgPool2d):
        return F.avg_pool2d(x, op.kernel_size, op.stride, op.padding, op.ceil_mode, op.count_include_pad,
                            op.divisor_override)
    if isinstance(op, ops.MaxPool2d):
        return F.max_pool2d(x, op.kernel_size, op.stride, op.padding, op.dilation, op.ceil_mode)
    if isinstance(op, ops.AdaptiveAvgPool2d):
        return F.adaptive_avg_pool2d(x, op.output_size)
    if isinstance(op, ops.Flatten):
        return torch.flatten(x, 1 + op.start_dim % (x.dim() - 1), 1 + op.end_dim % (x.dim() - 1))
    if isinstance(op, ops.Add):
        return x + ins[1]
    if isinstance(op, ops.ReLU):
        return torch.relu(x)
    raise NotImplementedError(f"benchmark baseline: no plain torch call for {op.kind}")


class EagerStepwise:
    """The converted graph run one time step at a time with plain torch calls (no snnc runtime)."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.params = dict(graph.params)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, T: int) -> torch.Tensor:
        v: dict[str, torch.Tensor] = {}
        outs = []
        for _ in range(T):
            vals: dict[str, torch.Tensor] = {}
            for op in self.graph:
                if isinstance(op, ops.Input):
                    vals[op.name] = x
                elif isinstance(op, ops.NeuronOp):
                    xin = vals[op.inputs[0]]
                    vv = v.get(op.name)
                    if vv is None:
                        vv = torch.full_like(xin, op.initial_v())
                    vals[op.name], v[op.name] = dynamics.step(op.to_params(), vv, xin)
                elif isinstance(op, ops.RunningMaxPool2d):  # max pooling of the sums so far, differenced
                    xin = vals[op.inputs[0]]
                    acc = v.get(op.name, torch.zeros_like(xin))
                    pool = functools.partial(torch.nn.functional.max_pool2d, kernel_size=op.kernel_size,
                                             stride=op.stride, padding=op.padding, dilation=op.dilation,
                                             ceil_mode=op.ceil_mode)
                    v[op.name] = acc + xin
                    vals[op.name] = pool(v[op.name]) - pool(acc)
                elif isinstance(op, (ops.LayoutCast, ops.Output, ops.Identity)):
                    vals[op.name] = vals[op.inputs[0]]
                else:
                    vals[op.name] = _plain_op(op, [vals[i] for i in op.inputs], self.params)
            outs.append(vals[self.graph.outputs[0].name])
        return torch.stack(outs)


# -- SpikingJelly ---------------------------------------------------------------------
def spikingjelly_model(model: nn.Module, calib: torch.Tensor, mode: str = "99.9%"):
    try:
        from spikingjelly.activation_based import functional
        from spikingjelly.activation_based.ann2snn import Converter
        from spikingjelly.activation_based.ann2snn.recipes.rate_coding import RateCodingRecipe
    except Exception as e:  # noqa: BLE001 - optional
        print(f"(spikingjelly not available: {type(e).__name__}: {e})")
        return None
    try:
        from loguru import logger

        logger.remove()
    except Exception:  # noqa: BLE001
        pass
    loader = [(calib[i:i + 64], None) for i in range(0, calib.shape[0], 64)]
    bars = io.StringIO()  # its calibration's tqdm bars (they ignore TQDM_DISABLE), shown only if it fails
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(bars):
            warnings.simplefilter("ignore")
            sj = Converter(recipe=RateCodingRecipe(loader, mode=mode)).convert(copy.deepcopy(model)).eval()
    except Exception:
        sys.stderr.write(bars.getvalue())
        raise

    @torch.no_grad()
    def run(x: torch.Tensor, T: int) -> torch.Tensor:
        functional.reset_net(sj)
        return torch.stack([sj(x) for _ in range(T)])

    return run


# -- measuring --------------------------------------------------------------------------
NETS = {"digits": (make_digits, 32), "vgg11": (make_vgg11, 16), "resnet18": (make_resnet18, 16)}


def build_methods(net: str, only: str | None = None) -> tuple[dict, torch.Tensor, int]:
    """The methods to compare on one network: name -> fn(x, T)."""
    make, T = NETS[net]
    model, calib, x = make()
    graph = snnc.convert(model, calib, "99.9%", show_progress=False)
    methods = {}
    if only in (None, "snnc"):
        s = Session(graph, progress=False)
        methods["snnc"] = lambda inp, steps: s.run(inp, steps)
    if only in (None, "snnc-exact"):
        s_exact = Session(graph, progress=False, channels_last=False, event_conv=False)
        methods["snnc-exact"] = lambda inp, steps: s_exact.run(inp, steps)
    if only in (None, "eager"):
        methods["eager"] = EagerStepwise(graph)
    if only in (None, "spikingjelly"):
        sj = spikingjelly_model(model, calib)
        if sj is not None:
            methods["spikingjelly"] = sj
    return methods, x, T


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def peak_rss_growth(fn, *args) -> int:
    """Bytes by which the process's peak resident size (kernel-tracked VmHWM) rises above its size before the call."""
    import ctypes
    import gc

    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # give free heap pages back, so reusing them counts again
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS (Linux >= 4.0)
    base = _status_kb("VmRSS")
    fn(*args)
    return (_status_kb("VmHWM") - base) * 1024


def _child(args: list[str], env: dict, what: str, timeout: int = 3600) -> dict | None:
    """The last JSON line a fresh Python process running args prints, or None (said) when it fails."""
    import json
    import subprocess

    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=timeout)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        print(f"({what} in a fresh process failed: {r.stderr.strip().splitlines()[-1:]})")
        return None
    return json.loads(lines[-1])


def memory_in_child(net: str, method: str) -> float | None:
    """Peak RSS growth (MB) of one batch in a fresh process (glibc's default malloc settings)."""
    res = _child([__file__, "--memory-probe", f"{net}:{method}"], dict(os.environ, SNNC_RETAIN_MEMORY="0"),
                 f"the memory probe of {method}", timeout=600)
    return None if res is None else res["peak_mb"]


def snnc_fresh(net: str, runs: int) -> list[float] | None:
    """snnc's default Session timed alone in a fresh process (as its users run it: no other model's memory
    or threads beside it): the seconds of each round."""
    env = dict(os.environ)
    if _OMP_POLICY_USER is None:  # the child's `import snnc` sets it again, as in any user's process
        env.pop("OMP_WAIT_POLICY", None)
    res = _child([__file__, "--time-probe", f"{net}:snnc:{runs}"], env, "snnc")
    return None if res is None else res["seconds"]


def _time_probe(spec: str) -> None:
    import json

    net, method, runs = spec.split(":")
    methods, x, T = build_methods(net, method)
    fn = methods[method]
    fn(x, T)  # warm up at the timed shape, as bench() does
    print(json.dumps({"seconds": [cpu_layers.wall_time(lambda: fn(x, T)) for _ in range(int(runs))]}))


def _memory_probe(spec: str) -> None:
    import json

    net, method = spec.split(":")
    methods, x, T = build_methods(net, method)
    fn = methods[method]
    fn(x[:1], 1)  # lazy initialisation
    print(json.dumps({"peak_mb": peak_rss_growth(fn, x, T) / 2**20}))


def spikingjelly_fresh(net: str, runs: int, sj_out: torch.Tensor | None) -> dict | None:
    """SpikingJelly timed in a fresh process without snnc (benchmarks/sj_fresh.py): median seconds per batch,
    and whether its output equals the in-process SpikingJelly run's."""
    import tempfile

    make, T = NETS[net]
    model, calib, x = make()
    with tempfile.TemporaryDirectory() as d:
        bundle = os.path.join(d, "bundle.pt")
        torch.save({"model": model, "calib": calib, "x": x, "T": T, "mode": "99.9%"}, bundle)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "SNNC_"))}
        if _OMP_POLICY_USER is None:  # the policy snnc chose, not the user: torch's default there
            env.pop("OMP_WAIT_POLICY", None)
        res = _child([os.path.join(os.path.dirname(os.path.abspath(__file__)), "sj_fresh.py"), bundle, str(runs)],
                     env, "spikingjelly")
        if res is None:
            return None
        out = torch.load(res["out"])
    same = None if sj_out is None else bool(torch.equal(out, sj_out))
    return {"seconds": statistics.median(res["seconds"]), "all": res["seconds"], "same": same}


def bench(net: str, runs: int, memory: bool, fresh: bool = True) -> list[dict]:
    methods, x, T = build_methods(net)
    for fn in methods.values():  # warm up at the timed shape: oneDNN's primitives are made per shape, and
        fn(x, T)  # the first run of a shape faults its buffers' pages in (each method alike)
    times: dict[str, list[float]] = {k: [] for k in methods}
    outs: dict[str, torch.Tensor] = {}
    for _ in range(runs):  # rounds interleave the methods
        for k, fn in methods.items():
            t = time.perf_counter()
            outs[k] = fn(x, T)
            times[k].append(time.perf_counter() - t)
    ref = outs["snnc"].mean(0).argmax(-1)
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = []
    for k in methods:
        agree = float((outs[k].mean(0).argmax(-1) == ref).float().mean()) * 100
        rows.append({"net": net, "method": k, "T": T, "batch": x.shape[0], "seconds": med[k],
                     "samples_per_s": x.shape[0] / med[k], "vs_snnc": med[k] / med["snnc"],
                     "vs_exact": med[k] / med["snnc-exact"], "agree": agree, "all": times[k],
                     "exact": bool(torch.equal(outs[k], outs["snnc-exact"])),
                     "peak_mb": memory_in_child(net, k) if memory else None})
    sj = spikingjelly_fresh(net, runs, outs.get("spikingjelly")) if fresh and "spikingjelly" in methods else None
    own = snnc_fresh(net, runs) if sj is not None else None
    if own is not None:
        s_own = statistics.median(own)
        rows.append({"net": net, "method": "snnc (own process)", "T": T, "batch": x.shape[0], "seconds": s_own,
                     "samples_per_s": x.shape[0] / s_own, "vs_snnc": s_own / med["snnc"],
                     "vs_exact": s_own / med["snnc-exact"], "agree": float("nan"), "all": own, "exact": False,
                     "peak_mb": None, "note": "timed alone in a fresh process"})
    if sj is not None:
        note = "same output as in-process SJ" if sj["same"] else "OUTPUT DIFFERS from in-process SJ"
        rows.append({"net": net, "method": "spikingjelly (own process)", "T": T, "batch": x.shape[0],
                     "seconds": sj["seconds"], "samples_per_s": x.shape[0] / sj["seconds"],
                     "vs_snnc": sj["seconds"] / med["snnc"], "vs_exact": sj["seconds"] / med["snnc-exact"],
                     "agree": float("nan"), "all": sj["all"], "exact": False, "peak_mb": None,
                     "vs_snnc_own": None if own is None else sj["seconds"] / s_own,
                     "note": note + ("" if own is None else f"; {sj['seconds'] / s_own:.2f}x snnc's own process")})
    return rows


def print_table(rows: list[dict]) -> None:
    print("\n| network | method | T | batch | s/batch (median) | samples/s | snnc speed-up | snnc-exact speed-up "
          "| peak MB | same argmax as snnc |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        mem = "n/a" if r["peak_mb"] is None else f"{r['peak_mb']:.0f}"
        agree = r.get("note") or (f"{r['agree']:.1f}%"
                                  f"{' (bit-exact with snnc-exact)' if r['exact'] and r['method'] != 'snnc-exact' else ''}")
        print(f"| {r['net']} | {r['method']} | {r['T']} | {r['batch']} | {r['seconds']:.3f} | "
              f"{r['samples_per_s']:.1f} | {r['vs_snnc']:.2f}x | {r['vs_exact']:.2f}x | {mem} | {agree} |")
    print("\nspeed-up = the method's median time / snnc's (or snnc-exact's); snnc = Session(graph), the default "
          "(channels_last, event-driven convs on spikes); snnc-exact = Session(graph, channels_last=False, "
          "event_conv=False), bit-exact with eager NCHW torch; peak MB = peak RSS growth during one batch in a "
          "fresh process; spikingjelly (own process) = the same SpikingJelly model timed in a fresh process "
          "that never imports snnc (benchmarks/sj_fresh.py), as its users run it; snnc (own process) = snnc's "
          "default timed alone in a fresh process, as its users run it (both own-process rows: the fair pair).")
    snnc_runs = {r["net"]: r["all"] for r in rows if r["method"] == "snnc"}
    for r in rows:
        line = f"  {r['net']:7s} {r['method']:13s} runs (s): {' '.join(f'{t:.3f}' for t in r['all'])}"
        mine = snnc_runs.get(r["net"])
        if r["method"] != "snnc" and "own process" not in r["method"] and mine and len(mine) == len(r["all"]):
            # rounds interleave the methods: a round's ratio is free of drift slower than a round
            ratios = sorted(t / s for t, s in zip(r["all"], mine))
            line += (f"; snnc speed-up per round {ratios[0]:.2f}x..{ratios[-1]:.2f}x "
                     f"(median {statistics.median(ratios):.2f}x)")
        print(line)


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else the architecture."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sweep(runs: int = 3) -> None:
    """Time per sample-step of snnc's default Session on VGG-11 over T, batch and width; batch-1 latency."""
    def timed(model, calib, x, T) -> float:
        s = Session(snnc.convert(model, calib, "99.9%", show_progress=False), progress=False)
        s.run(x, min(T, 4))
        return statistics.median(cpu_layers.wall_time(lambda: s.run(x, T)) for _ in range(runs))

    print("\n### VGG-11 (CIFAR-10 shape): time per sample-step (ms)\n")
    model, calib, x = make_vgg11(batch=512)
    print("| T (batch 32) | " + " | ".join(str(t) for t in (4, 8, 16, 32, 64, 128, 256)) + " |")
    print("|---|" + "---:|" * 7)
    row = [timed(model, calib, x[:32], t) / (32 * t) * 1e3 for t in (4, 8, 16, 32, 64, 128, 256)]
    print("| ms/sample-step | " + " | ".join(f"{v:.3f}" for v in row) + " |")
    batches = (1, 8, 32, 128, 512)
    print("\n| batch (T 16) | " + " | ".join(str(b) for b in batches) + " |")
    print("|---|" + "---:|" * len(batches))
    row = [timed(model, calib, x[:b], 16) / (b * 16) * 1e3 for b in batches]
    print("| ms/sample-step | " + " | ".join(f"{v:.3f}" for v in row) + " |")
    print("\n| width (T 16, batch 32) | 0.5x | 1x | 2x |")
    print("|---|---:|---:|---:|")
    row = []
    for w in (0.5, 1.0, 2.0):
        m, c, xx = make_vgg11(width=w)
        row.append(timed(m, c, xx, 16) / (32 * 16) * 1e3)
    print("| ms/sample-step | " + " | ".join(f"{v:.3f}" for v in row) + " |")
    s = Session(snnc.convert(model, calib, "99.9%", show_progress=False), progress=False)
    x1 = x[:1]
    s.step(x1)
    lat = []
    for _ in range(3):
        s.reset()
        lat.append(statistics.median(cpu_layers.wall_time(lambda: s.step(x1)) for _ in range(16)))
    print(f"\nbatch-1 streaming latency (Session.step, median of 16 steps): {statistics.median(lat) * 1e3:.2f} ms/step")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default="digits,vgg11")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    ap.add_argument("--no-fresh", action="store_true", help="skip SpikingJelly in its own process")
    ap.add_argument("--layers", action="store_true", help="per-layer figures against the GEMM and streaming-add "
                                                          "ceilings, and the sparse bound")
    ap.add_argument("--sweep", action="store_true", help="VGG-11 over T, batch and width; batch-1 latency")
    ap.add_argument("--no-compare", action="store_true", help="skip the side-by-side table (with --layers/--sweep)")
    ap.add_argument("--memory-probe", help=argparse.SUPPRESS)
    ap.add_argument("--time-probe", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_probe:
        _memory_probe(args.memory_probe)
        return
    if args.time_probe:
        _time_probe(args.time_probe)
        return
    from snnc.runtime import allocator, native

    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; native kernels: "
          f"{'yes' if native.available() else 'no (' + native.why_unavailable() + ')'}")
    rows: list[dict] = []
    start = time.perf_counter()
    load0 = os.getloadavg()
    for net in args.nets.split(","):
        if net not in NETS:
            raise SystemExit(f"unknown network {net!r}: use {', '.join(NETS)}")
        if not args.no_compare:
            rows += bench(net, args.runs, not args.no_memory, not args.no_fresh)
    print(f"freed memory retained (runtime/allocator.py): {allocator.retain_freed_memory()}")
    print(f"OpenMP wait policy (snnc/__init__.py): {os.environ.get('OMP_WAIT_POLICY', 'torch default')}")
    if rows:
        print_table(rows)
    if args.layers:
        ceil = cpu_layers.ceilings()
        for net in args.nets.split(","):
            cpu_layers.layer_table(net, *NETS[net], ceil)
    if args.sweep:
        sweep()
    print(f"total {time.perf_counter() - start:.0f} s; load average (1/5/15 min) at the start "
          f"{' '.join(f'{v:.2f}' for v in load0)}, at the end {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
