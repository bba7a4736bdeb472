"""benchmarks/cpu_runtime.py --layers: per synaptic layer of a network, its input density, synaptic ops,
dense MACs, time and achieved rate against two ceilings measured in the same run (a dense GEMM's MAC/s, a
streaming add's bytes/s, and the same add on L2-resident arrays), and the whole run against the sparse
bound. cpu_runtime's docstring explains the figures.
"""

from __future__ import annotations

import functools
import math
import statistics
import time

import torch

import snnc
from snnc.ir.graph import Graph
from snnc.runtime import Session, event_conv


def wall_time(fn) -> float:
    """Seconds fn() takes (wall clock); cpu_runtime times its rounds with it too."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def ceilings() -> dict[str, float]:
    """This machine's dense GEMM MAC/s (torch.mm of 2048 x 2048 float32), streaming add bytes/s
    (c = a + b over 32 Mi floats, 12 bytes per element) and the same add's rate on L2-resident
    arrays (32 Ki floats each), best of 5, measured now."""
    a, b = torch.rand(2048, 2048), torch.rand(2048, 2048)
    torch.mm(a, b)
    gemm = min(wall_time(lambda: torch.mm(a, b)) for _ in range(5))
    n = 32 << 20
    u, v, w = torch.rand(n), torch.rand(n), torch.empty(n)
    torch.add(u, v, out=w)
    add = min(wall_time(lambda: torch.add(u, v, out=w)) for _ in range(5))
    m, reps = 32 << 10, 200  # 3 x 128 KiB: in L2
    u, v, w = torch.rand(m), torch.rand(m), torch.empty(m)

    def cached_adds():
        for _ in range(reps):
            torch.add(u, v, out=w)
    cached_adds()
    cached = min(wall_time(cached_adds) for _ in range(5))
    return {"gemm_macs_per_s": 2048 ** 3 / gemm, "add_bytes_per_s": 12 * n / add, "adds_per_s": n / add,
            "cached_adds_per_s": m * reps / cached}


class NodeTimer:
    """Wall time per plan node while it is active (wraps the executor's per-node calls; benchmark only)."""

    def __init__(self):
        from snnc.runtime import executor

        self.cls = executor.Executor
        self.seconds: dict[str, float] = {}

    def __enter__(self):
        self.saved = {k: getattr(self.cls, k) for k in ("_exec", "_neuron", "_stateful", "_conv_neuron")}
        for name, fn in self.saved.items():
            setattr(self.cls, name, self._wrap(fn))
        return self

    def __exit__(self, *exc):
        for name, fn in self.saved.items():
            setattr(self.cls, name, fn)

    def _wrap(self, fn):
        seconds = self.seconds

        @functools.wraps(fn)
        def timed(ex, node, *args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(ex, node, *args, **kwargs)
            finally:  # a conv fused with its neuron counts as the conv (its first member)
                key = node.members[0] if node.then is not None else node.name
                seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - t
        return timed


def kernel_labels(s: Session, graph: Graph, batch: int) -> dict[str, str]:
    """The kernel each synaptic layer of `graph` runs on in Session `s` for this batch size: "event+neuron"
    (event conv, Add and neuron in one kernel), "event+pool+neuron" (with the running max pool between
    them), "event, neuron apart" (planned so, but a step has too few
    output pixels: executor._conv_neuron runs them one after another), "event"; the others run dense."""
    plan = s._interp.plan(frozenset(i.name for i in graph.inputs), frozenset(o.name for o in graph.outputs))
    labels = {}
    for n in plan.nodes:
        if n.then is not None:
            conv = n.members[0]
            pixels = batch * math.prod(graph.types[conv].shape[-2:])
            one = "event+pool+neuron" if n.then.pool is not None else "event+neuron"
            labels[conv] = one if event_conv.runs_fused(pixels) else "event, neuron apart"
        elif n.spike_amplitude is not None:
            labels[n.name] = "event"
    return labels


def layer_table(net: str, make, T: int, ceil: dict[str, float], runs: int = 3) -> dict:
    """Per synaptic layer of network `net` (make() -> model, calibration, input; T steps): input density,
    synaptic ops, dense MACs, time and achieved rate; the whole run's time against the sparse bound (all
    synaptic ops at the streaming add's rate)."""
    model, calib, x = make()
    graph = snnc.convert(model, calib, "99.9%", show_progress=False)
    s = Session(graph, progress=False)
    s.run(x, T)
    stats = s.observe(x, T, stats=True).stats
    per_layer: dict[str, list[float]] = {}
    totals = []
    for _ in range(runs):
        with NodeTimer() as timer:
            t = time.perf_counter()
            s.run(x, T)
            totals.append(time.perf_counter() - t)
        for k, v in timer.seconds.items():
            per_layer.setdefault(k, []).append(v)
    sec = {k: statistics.median(v) for k, v in per_layer.items()}
    total = statistics.median(totals)
    batch = x.shape[0]
    print(f"\n### {net}: T={T}, batch {batch}; dense GEMM {ceil['gemm_macs_per_s'] / 1e9:.1f} GMAC/s, streaming add "
          f"{ceil['add_bytes_per_s'] / 1e9:.1f} GB/s = {ceil['adds_per_s'] / 1e9:.2f} Gadd/s, cached add "
          f"{ceil['cached_adds_per_s'] / 1e9:.2f} Gadd/s (measured now)\n")
    print("| layer | kind | kernel | input density | synaptic ops | dense MACs | time (ms) | achieved | "
          "vs dense GEMM | vs streaming add | vs cached add |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    labels = kernel_labels(s, graph, batch)
    sops = 0
    syn_time = 0.0
    for syn in stats.synapses:
        t = sec.get(syn.name, 0.0)
        syn_time += t
        kernel = labels.get(syn.name, "dense")
        if syn.event_driven:  # spike input: synaptic ops = events x fan-out
            dense = syn.ann_macs * batch * T
            sops += syn.sops
            rate = syn.sops / t if t else float("nan")
            print(f"| {syn.name} | {syn.kind} | {kernel} | {syn.sops / dense:.3f} | {syn.sops:.3g} | {dense:.3g} | "
                  f"{t * 1e3:.1f} | {rate / 1e9:.2f} Gop/s | {rate / ceil['gemm_macs_per_s']:.2f} | "
                  f"{rate / ceil['adds_per_s']:.2f} | {rate / ceil['cached_adds_per_s']:.2f} |")
        else:  # analog input (the first layer once for a constant input, or after average pooling)
            rate = syn.macs / t if t else float("nan")
            print(f"| {syn.name} | {syn.kind} | {kernel} | analog | — | {syn.macs:.3g} | {t * 1e3:.1f} | "
                  f"{rate / 1e9:.2f} GMAC/s | {rate / ceil['gemm_macs_per_s']:.2f} | — | — |")
    bound = sops / ceil["adds_per_s"]
    cached = sops / ceil["cached_adds_per_s"]
    rest = total - syn_time
    fused = (" (event+neuron: with the neuron and the Add, or the max pool, fused into the conv)"
             if any(v.startswith("event+") for v in labels.values()) else "")
    print(f"\nwhole run {total * 1e3:.0f} ms: synaptic layers {syn_time * 1e3:.0f} ms{fused}, neurons and other ops "
          f"{rest * 1e3:.0f} ms; sparse bound (all {sops:.3g} synaptic ops at the streaming add's rate) "
          f"{bound * 1e3:.1f} ms: the run takes {total / bound:.2f}x the bound; at the cached add's rate "
          f"{cached * 1e3:.1f} ms: {total / cached:.2f}x")
    return {"net": net, "total": total, "bound": bound, "cached_bound": cached, "sops": sops}


# -- how cost grows -------------------------------------------------------------------
