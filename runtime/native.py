"""A small C kernel for neuron updates over time, built on first use and loaded with ctypes.

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

The same library holds the event-driven conv for spike inputs (its C source
lives in runtime/event_conv.py, appended to SOURCE at build time).

The library is compiled with the system C compiler (`$CC`, else cc/gcc/clang)
into the snnc cache folder; with no compiler, or SNNC_NATIVE=0, `load()` returns
None and the runtime uses the torch loop.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from snnc.core import fileio

KINDS = {"if": 0, "lif": 1, "lif_no_decay_input": 2}
RESETS = {"hard": 0, "soft": 1, "none": 2}

# One always-inlined body, specialised per (kind, reset, compare) by constant
# arguments so that every variant's inner loop vectorises without branches.
SOURCE = r"""
#include <stdint.h>
#define BLOCK 512

/* One neuron for one step, as snnc.core.dynamics defines it: charge h from the input xv,
   fire (the returned spike, 0 or 1), reset; *vp becomes the new potential. */
static inline __attribute__((always_inline)) float step(
    const int kind, const int reset, const int gt, const float xv, float* restrict vp,
    const float th, const float vr, const float tau)
{
  const float vv = *vp;
  float h;
  if (kind == 0) h = vv + xv;
  else if (kind == 1) h = vv + (xv - (vv - vr)) / tau;
  else h = vv - (vv - vr) / tau + xv;
  const float s = gt ? (float)(h > th) : (float)(h >= th);
  if (reset == 0) *vp = h * (1.0f - s) + vr * s;
  else if (reset == 1) *vp = h - s * th;
  else *vp = h;
  return s;
}

static inline __attribute__((always_inline)) void body(
    const int kind, const int reset, const int gt,
    const float* restrict x, int64_t xs, float* restrict out, float* restrict v, float* restrict vseq,
    int64_t T, int64_t E, int64_t e0, int64_t e1,
    float pre, float post, float th, float vr, float tau)
{
  float vb[BLOCK];
  for (int64_t b = e0; b < e1; b += BLOCK) {
    const int64_t n = e1 - b < BLOCK ? e1 - b : BLOCK;
    for (int64_t e = 0; e < n; e++) vb[e] = v[b + e];
    for (int64_t t = 0; t < T; t++) {
      const float* restrict xt = x + t * xs + b;
      float* restrict ot = out + t * E + b;
      for (int64_t e = 0; e < n; e++)
        ot[e] = step(kind, reset, gt, xt[e] * pre, &vb[e], th, vr, tau) * post;
      if (vseq) {
        float* restrict vt = vseq + t * E + b;
        for (int64_t e = 0; e < n; e++) vt[e] = vb[e];
      }
    }
    for (int64_t e = 0; e < n; e++) v[b + e] = vb[e];
  }
}

#define VARIANT(K, R, G) case (K) * 6 + (R) * 2 + (G): \
  body(K, R, G, x, xs, out, v, vseq, T, E, e0, e1, pre, post, th, vr, tau); return 0;

int snnc_neuron_f32(int variant, const float* x, int64_t xs, float* out, float* v, float* vseq,
                    int64_t T, int64_t E, int64_t e0, int64_t e1,
                    float pre, float post, float th, float vr, float tau)
{
  switch (variant) {
    VARIANT(0, 0, 0) VARIANT(0, 0, 1) VARIANT(0, 1, 0) VARIANT(0, 1, 1) VARIANT(0, 2, 0) VARIANT(0, 2, 1)
    VARIANT(1, 0, 0) VARIANT(1, 0, 1) VARIANT(1, 1, 0) VARIANT(1, 1, 1) VARIANT(1, 2, 0) VARIANT(1, 2, 1)
    VARIANT(2, 0, 0) VARIANT(2, 0, 1) VARIANT(2, 1, 0) VARIANT(2, 1, 1) VARIANT(2, 2, 0) VARIANT(2, 2, 1)
  }
  return -1;
}

