"""GPU benchmarks of the Triton backend (issue 7).

    python benchmarks/triton_gpu.py                  # (1) on the GPU; prints a table
    python benchmarks/triton_gpu.py --markdown out.md   # ... and appends it as markdown
    python benchmarks/triton_gpu.py --sweep          # (1) for every launch config (tunes choose_launch)
    python benchmarks/triton_gpu.py --dry-run        # the script itself on the CPU interpreter, tiny sizes

(1) Neuron kernel bandwidth. For T = 4..64 and N = 1e5..1e8 neurons, the
    effective bandwidth of the multi-step forward kernel (bytes it must move:
    read X, write S, T*N elements each, plus V) as a fraction of a
    device-to-device copy (`clone`) of X measured in the same run. The target is
    >= 85% of copy bandwidth for large sizes. `--training` adds the training
    forward (also writes H for the backward pass) and the backward kernel.
(2) End-to-end VGG-11 inference and (3) a training step vs SpikingJelly: TODO
    hooks below, to be filled once the Triton runtime exists.

Without CUDA it prints why and exits 0.
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


def bench(fn: Callable[[], object], device: torch.device) -> float:
    """Median milliseconds per call: triton.testing.do_bench on CUDA (L2 flushed), a wall clock otherwise."""
    if device.type == "cuda":
        import triton.testing

        return float(triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median"))
    fn()
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return sorted(times)[1]


def neuron_bandwidth(
    Ts: list[int], Ns: list[int], dtypes: list[str], device: torch.device, *, training: bool, sweep: bool
) -> list[Row]:
    """Part (1): forward (and with `training`, training-forward and backward) kernels vs clone."""
    from snnc.dynamics import NeuronKind, NeuronParams, ResetMode
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


def bench_vgg11_inference(device: torch.device) -> list[Row] | None:
    """Part (2). TODO(runtime): converted CIFAR-shaped VGG-11, T=32, batch 256: the snnc Triton runtime
    (`snnc compile --target triton`) vs the same network in torch eager on the GPU, and vs SpikingJelly's
    triton/cupy backends when importable. Return rows of (name, ms per batch, speed-up)."""
    return None


def bench_training_step(device: torch.device) -> list[Row] | None:
    """Part (3). TODO(runtime): one forward + backward step of a multi-step LIF CSNN with
    `snnc.nn` neurons on backend="triton" vs SpikingJelly's fastest backend (cupy/triton)."""
    return None


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--T", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    ap.add_argument("--N", type=float, nargs="+", default=[1e5, 1e6, 1e7, 1e8])
    ap.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=["fp32", "fp16"])
    ap.add_argument("--training", action="store_true", help="also the training forward and the backward kernel")
    ap.add_argument("--sweep", action="store_true", help="also every launch config in SWEEP_CONFIGS")
    ap.add_argument("--markdown", help="append the results as markdown to this file")
    ap.add_argument("--dry-run", action="store_true", help="check the script on the CPU interpreter, tiny sizes")
    args = ap.parse_args(argv)

    if args.dry_run:
        os.environ["TRITON_INTERPRET"] = "1"  # before the kernel modules are imported
        device, device_name = torch.device("cpu"), "CPU (Triton interpreter; timings meaningless)"
        args.T, args.N = [2, 4], [1000, 3000]
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
    rows = neuron_bandwidth(args.T, [int(n) for n in args.N], args.dtypes, device,
                            training=args.training, sweep=args.sweep)  # fmt: skip
    for name, hook in (("VGG-11 inference", bench_vgg11_inference), ("training step", bench_training_step)):
        if hook(device) is None:
            print(f"{name}: TODO, waits for the Triton runtime", file=sys.stderr)
    text = markdown(rows, device_name)
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
