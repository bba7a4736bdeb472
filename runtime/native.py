"""The C kernels (neuron updates over time, pooling, the event conv), built on first use and loaded
with ctypes.

Why C: a neuron's T steps are a recurrence, so torch runs them as a Python loop
of 4-5 whole-tensor ops per step, each a pass over memory. The C loop keeps a
block of membrane potentials in registers/L1 and makes one pass over x and the
spikes. Measured on the 2-core CPU (digits layer 1, [32, 256, 16, 8, 8]):
torch loop 110-450 ms, this kernel 5 ms. torch.compile needed ~60 s to compile
and ran at 430 ms; a torch.utils.cpp_extension build took ~100 s (torch
headers); plain C builds in ~0.3 s.

Exactness: the kernel evaluates the expressions of `snnc.core.dynamics` in the same
order in float32, compiled with -ffp-contract=off (no fused multiply-add), so
spikes and potentials are bit-identical to the torch definition (tested).

The C sources are package data next to the modules that call them: runtime/native.c
(neurons and pooling, called from here) and runtime/event_conv.c (the event-driven
conv of `snnc.runtime.event_conv`). Two things are declared once and derived here:
- the neuron codes: native.c includes snnc_native.h, which `header()`
  generates from the enums of `snnc.core.dynamics` (`.code` of Charge,
  ResetMode, FireCompare, and every combination of them);
- the argument lists: `signatures()` reads each exported `snnc_*` function's
  definition from the .c file; its ctypes argtypes come from that reading, and
  snnc_native.h declares the same prototypes, so the compiler rejects a
  misreading.

The library is compiled with the system C compiler (`$CC`, else cc/gcc/clang)
into the snnc cache folder, under a name hashed from the sources, the
generated header, the compiler, its flags and the CPU, so a changed .c file
rebuilds; with no compiler, or SNNC_NATIVE=0, `load()` returns None and the
runtime uses the torch loop.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from snnc.core import fileio
from snnc.core.dynamics import Charge, FireCompare, NeuronParams, ResetMode

SOURCE_DIR = Path(__file__).parent  # the .c files sit next to the modules that call them
SOURCES = ("native.c", "event_conv.c", "neuron_step.h")  # headers are written beside the .c files, not compiled
HEADER = "snnc_native.h"

FLAGS = ["-O3", "-std=c99", "-ffp-contract=off", "-fno-trapping-math", "-fPIC", "-shared"]
_ARCH_FLAGS = ["-march=native"] if platform.machine() in ("x86_64", "AMD64", "aarch64", "arm64") else []

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_tried = False
_why: str = "not loaded yet"
_pool: ThreadPoolExecutor | None = None


def _compiler() -> str | None:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    return None


def _cpu_id() -> str:
    """Identifies the CPU the library is built for (-march=native)."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags"))][:2]
        return "".join(lines)
    except OSError:
        return platform.processor()


def _cache_dir() -> Path:
    return fileio.cache_dir() / "native"


_CTYPES = {"int": ctypes.c_int, "int64_t": ctypes.c_int64, "float": ctypes.c_float}
_RESTYPES = {"int": ctypes.c_int, "void": None}
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_DEFINITION = re.compile(r"^(\w+)\s+(snnc_\w+)\s*\(([^)]*)\)\s*\{", re.M)
_PARAM = re.compile(r"^(.*?)\s*\b(\w+)$", re.S)


@dataclass(frozen=True)
class Signature:
    """An exported C function as its definition in runtime/*.c reads: the one declaration of its arguments."""

    name: str
    restype: str
    params: tuple[tuple[str, str], ...]  # (C type, name), e.g. ("const float* restrict", "x")

    @property
    def prototype(self) -> str:
        return f"{self.restype} {self.name}({', '.join(f'{t} {n}' for t, n in self.params)});"

    @property
    def ctypes_restype(self):
        return _RESTYPES[self.restype]

    @property
    def argtypes(self) -> list:
        return [_ctype(t, f"{self.name}: parameter {n}") for t, n in self.params]


def _ctype(c_type: str, where: str):
    words = c_type.replace("*", " * ").split()
    if "*" in words:
        return ctypes.c_void_p
    base = " ".join(w for w in words if w != "const")
    if base not in _CTYPES:
        raise ValueError(f"{where}: C type {c_type!r} has no ctypes mapping (known: {sorted(_CTYPES)} and pointers)")
    return _CTYPES[base]