/* A neuron followed by 2x2/stride-2 pooling of its (post-scaled) spikes. The input is a
   sequence of row pairs of R floats each (R = W for NCHW planes, W*C for channels_last
   images; G = 1 or C floats per pixel); a tile of consecutive pairs (about TILE_TARGET
   floats) stays in L1 over all T steps, and only the pooled rows (R/2 floats per pair)
   are written. The pooling
   arithmetic is that of the pooling kernels below. */
#define TILE_MAX 8192
#define TILE_TARGET 1024

/* One 2x2 window a b / c d: its max (NaN wins, as in torch) or its mean (0 + a + b + c + d,
   times 0.25 == / 4 exactly: a power of two). */
static inline __attribute__((always_inline)) float pool4(const int pmax, float a, float b, float c, float d)
{
  if (pmax) {
    float r = a;
    r = (b > r || b != b) ? b : r;
    r = (c > r || c != c) ? c : r;
    return (d > r || d != d) ? d : r;
  }
  float sum = 0.0f;
  sum += a; sum += b; sum += c; sum += d;
  return sum * 0.25f;
}
static inline __attribute__((always_inline)) void body_pool(
    const int kind, const int reset, const int gt, const int pmax,
    const float* restrict x, int64_t xs, float* restrict out, float* restrict v,
    int64_t T, int64_t i0, int64_t i1, int64_t R, int64_t G, int64_t Eo,
    float pre, float post, float th, float vr, float tau)
{
  float vb[TILE_MAX], sb[TILE_MAX];
  const int64_t Ro = R / 2, Wo = R / (2 * G);
  const int64_t per = TILE_TARGET / (2 * R) > 1 ? TILE_TARGET / (2 * R) : 1;  /* row pairs per tile */
  for (int64_t i = i0; i < i1; i += per) {
    const int64_t np = i1 - i < per ? i1 - i : per;
    const int64_t n = np * 2 * R;
    float* restrict vt = v + i * 2 * R;
    for (int64_t e = 0; e < n; e++) vb[e] = vt[e];
    for (int64_t t = 0; t < T; t++) {
      const float* restrict xt = x + t * xs + i * 2 * R;
      for (int64_t e = 0; e < n; e++)
        sb[e] = step(kind, reset, gt, xt[e] * pre, &vb[e], th, vr, tau) * post;
      for (int64_t q = 0; q < np; q++) {
        const float* restrict r0 = sb + q * 2 * R;
        const float* restrict r1 = r0 + R;
        float* restrict ot = out + t * Eo + (i + q) * Ro;
        if (G == 1) {  /* NCHW: a separate loop the compiler can vectorise */
          for (int64_t ow = 0; ow < Wo; ow++) {
            ot[ow] = pool4(pmax, r0[2 * ow], r0[2 * ow + 1], r1[2 * ow], r1[2 * ow + 1]);
          }
          continue;
        }
        for (int64_t ow = 0; ow < Wo; ow++) {
          for (int64_t g = 0; g < G; g++) {
            ot[ow * G + g] = pool4(pmax, r0[2 * ow * G + g], r0[(2 * ow + 1) * G + g],
                                   r1[2 * ow * G + g], r1[(2 * ow + 1) * G + g]);
          }
        }
      }
    }
    for (int64_t e = 0; e < n; e++) vt[e] = vb[e];
  }
}

#define PVARIANT(K, R, G, M) case ((K) * 6 + (R) * 2 + (G)) * 2 + (M): \
  body_pool(K, R, G, M, x, xs, out, v, T, i0, i1, rb, gsize, Eo, pre, post, th, vr, tau); return 0;
#define PVARIANTS(K, R, G) PVARIANT(K, R, G, 0) PVARIANT(K, R, G, 1)

