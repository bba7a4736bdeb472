"""GPU benchmarks of the Triton backend (issue 7).

    pip install -e . --no-deps && python benchmarks/triton_gpu.py   # on the GPU machine: all parts
    python benchmarks/triton_gpu.py --markdown out.md   # ... and append the tables as markdown
    python benchmarks/triton_gpu.py --parts 1 --sweep   # (1) for every launch config (tunes choose_launch)
    python benchmarks/triton_gpu.py --dry-run           # the script itself on the CPU interpreter, tiny sizes

(1) Neuron kernel bandwidth. For T = 4..64 and N = 1e5..1e8 neurons, the
    effective bandwidth of the multi-step forward kernel (bytes it must move:
    read X, write S, T*N elements each, plus V) as a fraction of a
    device-to-device copy (`clone`) of X measured in the same run. The target is
    >= 85% of copy bandwidth for large sizes. `--training` adds the training
    forward (also writes H for the backward pass) and the backward kernel.
(2) End-to-end inference of the converted CIFAR-shaped VGG-11 (the network of
    benchmarks/cpu_runtime.py, converted with 99.9% normalization and compiled
    with the triton pipeline) at T = 32, batch 256: the snnc triton session vs
    the same converted network in torch eager on the GPU (one step at a time,
    benchmarks/cpu_runtime.py's EagerStepwise) vs SpikingJelly (the same layers
    as multi-step SpikingJelly modules, its IF neurons on its fastest CUDA
    backend) when importable. Targets: >= 2x eager, >= 1.5x SpikingJelly.
    (2b) linear + neuron: the fused kernel (`-O fused_linear=on`) vs cuBLAS +
    the neuron kernel, to decide the option's default.
(3) One training step (forward + backward + SGD) of a multi-step LIF CSNN in
    snnc.nn with backend="triton" vs backend="torch" vs SpikingJelly's LIF
    (step_mode "m", its fastest backend). Target: >= 1.3x SpikingJelly.

Prints each part's rows, ratios, and a markdown section (device name and date)
to paste into benchmarks/RESULTS.md. Without CUDA it prints why and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# (block, num_warps, prefetch) tried by --sweep
SWEEP_CONFIGS = [(128, 1, 4), (256, 1, 2), (256, 1, 4), (256, 2, 4), (512, 2, 2), (512, 2, 4), (1024, 4, 1),
                 (1024, 4, 2), (1024, 4, 4), (1024, 8, 2), (2048, 8, 2)]  # fmt: skip


@dataclass
class Row:
    """One measurement: a kernel at one size, against the copy of the same input."""

    kernel: str
    dtype: str
    T: int
    N: int
    ms: float
    gbps: float
    copy_gbps: float
    config: str = "auto"

    @property
    def fraction(self) -> float:
        return self.gbps / self.copy_gbps


def bench(fn: Callable[[], object], device: torch.device, reps: int | None = None) -> float:
    """Median milliseconds per call: triton.testing.do_bench on CUDA (L2 flushed), a wall clock otherwise."""
    if device.type == "cuda":
        import triton.testing

        return float(triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median"))
    if reps != 1:
        fn()  # warm-up (a dry run times one cold call)
    times = []
    for _ in range(reps or 3):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return sorted(times)[len(times) // 2]


def neuron_bandwidth(
    Ts: list[int], Ns: list[int], dtypes: list[str], device: torch.device, *, training: bool, sweep: bool
) -> list[Row]:
    """Part (1): forward (and with `training`, training-forward and backward) kernels vs clone."""
    from snnc.core.dynamics import NeuronKind, NeuronParams, ResetMode
    from snnc.runtime.triton import backward, forward, launch
    from snnc.runtime.triton.spec import NeuronSpec
    from snnc.runtime.triton.surrogate import parse_surrogate

    spec = NeuronSpec(NeuronParams(NeuronKind.LIF, 1.0, ResetMode.HARD, 0.0, tau=2.0))  # SpikingJelly's default LIF
    surrogate = parse_surrogate("sigmoid")
    rows: list[Row] = []
    for dname in dtypes:
        dtype = DTYPES[dname]
        size = torch.tensor([], dtype=dtype).element_size()
        for N in Ns:
            for T in Ts:
                state_bytes = 4 * N  # v_final
                need = T * N * (2 * size + (4 + size if training else 0)) + state_bytes
                if not _fits(need, device):
                    print(f"  skip {dname} T={T} N={N:.0e}: needs {need / 2**30:.1f} GiB", file=sys.stderr)
                    continue
                x = torch.randn(T, N, device=device).mul_(0.7).add_(0.35).to(dtype)
                copy_ms = bench(lambda: x.clone(), device)
                copy_gbps = 2 * x.numel() * size / copy_ms / 1e6
                configs = [None] + ([launch.LaunchConfig(b, w, p) for b, w, p in SWEEP_CONFIGS] if sweep else [])
                for cfg in configs:
                    label = "auto" if cfg is None else f"{cfg.block}/{cfg.num_warps}w/p{cfg.prefetch}"
                    with launch.override(cfg) if cfg is not None else contextlib.nullcontext():
                        ms = bench(lambda: forward.run_forward(spec, x, 0.0), device)
                        moved = T * N * 2 * size + state_bytes
                        rows.append(Row("lif-forward", dname, T, N, ms, moved / ms / 1e6, copy_gbps, label))
                        if training and cfg is None:
                            ms = bench(lambda: forward.run_forward(spec, x, 0.0, store_h_seq=True), device)
                            moved = T * N * (2 * size + 4) + state_bytes
                            rows.append(Row("lif-forward-train", dname, T, N, ms, moved / ms / 1e6, copy_gbps))
                            out = forward.run_forward(spec, x, 0.0, store_spikes=False, store_h_seq=True)
                            h_seq, grad_s = out.h_seq, torch.ones_like(x)
                            del out

                            def run_bwd():
                                backward.run_backward(spec, surrogate, False, h_seq, x, 0.0, None, grad_s, None, None,
                                                      want_grad_v0=False, want_grad_leak=False)  # fmt: skip

                            ms = bench(run_bwd, device)
                            moved = T * N * (2 * size + 4)  # read dS and H, write dX
                            rows.append(Row("lif-backward", dname, T, N, ms, moved / ms / 1e6, copy_gbps))
                            del h_seq, grad_s
                    print(_format(rows[-1]), file=sys.stderr)
                del x
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    return rows


@dataclass
class Timing:
    """One method of an end-to-end comparison: milliseconds per call, and a note."""

    part: str
    method: str
    ms: float
    note: str = ""


def _benchmarks_path() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)


def _sj_from_graph(graph, device: torch.device):
    """The converted graph as multi-step SpikingJelly modules (IF neurons on SpikingJelly's own backend).

    Only for graphs that are a chain of ops (VGG); returns None when SpikingJelly is missing.
    """
    try:
        from spikingjelly.activation_based import functional, layer, neuron
    except Exception as e:  # noqa: BLE001 - optional
        print(f"(spikingjelly not available: {type(e).__name__}: {e})", file=sys.stderr)
        return None
    import torch.nn as nn

    from snnc.ir import ops

    F = nn.functional
    mods: list[nn.Module] = []
    for op in graph:
        if isinstance(op, (ops.Input, ops.Output, ops.LayoutCast, ops.Identity)):
            continue
        p = graph.params
        if isinstance(op, ops.Conv2d):
            m = nn.Conv2d(p[op.weight].shape[1] * op.groups, p[op.weight].shape[0], p[op.weight].shape[2:],
                          op.stride, op.padding, op.dilation, op.groups, bias=op.bias is not None)  # fmt: skip
            m.weight.data.copy_(p[op.weight])
            if op.bias is not None:
                m.bias.data.copy_(p[op.bias])
            mods.append(layer.SeqToANNContainer(m))
        elif isinstance(op, ops.Linear):
            m = nn.Linear(p[op.weight].shape[1], p[op.weight].shape[0], bias=op.bias is not None)
            m.weight.data.copy_(p[op.weight])
            if op.bias is not None:
                m.bias.data.copy_(p[op.bias])
            mods.append(layer.SeqToANNContainer(m))
        elif isinstance(op, ops.MaxPool2d):
            mods.append(layer.SeqToANNContainer(nn.MaxPool2d(op.kernel_size, op.stride, op.padding)))
        elif isinstance(op, ops.AvgPool2d):
            mods.append(layer.SeqToANNContainer(nn.AvgPool2d(op.kernel_size, op.stride, op.padding)))
        elif isinstance(op, ops.Flatten):
            mods.append(layer.SeqToANNContainer(nn.Flatten(1 + op.start_dim, -1 if op.end_dim == -1 else 1 + op.end_dim)))
        elif isinstance(op, ops.IF):
            soft = isinstance(op.reset, ops.SoftReset)
            mods.append(neuron.IFNode(v_threshold=op.v_threshold, v_reset=None if soft else op.reset.v_reset,
                                      step_mode="m"))  # fmt: skip
        elif isinstance(op, ops.Scale) and op.weight is None:
            factor = op.factor
            mods.append(_Lambda(lambda x, f=factor: x * f))
        else:
            print(f"(spikingjelly comparison: no module for {op.kind}; skipped)", file=sys.stderr)
            return None
    net = nn.Sequential(*mods).to(device).eval()

    @torch.no_grad()
    def run(x: torch.Tensor, T: int) -> torch.Tensor:
        functional.reset_net(net)
        return net(x.unsqueeze(0).expand(T, *x.shape).contiguous())

    return run


class _Lambda(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def bench_vgg11_inference(device: torch.device, T: int, batch: int, dry: bool) -> list[Timing]:
    """Part (2): converted VGG-11, snnc triton session vs torch eager vs SpikingJelly (ms per batch)."""
    import tempfile

    _benchmarks_path()
    import cpu_runtime  # the network of the CPU benchmark (benchmarks/cpu_runtime.py)

    import snnc
    from snnc.passes import PIPELINES, PassManager, parse_pipeline

    model, calib, _ = cpu_runtime.make_vgg11()
    graph = snnc.convert(model, calib[:8] if dry else calib, "99.9%", show_progress=False)
    graph = PassManager(parse_pipeline(PIPELINES["triton"])).run(graph)
    x = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(1)).to(device)
    out_dir = tempfile.mkdtemp(prefix="snnc-vgg-")
    snnc.compile(graph, target="triton", output=os.path.join(out_dir, "vgg11"), time_steps=T)
    session = snnc.load(os.path.join(out_dir, "vgg11"), device=device, progress=False)
    eager = cpu_runtime.EagerStepwise(graph)
    eager.params = {k: v.to(device) for k, v in eager.params.items()}
    methods = {"snnc triton": lambda: session.run(x, T), "torch eager": lambda: eager(x, T)}
    sj = _sj_from_graph(graph, device)
    if sj is not None:
        methods["spikingjelly"] = lambda: sj(x, T)
    ref = None
    rows = []
    for name, fn in methods.items():
        out = fn()  # also the warm-up (kernel compilation, cuDNN algorithm choice, graph capture)
        ref = out.mean(0).argmax(-1) if ref is None else ref
        agree = (out.mean(0).argmax(-1) == ref).float().mean().item()
        rows.append(Timing("vgg11", name, bench(fn, device, reps=1 if dry else None), f"same argmax as snnc: {agree:.1%}"))
        print(f"  vgg11 T={T} batch={batch} {name:14s} {rows[-1].ms:10.2f} ms  {rows[-1].note}", file=sys.stderr)
    return rows


def bench_fused_linear(device: torch.device, T: int, batch: int, Ks: list[int], M: int, dry: bool) -> list[Timing]:
    """Part (2b): linear + IF as one kernel vs F.linear (cuBLAS) + the neuron kernel."""
    import torch.nn.functional as F

    from snnc.core.dynamics import NeuronKind, NeuronParams, ResetMode
    from snnc.runtime.triton import linear, neuron

    params = NeuronParams(NeuronKind.IF, 1.0, ResetMode.SOFT)
    rows = []
    for K in Ks:
        g = torch.Generator().manual_seed(K)
        x = (torch.rand(T, batch, K, generator=g) < 0.2).float().to(device)
        w = (torch.randn(M, K, generator=g) / K**0.5).to(device)
        b = torch.zeros(M, device=device)
        fused = bench(lambda: linear.linear_multi_step(params, x, w, b, v0=0.5), device, reps=1 if dry else None)
        split = bench(lambda: neuron.multi_step(params, F.linear(x, w, b), 0.5), device, reps=1 if dry else None)
        rows.append(Timing("linear+if", f"K={K} fused", fused, f"{split / fused:.2f}x cuBLAS + neuron kernel"))
        rows.append(Timing("linear+if", f"K={K} unfused", split))
        print(f"  linear+if T={T} B={batch} K={K} M={M}: fused {fused:.3f} ms, unfused {split:.3f} ms",
              file=sys.stderr)  # fmt: skip
    return rows


def _csnn(layer, neuron, channels: int):
    """The training benchmark's CSNN, from snnc.nn's or SpikingJelly's `layer` and `neuron` modules."""
    import torch.nn as nn

    return nn.Sequential(
        layer.Conv2d(3, channels, 3, padding=1, bias=False), layer.BatchNorm2d(channels), neuron.LIFNode(),
        layer.MaxPool2d(2),
        layer.Conv2d(channels, channels, 3, padding=1, bias=False), layer.BatchNorm2d(channels), neuron.LIFNode(),
        layer.MaxPool2d(2), layer.Flatten(), layer.Linear(channels * 8 * 8, 10),
    )  # fmt: skip


def _csnn_snnc(backend: str, channels: int):
    from snnc.nn import functional, layer, neuron

    net = _csnn(layer, neuron, channels)
    functional.set_step_mode(net, "m")
    functional.set_backend(net, backend, instance=neuron.LIFNode)
    return net, functional.reset_net


def _csnn_spikingjelly(channels: int):
    try:
        from spikingjelly.activation_based import functional, layer, neuron
    except Exception as e:  # noqa: BLE001 - optional
        print(f"(spikingjelly not available: {type(e).__name__}: {e})", file=sys.stderr)
        return None
    net = _csnn(layer, neuron, channels)
    functional.set_step_mode(net, "m")
    return net, functional.reset_net


def bench_training_step(device: torch.device, T: int, batch: int, channels: int, dry: bool) -> list[Timing]:
    """Part (3): forward + backward + SGD step of a multi-step LIF CSNN on 32x32 inputs (ms per step)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(T, batch, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)
    nets = {"snnc.nn triton": _csnn_snnc("triton", channels), "snnc.nn torch": _csnn_snnc("torch", channels)}
    sj = _csnn_spikingjelly(channels)
    if sj is not None:
        nets["spikingjelly"] = sj
    rows = []
    for name, (net, reset_net) in nets.items():
        net = net.to(device).train()
        opt = torch.optim.SGD(net.parameters(), lr=0.01)

        def step(net=net, reset_net=reset_net, opt=opt):
            reset_net(net)
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(net(x).mean(0), y)
            loss.backward()
            opt.step()

        rows.append(Timing("train", name, bench(step, device, reps=1 if dry else None)))
        print(f"  train T={T} batch={batch} {name:16s} {rows[-1].ms:10.2f} ms", file=sys.stderr)
    return rows


def ratios(rows: list[Timing], of: str, against: list[str]) -> list[str]:
    """'a is 2.10x b' lines: how many times faster `of` is than each method in `against`."""
    by = {r.method: r.ms for r in rows}
    return [f"{of}: {by[b] / by[of]:.2f}x {b}" for b in against if b in by and of in by]


def markdown(rows: list[Row], device_name: str) -> str:
    lines = [
        f"### Triton neuron kernels: {device_name}, {datetime.date.today().isoformat()}",
        "",
        f"torch {torch.__version__}, triton {_triton_version()}. Bandwidth = bytes the kernel must move / time; "
        "copy = `clone()` of the same input in the same run.",
        "",
        "| kernel | dtype | T | N | config | ms | GB/s | copy GB/s | of copy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r.kernel} | {r.dtype} | {r.T} | {r.N:.0e} | {r.config} | {r.ms:.4f} | {r.gbps:.0f} | "
                     f"{r.copy_gbps:.0f} | {r.fraction:.1%} |")  # fmt: skip
    big = [r for r in rows if r.N >= 10**7 and r.kernel == "lif-forward" and r.config == "auto"]
    if big:
        worst = min(big, key=lambda r: r.fraction)
        verdict = "meets" if worst.fraction >= 0.85 else "misses"
        lines += ["", f"Forward kernel at N >= 1e7: worst {worst.fraction:.1%} of copy "
                      f"({worst.dtype}, T={worst.T}, N={worst.N:.0e}); {verdict} the 85% target."]  # fmt: skip
    return "\n".join(lines) + "\n"


def markdown_timings(title: str, rows: list[Timing], notes: list[str]) -> str:
    lines = [f"#### {title}", "", "| method | ms | note |", "|---|---:|---|"]
    lines += [f"| {r.method} | {r.ms:.2f} | {r.note} |" for r in rows]
    return "\n".join(lines + [""] + [f"- {n}" for n in notes]) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", nargs="+", choices=["1", "2", "2b", "3"], default=["1", "2", "2b", "3"])
    ap.add_argument("--T", type=int, nargs="+", default=[4, 8, 16, 32, 64], help="(1) time steps")
    ap.add_argument("--N", type=float, nargs="+", default=[1e5, 1e6, 1e7, 1e8], help="(1) neurons")
    ap.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=["fp32", "fp16"])
    ap.add_argument("--training", action="store_true", help="(1) also the training forward and the backward kernel")
    ap.add_argument("--sweep", action="store_true", help="(1) also every launch config in SWEEP_CONFIGS")
    ap.add_argument("--vgg-T", type=int, default=32)
    ap.add_argument("--vgg-batch", type=int, default=256)
    ap.add_argument("--train-T", type=int, default=16)
    ap.add_argument("--train-batch", type=int, default=64)
    ap.add_argument("--train-channels", type=int, default=128)
    ap.add_argument("--markdown", help="append the results as markdown to this file")
    ap.add_argument("--dry-run", action="store_true", help="check the script on the CPU interpreter, tiny sizes")
    args = ap.parse_args(argv)

    linear_Ks, linear_M, linear_T, linear_B = [128, 512, 2048], 512, 32, 256
    if args.dry_run:
        os.environ["TRITON_INTERPRET"] = "1"  # before the kernel modules are imported
        device, device_name = torch.device("cpu"), "CPU (Triton interpreter; timings meaningless)"
        args.T, args.N, args.dtypes = [2, 3], [1000], ["fp32"]
        args.vgg_T, args.vgg_batch = 2, 1
        args.train_T, args.train_batch, args.train_channels = 2, 2, 4
        linear_Ks, linear_M, linear_T, linear_B = [32], 16, 2, 16
    elif not torch.cuda.is_available():
        print("triton_gpu.py: no CUDA device; the Triton GPU benchmarks need one (run it on the GPU machine). Skipped.")
        return 0
    else:
        device, device_name = torch.device("cuda"), torch.cuda.get_device_name()
    try:
        import triton  # noqa: F401
    except ImportError:
        print("triton_gpu.py: triton is not installed; nothing to benchmark. Skipped.")
        return 0

    print(f"device: {device_name}; torch {torch.__version__}, triton {_triton_version()}", file=sys.stderr)
    sections = []
    if "1" in args.parts:
        rows = neuron_bandwidth(args.T, [int(n) for n in args.N], args.dtypes, device,
                                training=args.training, sweep=args.sweep)  # fmt: skip
        sections.append(markdown(rows, device_name))
    head = f"### Triton end-to-end: {device_name}, {datetime.date.today().isoformat()}\n"
    timed = []
    if "2" in args.parts:
        rows = bench_vgg11_inference(device, args.vgg_T, args.vgg_batch, args.dry_run)
        notes = ratios(rows, "snnc triton", ["torch eager", "spikingjelly"]) + [
            "targets: >= 2x torch eager, >= 1.5x spikingjelly"]
        timed.append(markdown_timings(f"(2) converted VGG-11 inference, T={args.vgg_T}, batch {args.vgg_batch}",
                                      rows, notes))  # fmt: skip
    if "2b" in args.parts:
        rows = bench_fused_linear(device, linear_T, linear_B, linear_Ks, linear_M, args.dry_run)
        timed.append(markdown_timings(f"(2b) linear + IF, T={linear_T}, batch {linear_B}, M={linear_M}", rows,
                                      ["fused = `-O fused_linear=on`; make it the default where it wins"]))  # fmt: skip
    if "3" in args.parts:
        rows = bench_training_step(device, args.train_T, args.train_batch, args.train_channels, args.dry_run)
        notes = ratios(rows, "snnc.nn triton", ["snnc.nn torch", "spikingjelly"]) + ["target: >= 1.3x spikingjelly"]
        timed.append(markdown_timings(f"(3) LIF CSNN training step, T={args.train_T}, batch {args.train_batch}, "
                                      f"{args.train_channels} channels, 32x32", rows, notes))  # fmt: skip
    if timed:
        sections.append(head + f"\ntorch {torch.__version__}, triton {_triton_version()}.\n\n" + "\n".join(timed))
    text = "\n".join(sections)
    print(text)
    if args.markdown:
        with open(args.markdown, "a") as f:
            f.write("\n" + text)
    return 0


def _fits(nbytes: int, device: torch.device) -> bool:
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes < 0.85 * free


def _format(r: Row) -> str:
    return (f"  {r.kernel:18s} {r.dtype} T={r.T:<3d} N={r.N:.0e} {r.config:>8s}: {r.ms:9.4f} ms "
            f"{r.gbps:7.0f} GB/s  copy {r.copy_gbps:7.0f} GB/s  {r.fraction:6.1%}")  # fmt: skip


def _triton_version() -> str:
    try:
        import triton

        return triton.__version__
    except ImportError:
        return "absent"


if __name__ == "__main__":
    sys.exit(main())