def signatures(source: str, file: str = "<source>") -> list[Signature]:
    """The exported functions (`snnc_*` definitions at the start of a line) of a C source."""
    out = []
    for m in _DEFINITION.finditer(_COMMENT.sub(" ", source)):
        restype, name, plist = m.groups()
        if restype not in _RESTYPES:
            raise ValueError(f"{file}: {name} returns {restype!r}; exported functions return {sorted(_RESTYPES)}")
        params = []
        for raw in plist.split(","):
            pm = _PARAM.match(" ".join(raw.split()))
            if pm is None or not pm.group(1):
                raise ValueError(f"{file}: {name}: cannot read the parameter {raw.strip()!r}")
            params.append((pm.group(1), pm.group(2)))
        sig = Signature(name, restype, tuple(params))
        sig.argtypes  # noqa: B018 - every type must map now, not at the first call
        out.append(sig)
    return out


def sources() -> dict[str, str]:
    """The C sources by file name, as the package holds them."""
    return {name: (SOURCE_DIR / name).read_text() for name in SOURCES}


def header(srcs: dict[str, str]) -> str:
    """snnc_native.h: the codes of snnc.core.dynamics and the prototypes of the exported functions."""
    lines = ["/* Generated by snnc.runtime.native from snnc.core.dynamics and runtime/*.c: do not edit. */",
             "#include <stdint.h>"]
    for enum_cls, prefix in ((Charge, "CHARGE"), (ResetMode, "RESET"), (FireCompare, "COMPARE")):
        lines += [f"#define SNNC_{prefix}_{m.name} {m.code}" for m in enum_cls]
    combos = " ".join(f"X({c.code}, {r.code}, {f.code})" for c in Charge for r in ResetMode for f in FireCompare)
    lines.append(f"/* X(charge, reset, compare) for every neuron variant */\n#define SNNC_NEURON_VARIANTS(X) {combos}")
    lines += [sig.prototype for name, text in srcs.items() for sig in signatures(text, name)]
    return "\n".join(lines) + "\n"


def build(cc: str, out_dir: Path, srcs: dict[str, str] | None = None) -> Path:
    """Compile the kernel library from srcs (default: `sources()`) into out_dir (atomically); returns the .so path."""
    flags = FLAGS + _ARCH_FLAGS
    srcs = sources() if srcs is None else srcs
    head = header(srcs)
    texts = [part for name, text in srcs.items() for part in (name, text)]
    key = hashlib.sha256("\0".join([*texts, head, cc, *flags, sys.platform, platform.machine(), _cpu_id()]).encode())
    path = out_dir / f"snnc_neuron-{key.hexdigest()[:16]}.so"
    if path.is_file():
        return path
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        (Path(tmp) / HEADER).write_text(head)
        files = []
        for name, text in srcs.items():  # the texts hashed above, not a re-read
            (Path(tmp) / name).write_text(text)
            if name.endswith(".c"):
                files.append(str(Path(tmp) / name))
        so = Path(tmp) / "neuron.so"
        r = subprocess.run([cc, *flags, *files, "-o", str(so)], capture_output=True, text=True, timeout=120)
        if r.returncode != 0 and _ARCH_FLAGS:  # e.g. a compiler without -march=native
            r = subprocess.run([cc, *FLAGS, *files, "-o", str(so)], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"{cc} failed: {r.stderr.strip()[:500]}")
        os.replace(so, path)
    return path


def build_library(srcs: dict[str, str]) -> ctypes.CDLL:
    """The kernel library built from srcs (file name -> text, as `sources()` gives them; cached like
    `load()`'s) with the ctypes signature of each exported function; RuntimeError without a compiler.
    `load()` builds today's sources; benchmarks/kernel_ab.py builds another revision's beside them."""
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler found (set $CC)")
    lib = ctypes.CDLL(str(build(cc, _cache_dir(), srcs)))
    for name, text in srcs.items():
        for sig in signatures(text, name):
            fn = getattr(lib, sig.name)
            fn.restype, fn.argtypes = sig.ctypes_restype, sig.argtypes
    return lib


def load() -> ctypes.CDLL | None:
    """The kernel library, or None when it cannot be built here (see `why_unavailable`)."""
    global _lib, _tried, _why
    if _tried:
        return _lib
    with _lock:
        if _tried:
            return _lib
        try:
            if os.environ.get("SNNC_NATIVE", "1") == "0":
                raise RuntimeError("disabled by SNNC_NATIVE=0")
            _lib, _why = build_library(sources()), ""
        except Exception as e:  # noqa: BLE001 - any failure means: use the torch loop
            _lib, _why = None, f"{type(e).__name__}: {e}"
        _tried = True
    return _lib