int snnc_neuron_pool_f32(int variant, int pmax, const float* x, int64_t xs, float* out, float* v,
                         int64_t T, int64_t i0, int64_t i1, int64_t rb, int64_t gsize, int64_t Eo,
                         float pre, float post, float th, float vr, float tau)
{
  if (2 * rb > TILE_MAX) return -2;
  switch (variant * 2 + pmax) {
    PVARIANTS(0, 0, 0) PVARIANTS(0, 0, 1) PVARIANTS(0, 1, 0) PVARIANTS(0, 1, 1) PVARIANTS(0, 2, 0) PVARIANTS(0, 2, 1)
    PVARIANTS(1, 0, 0) PVARIANTS(1, 0, 1) PVARIANTS(1, 1, 0) PVARIANTS(1, 1, 1) PVARIANTS(1, 2, 0) PVARIANTS(1, 2, 1)
    PVARIANTS(2, 0, 0) PVARIANTS(2, 0, 1) PVARIANTS(2, 1, 0) PVARIANTS(2, 1, 1) PVARIANTS(2, 2, 0) PVARIANTS(2, 2, 1)
  }
  return -1;
}

/* Pooling over [P, H, W] planes (NCHW), element for element as torch's CPU kernels:
   avg: sum = 0; sum += x over the window (row by row); out = sum / divisor
   max: the first maximum, NaN wins. */
static inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

void snnc_avg_pool2d_f32(const float* restrict x, float* restrict out, int64_t p0, int64_t p1,
                         int64_t H, int64_t W, int64_t Ho, int64_t Wo, int64_t kh, int64_t kw,
                         int64_t sh, int64_t sw, int64_t ph, int64_t pw, int count_include_pad, int64_t divisor)
{
  if (kh == 2 && kw == 2 && sh == 2 && sw == 2 && ph == 0 && pw == 0 && divisor == 0 && 2 * Ho <= H && 2 * Wo <= W) {
    for (int64_t p = p0; p < p1; p++) {
      const float* xp = x + p * H * W;
      float* op = out + p * Ho * Wo;
      for (int64_t oh = 0; oh < Ho; oh++) {
        const float* r0 = xp + 2 * oh * W;
        const float* r1 = r0 + W;
        for (int64_t ow = 0; ow < Wo; ow++) {
          float sum = 0.0f;
          sum += r0[2 * ow]; sum += r0[2 * ow + 1]; sum += r1[2 * ow]; sum += r1[2 * ow + 1];
          op[oh * Wo + ow] = sum * 0.25f;  /* == sum / 4 exactly: a power of two */
        }
      }
    }
    return;
  }
  for (int64_t p = p0; p < p1; p++) {
    const float* xp = x + p * H * W;
    float* op = out + p * Ho * Wo;
    for (int64_t oh = 0; oh < Ho; oh++) {
      for (int64_t ow = 0; ow < Wo; ow++) {
        int64_t ih0 = oh * sh - ph, iw0 = ow * sw - pw;
        int64_t ih1 = imin(ih0 + kh, H + ph), iw1 = imin(iw0 + kw, W + pw);
        const int64_t pool = (ih1 - ih0) * (iw1 - iw0);
        ih0 = imax(ih0, 0); iw0 = imax(iw0, 0); ih1 = imin(ih1, H); iw1 = imin(iw1, W);
        if (ih0 >= ih1 || iw0 >= iw1) { op[oh * Wo + ow] = 0.0f; continue; }
        const int64_t div = divisor ? divisor : (count_include_pad ? pool : (ih1 - ih0) * (iw1 - iw0));
        float sum = 0.0f;
        for (int64_t ih = ih0; ih < ih1; ih++)
          for (int64_t iw = iw0; iw < iw1; iw++) sum += xp[ih * W + iw];
        op[oh * Wo + ow] = sum / (float)div;
      }
    }
  }
}

