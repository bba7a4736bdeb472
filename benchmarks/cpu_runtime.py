"""CPU runtime throughput: snnc vs plain PyTorch eager vs SpikingJelly 2.0's converted model.

    .venv/bin/python benchmarks/cpu_runtime.py            # both networks, 5 runs each
    .venv/bin/python benchmarks/cpu_runtime.py --nets digits --runs 3

Networks (ANN -> SNN with 99.9% normalization, constant analog input):
  digits  the demo CNN (snnc.demo.DigitsCNN, trained, cached), T = 32, batch 256
  vgg11   CIFAR-10-shaped VGG-11 with BatchNorm, random weights, calibrated on random data,
          T = 16, batch 32

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

Each method runs once per round, rounds interleave the methods (so load from other
processes hits all of them alike), and the table reports the median of the rounds:
seconds per batch, samples/s, the speed-up of snnc, and the peak resident memory of
one batch in a fresh process per method: the rise of the kernel's peak-RSS mark
(VmHWM, reset before the call) above the RSS after the model is built, run once
on one sample for one step, and free heap pages are returned (malloc_trim).
"""

from __future__ import annotations

import argparse
import copy
import functools
import os
import platform
import statistics
import time
import warnings

import torch
import torch.nn as nn

import snnc
from snnc.core import dynamics
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.runtime import Session


# -- networks -------------------------------------------------------------------
def vgg11(num_classes: int = 10) -> nn.Module:
    cfg = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
    layers: list[nn.Module] = []
    c = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
            c = v
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512, num_classes))


def make_vgg11(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """(model, calibration data [64, 3, 32, 32], input batch [32, 3, 32, 32]), all random, seeded."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = vgg11()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval(), torch.rand(64, 3, 32, 32, generator=g), torch.rand(32, 3, 32, 32, generator=g)


def make_digits() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    from snnc.core import datasets
    from snnc.demo import pretrained_digits_cnn

    data = datasets.digits()
    return pretrained_digits_cnn(data), data.x_train[:512], data.x_test[:256]


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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sj = Converter(recipe=RateCodingRecipe(loader, mode=mode)).convert(copy.deepcopy(model)).eval()

    @torch.no_grad()
    def run(x: torch.Tensor, T: int) -> torch.Tensor:
        functional.reset_net(sj)
        return torch.stack([sj(x) for _ in range(T)])

    return run


# -- measuring --------------------------------------------------------------------------
NETS = {"digits": (make_digits, 32), "vgg11": (make_vgg11, 16)}


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


def memory_in_child(net: str, method: str) -> float | None:
    """Peak RSS growth (MB) of one batch in a fresh process (glibc's default malloc settings)."""
    import json
    import subprocess
    import sys

    env = dict(os.environ, SNNC_RETAIN_MEMORY="0")
    r = subprocess.run([sys.executable, __file__, "--memory-probe", f"{net}:{method}"], capture_output=True,
                       text=True, env=env, timeout=600)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1])["peak_mb"] if r.returncode == 0 and lines else None


def _memory_probe(spec: str) -> None:
    import json

    net, method = spec.split(":")
    methods, x, T = build_methods(net, method)
    fn = methods[method]
    fn(x[:1], 1)  # lazy initialisation
    print(json.dumps({"peak_mb": peak_rss_growth(fn, x, T) / 2**20}))


def bench(net: str, runs: int, memory: bool) -> list[dict]:
    methods, x, T = build_methods(net)
    for fn in methods.values():  # warm up (oneDNN primitives, the native kernel build)
        fn(x, 2)
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
    return rows


def print_table(rows: list[dict]) -> None:
    print("\n| network | method | T | batch | s/batch (median) | samples/s | snnc speed-up | snnc-exact speed-up "
          "| peak MB | same argmax as snnc |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        mem = "n/a" if r["peak_mb"] is None else f"{r['peak_mb']:.0f}"
        print(f"| {r['net']} | {r['method']} | {r['T']} | {r['batch']} | {r['seconds']:.3f} | "
              f"{r['samples_per_s']:.1f} | {r['vs_snnc']:.2f}x | {r['vs_exact']:.2f}x | "
              f"{mem} | "
              f"{r['agree']:.1f}%{' (bit-exact with snnc-exact)' if r['exact'] and r['method'] != 'snnc-exact' else ''} |")
    print("\nspeed-up = the method's median time / snnc's (or snnc-exact's); snnc = Session(graph), the default "
          "(channels_last, event-driven convs on spikes); snnc-exact = Session(graph, channels_last=False, "
          "event_conv=False), bit-exact with eager NCHW torch; peak MB = peak RSS growth during one batch in a "
          "fresh process.")
    for r in rows:
        print(f"  {r['net']:7s} {r['method']:13s} runs (s): {' '.join(f'{t:.3f}' for t in r['all'])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default="digits,vgg11")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    ap.add_argument("--memory-probe", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_probe:
        _memory_probe(args.memory_probe)
        return
    from snnc.runtime import allocator, native

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; native kernels: "
          f"{'yes' if native.available() else 'no (' + native.why_unavailable() + ')'}")
    rows: list[dict] = []
    start = time.perf_counter()
    load0 = os.getloadavg()
    for net in args.nets.split(","):
        if net not in NETS:
            raise SystemExit(f"unknown network {net!r}: use {', '.join(NETS)}")
        rows += bench(net, args.runs, not args.no_memory)
    print(f"freed memory retained (runtime/allocator.py): {allocator.retain_freed_memory()}")
    print_table(rows)
    print(f"total {time.perf_counter() - start:.0f} s; load average (1/5/15 min) at the start "
          f"{' '.join(f'{v:.2f}' for v in load0)}, at the end {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