def available() -> bool:
    return load() is not None


def why_unavailable() -> str:
    load()
    return _why


def codes(p: NeuronParams) -> tuple[int, int, int]:
    """The neuron's (charge, reset, compare) codes, the first arguments of the neuron kernels."""
    return p.charge.code, p.reset.code, p.compare.code


def _forget_pool() -> None:
    global _pool
    _pool = None  # a forked child has none of the parent's worker threads


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def threads() -> ThreadPoolExecutor:
    """The worker threads the kernels' element ranges run on (ctypes releases the GIL)."""
    global _pool
    if _pool is None:
        with _lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads()),
                                           thread_name_prefix="snnc-neuron")
    return _pool


# Below this many element-steps one thread is faster than handing work to the pool.
PARALLEL_MIN = 1 << 18


def neuron_f32(p: NeuronParams, x: torch.Tensor, x_step_stride: int, out: torch.Tensor, v: torch.Tensor,
               vseq: torch.Tensor | None, T: int, E: int, pre: float, post: float, th: float, vr: float,
               tau: float) -> None:
    """Run the kernel over T steps of E elements (all tensors dense float32 on the CPU).

    x step t starts at element t * x_step_stride (0: the same input every step);
    out/vseq are [T, E]-dense; v [E] is updated in place. ctypes releases the GIL,
    so element ranges run on a thread pool in parallel.
    """
    lib = load()
    if lib is None:
        raise RuntimeError(f"the native neuron kernel is unavailable: {_why}")
    args = (x.data_ptr(), x_step_stride, out.data_ptr(), v.data_ptr(), 0 if vseq is None else vseq.data_ptr(), T, E)
    scal = (pre, post, th, vr, tau)
    fn = lib.snnc_neuron_f32
    var = codes(p)
    workers = max(1, torch.get_num_threads())
    if workers == 1 or T * E < PARALLEL_MIN or E < 2048:
        if fn(*var, *args, 0, E, *scal) != 0:
            raise RuntimeError(f"native neuron kernel: unknown (charge, reset, compare) codes {var}")
        return
    step = -(-E // workers)
    step = -(-step // 64) * 64  # whole cache lines per thread
    futures = [threads().submit(fn, *var, *args, e0, min(E, e0 + step), *scal) for e0 in range(0, E, step)]
    for f in futures:
        if f.result() != 0:
            raise RuntimeError(f"native neuron kernel: unknown (charge, reset, compare) codes {var}")


TILE_MAX = 8192  # floats in one row pair of the fused neuron + pooling kernel


def neuron_pool_f32(p: NeuronParams, pool: str, x: torch.Tensor, x_step_stride: int, out: torch.Tensor, v: torch.Tensor,
                    T: int, row: int, group: int, pre: float, post: float, th: float, vr: float, tau: float) -> None:
    """The neuron kernel followed by 2x2/stride-2 pooling (see the C source); v [E] in place, out [T, E/4]."""
    lib = load()
    if lib is None:
        raise RuntimeError(f"the native kernels are unavailable: {_why}")
    E = v.numel()
    tiles = E // (2 * row)
    Eo = E // 4
    fn = lib.snnc_neuron_pool_f32
    var = codes(p)
    args = (*var, int(pool == "max"), x.data_ptr(), x_step_stride, out.data_ptr(), v.data_ptr(), T)
    tail = (row, group, Eo, pre, post, th, vr, tau)
    workers = max(1, torch.get_num_threads())
    if workers == 1 or T * E < PARALLEL_MIN or tiles < 2 * workers:
        if fn(*args, 0, tiles, *tail) != 0:
            raise RuntimeError(f"native neuron+pool kernel: bad codes {var} or row {row}")
        return
    step = -(-tiles // workers)
    futures = [threads().submit(fn, *args, i0, min(tiles, i0 + step), *tail) for i0 in range(0, tiles, step)]
    for f in futures:
        if f.result() != 0:
            raise RuntimeError(f"native neuron+pool kernel: bad codes {var} or row {row}")


def pool2d_f32(kind: str, x: torch.Tensor, out_hw: tuple[int, int], args: tuple) -> torch.Tensor:
    """NCHW avg/max pooling of a contiguous float32 [N, C, H, W] tensor (see the C source for the order)."""
    lib = load()
    if lib is None:
        raise RuntimeError(f"the native kernels are unavailable: {_why}")
    n, c, h, w = x.shape
    ho, wo = out_hw
    out = torch.empty((n, c, ho, wo), dtype=x.dtype)
    planes = n * c
    fn = lib.snnc_avg_pool2d_f32 if kind == "avg" else lib.snnc_max_pool2d_f32
    common = (h, w, ho, wo, *args)
    workers = max(1, torch.get_num_threads())
    if workers == 1 or x.numel() < PARALLEL_MIN:
        fn(x.data_ptr(), out.data_ptr(), 0, planes, *common)
        return out
    step = -(-planes // workers)
    futures = [threads().submit(fn, x.data_ptr(), out.data_ptr(), p0, min(planes, p0 + step), *common)
               for p0 in range(0, planes, step)]
    for f in futures:
        f.result()
    return out


def signed_if_f32(x: torch.Tensor, x_step_stride: int, out: torch.Tensor, v: torch.Tensor, count: torch.Tensor,
                  T: int, E: int, th: float) -> None:
    """The signed IF neuron over T steps of E elements (dense float32 on the CPU): x step t starts at element
    t * x_step_stride (0: the same input every step), out is [T, E]-dense, v and count [E] are updated in
    place; element ranges run on the thread pool, bit-identical to snnc.core.dynamics.signed_if_step."""
    lib = load()
    if lib is None:
        raise RuntimeError(f"the native kernels are unavailable: {_why}")
    args = (x.data_ptr(), x_step_stride, out.data_ptr(), v.data_ptr(), count.data_ptr(), T, E)
    fn = lib.snnc_signed_if_f32
    workers = max(1, torch.get_num_threads())
    if workers == 1 or T * E < PARALLEL_MIN or E < 2048:
        fn(*args, 0, E, th)
        return
    step = -(-E // workers)
    step = -(-step // 64) * 64  # whole cache lines per thread
    for f in [threads().submit(fn, *args, e0, min(E, e0 + step), th) for e0 in range(0, E, step)]:
        f.result()


def window_2x2(kernel_size, stride, padding, dilation) -> bool:
    """Whether a pooling's fields (ints or pairs; stride None: the kernel size) are the 2x2, stride-2 window
    without padding that the running max pool kernels take (here, and fused in event_conv.c)."""
    pair = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)  # noqa: E731
    return (pair(kernel_size) == (2, 2) and pair(stride or kernel_size) == (2, 2) and pair(padding) == (0, 0)
            and pair(dilation) == (1, 1))


def running_max_pool2d_f32(x: torch.Tensor, acc: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """RunningMaxPool2d with a 2x2/stride-2 window on c steps of float32 x [c, N, C, H, W] (H, W even) and the
    sums so far acc [N, C, H, W] (None: zeros) -> (y [c, N, C, H/2, W/2], the new sums), bit-identical to the
    torch loop in runtime/kernels.py. NCHW or channels_last steps; y and the sums keep x's layout."""
    lib = load()
    if lib is None:
        raise RuntimeError(f"the native kernels are unavailable: {_why}")
    c, n, ch, h, w = x.shape
    cl = not x[0].is_contiguous() and x[0].is_contiguous(memory_format=torch.channels_last)
    fmt = torch.channels_last if cl else torch.contiguous_format
    if not x[0].is_contiguous(memory_format=fmt) or (c > 1 and x.stride(0) != n * ch * h * w):
        x = torch.stack([s.contiguous(memory_format=fmt) for s in x])
    acc = (torch.zeros((n, ch, h, w), dtype=torch.float32).contiguous(memory_format=fmt) if acc is None
           else acc.to(torch.float32).contiguous(memory_format=fmt).clone())
    y = torch.empty((c * n, ch, h // 2, w // 2), dtype=torch.float32).contiguous(memory_format=fmt)
    prev = torch.empty((n, ch, h // 2, w // 2), dtype=torch.float32)
    units = n if cl else n * ch
    args = (int(cl), x.data_ptr(), x.stride(0) if c > 1 else 0, y.data_ptr(), n * ch * (h // 2) * (w // 2),
            acc.data_ptr(), prev.data_ptr(), c)
    fn = lib.snnc_running_max_pool2d_f32
    workers = max(1, torch.get_num_threads())
    if workers == 1 or x.numel() < PARALLEL_MIN or units < 2:
        fn(*args, 0, units, h, w, ch)
    else:
        step = -(-units // workers)
        for f in [threads().submit(fn, *args, p0, min(units, p0 + step), h, w, ch) for p0 in range(0, units, step)]:
            f.result()
    return y.unflatten(0, (c, n)), acc