void snnc_max_pool2d_f32(const float* restrict x, float* restrict out, int64_t p0, int64_t p1,
                         int64_t H, int64_t W, int64_t Ho, int64_t Wo, int64_t kh, int64_t kw,
                         int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw)
{
  if (kh == 2 && kw == 2 && sh == 2 && sw == 2 && ph == 0 && pw == 0 && dh == 1 && dw == 1 && 2 * Ho <= H && 2 * Wo <= W) {
    for (int64_t p = p0; p < p1; p++) {
      const float* xp = x + p * H * W;
      float* op = out + p * Ho * Wo;
      for (int64_t oh = 0; oh < Ho; oh++) {
        const float* r0 = xp + 2 * oh * W;
        const float* r1 = r0 + W;
        for (int64_t ow = 0; ow < Wo; ow++) {
          const float a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
          float m = a;  /* torch starts from -inf, which the first element replaces (or equals) */
          if (b > m || b != b) m = b;
          if (c > m || c != c) m = c;
          if (d > m || d != d) m = d;
          op[oh * Wo + ow] = m;
        }
      }
    }
    return;
  }
  for (int64_t p = p0; p < p1; p++) {
    const float* xp = x + p * H * W;
    float* op = out + p * Ho * Wo;
    for (int64_t oh = 0; oh < Ho; oh++) {
      int64_t ih0 = oh * sh - ph;
      const int64_t ih1 = imin(ih0 + (kh - 1) * dh + 1, H);
      while (ih0 < 0) ih0 += dh;
      for (int64_t ow = 0; ow < Wo; ow++) {
        int64_t iw0 = ow * sw - pw;
        const int64_t iw1 = imin(iw0 + (kw - 1) * dw + 1, W);
        while (iw0 < 0) iw0 += dw;
        float m = -__builtin_inff();
        for (int64_t ih = ih0; ih < ih1; ih += dh)
          for (int64_t iw = iw0; iw < iw1; iw += dw) {
            const float v = xp[ih * W + iw];
            if (v > m || v != v) m = v;
          }
        op[oh * Wo + ow] = m;
      }
    }
  }
}
"""

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


def build(cc: str, out_dir: Path) -> Path:
    """Compile the kernel library into out_dir (atomically); returns the .so path."""
    from snnc.runtime.event_conv import C_SOURCE as event_source

    flags = FLAGS + _ARCH_FLAGS
    source = SOURCE + event_source
    key = hashlib.sha256("\0".join([source, cc, *flags, sys.platform, platform.machine(), _cpu_id()]).encode())
    path = out_dir / f"snnc_neuron-{key.hexdigest()[:16]}.so"
    if path.is_file():
        return path
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        src = Path(tmp) / "neuron.c"
        src.write_text(source)
        so = Path(tmp) / "neuron.so"
        r = subprocess.run([cc, *flags, str(src), "-o", str(so)], capture_output=True, text=True, timeout=120)
        if r.returncode != 0 and _ARCH_FLAGS:  # e.g. a compiler without -march=native
            r = subprocess.run([cc, *FLAGS, str(src), "-o", str(so)], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"{cc} failed: {r.stderr.strip()[:500]}")
        os.replace(so, path)
    return path


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
            cc = _compiler()
            if cc is None:
                raise RuntimeError("no C compiler found (set $CC)")
            lib = ctypes.CDLL(str(build(cc, _cache_dir())))
            fn = lib.snnc_neuron_f32
            fn.restype = ctypes.c_int
            i64, ptr, f32 = ctypes.c_int64, ctypes.c_void_p, ctypes.c_float
            fn.argtypes = [ctypes.c_int, ptr, i64, ptr, ptr, ptr, i64, i64, i64, i64, f32, f32, f32, f32, f32]
            lib.snnc_neuron_pool_f32.restype = ctypes.c_int
            lib.snnc_neuron_pool_f32.argtypes = [ctypes.c_int, ctypes.c_int, ptr, i64, ptr, ptr] + [i64] * 6 + [f32] * 5
            lib.snnc_avg_pool2d_f32.restype = None
            lib.snnc_avg_pool2d_f32.argtypes = [ptr, ptr, i64, i64] + [i64] * 10 + [ctypes.c_int, i64]
            lib.snnc_max_pool2d_f32.restype = None
            lib.snnc_max_pool2d_f32.argtypes = [ptr, ptr, i64, i64] + [i64] * 12
            lib.snnc_spike_events_f32.restype = ctypes.c_int
            lib.snnc_spike_events_f32.argtypes = [ptr] + [i64] * 8 + [f32, i64, i64, ptr, ptr]
            lib.snnc_event_conv2d_f32.restype = ctypes.c_int
            lib.snnc_event_conv2d_f32.argtypes = [ptr, ptr] + [i64] * 4 + [ptr, ptr, i64, ptr, ptr, ptr] + [i64] * 6
            _lib, _why = lib, ""
        except Exception as e:  # noqa: BLE001 - any failure means: use the torch loop
            _lib, _why = None, f"{type(e).__name__}: {e}"
        _tried = True
    return _lib


def available() -> bool:
    return load() is not None


def why_unavailable() -> str:
    load()
    return _why


def variant(kind: str, reset: str, gt: bool) -> int:
    return KINDS[kind] * 6 + RESETS[reset] * 2 + int(gt)


def _forget_pool() -> None:
    global _pool
    _pool = None  # a forked child has none of the parent's worker threads


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _threads() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads()),
                                           thread_name_prefix="snnc-neuron")
    return _pool


# Below this many element-steps one thread is faster than handing work to the pool.
PARALLEL_MIN = 1 << 18


def neuron_f32(var: int, x: torch.Tensor, x_step_stride: int, out: torch.Tensor, v: torch.Tensor,
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
    workers = max(1, torch.get_num_threads())
    if workers == 1 or T * E < PARALLEL_MIN or E < 2048:
        if fn(var, *args, 0, E, *scal) != 0:
            raise RuntimeError(f"native neuron kernel: unknown variant {var}")
        return
    step = -(-E // workers)
    step = -(-step // 64) * 64  # whole cache lines per thread
    futures = [_threads().submit(fn, var, *args, e0, min(E, e0 + step), *scal) for e0 in range(0, E, step)]
    for f in futures:
        if f.result() != 0:
            raise RuntimeError(f"native neuron kernel: unknown variant {var}")


TILE_MAX = 8192  # floats in one row pair of the fused neuron + pooling kernel


def neuron_pool_f32(var: int, pool: str, x: torch.Tensor, x_step_stride: int, out: torch.Tensor, v: torch.Tensor,
                    T: int, row: int, group: int, pre: float, post: float, th: float, vr: float, tau: float) -> None:
    """The neuron kernel followed by 2x2/stride-2 pooling (see the C source); v [E] in place, out [T, E/4]."""
    lib = load()
    if lib is None:
        raise RuntimeError(f"the native kernels are unavailable: {_why}")
    E = v.numel()
    tiles = E // (2 * row)
    Eo = E // 4
    fn = lib.snnc_neuron_pool_f32
    args = (var, int(pool == "max"), x.data_ptr(), x_step_stride, out.data_ptr(), v.data_ptr(), T)
    tail = (row, group, Eo, pre, post, th, vr, tau)
    workers = max(1, torch.get_num_threads())
    if workers == 1 or T * E < PARALLEL_MIN or tiles < 2 * workers:
        if fn(*args, 0, tiles, *tail) != 0:
            raise RuntimeError(f"native neuron+pool kernel: bad variant {var} or row {row}")
        return
    step = -(-tiles // workers)
    futures = [_threads().submit(fn, *args, i0, min(tiles, i0 + step), *tail) for i0 in range(0, tiles, step)]
    for f in futures:
        if f.result() != 0:
            raise RuntimeError(f"native neuron+pool kernel: bad variant {var} or row {row}")


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
    futures = [_threads().submit(fn, x.data_ptr(), out.data_ptr(), p0, min(planes, p0 + step), *common)
               for p0 in range(0, planes, step)]
    for f in futures:
        f.result()
    return out
