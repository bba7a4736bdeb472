"""Event-driven conv2d for spike inputs: add the weight rows of the nonzero inputs only.

A conv whose input comes from a neuron sees values in {0, a}: a spike times
the amplitude `a` of the Scale (or fused post-scale) after the neuron. Only
12-36% of them are nonzero in converted CNNs, so instead of a dense GEMM the
kernel adds, for every output pixel, the weight rows of the nonzero taps:

    y[p, :] = (sum over taps (ky, kx, c) with x[tap] != 0 of W'[(ky, kx, c), :]) + bias

where W' = a * W, pre-packed once per session as rows [kh*kw*C_in, C_out] in
column tiles of 64 (or 32/16/8) floats, or 128 where the library is built with
AVX-512. Each tile's accumulators stay in 8 ymm (zmm) registers while the rows of
one pixel's events stream through them. With AVX-512 a row is added 16 lanes at a
time; each lane still sums its column in the same order, so the tile width and the
vector width never change a result (tests/runtime/test_event_conv.py checks every
output against that order, bit for bit). On VGG-11 (T=16, batch 32, 2-core AMD EPYC
Zen 5) 16 lanes and 128-float tiles cut the event convs' time by about a quarter
(123 -> 90 ms).

Blocking: for each group of PIXEL_GROUP output pixels, the taps and blocks of
CHANNEL_BLOCK input channels are visited in order, and the weight slab of one
(tap, channel block) serves all pixels of the group before the next; a pixel's
partial sums wait in a small buffer between slabs. Measured on the 2-core Zen 3
with VGG-11's spike tensors: 256-channel slabs (64 KiB, in L2) beat L1-sized
64-channel ones by ~10% (fewer partial-sum reloads), 64 pixels per group beat
16, and 64-float tiles beat 32-float ones. Events are listed once per input
tensor (AVX2: compare 8 channels, compress the indices by a table): per input
pixel, its nonzero channels in increasing order, split at channel-block bounds.
The lists are packed one after another (`off` says where each starts): a group of
64 pixels' lists then fills a few cache lines instead of one line per pixel, which
made ResNet-18's event convs 1.2x (its 64-channel layers 1.3x) faster on the
2-core Zen 5 (benchmarks/RESULTS.md). With one channel block, two taps of a kernel
row share one load and store of a pixel's partial sums. For a 3x3 stride-1 conv whose
three taps of a kernel row fit in L1 together (C_in x tile <= 4096 floats: 64 x 64),
runs of 4 (or 2) neighbouring interior pixels of an output row share that row's
inputs: each of the 6 input pixels' lists is walked once and every event adds the
rows of the taps it lies under, one per pixel of the run, into partial sums kept in
registers (each pixel still gets tap 0's rows, then 1's, then 2's). A 64-channel 32x32
layer, one thread on a 2-core Intel Xeon: 88 -> 70-76 ms; for 128 x 128 (taps from
L2) it was 9% slower, so those keep the pairs.

Determinism: every output element is 0 + its event rows in (ky, kx, c) order,
then + bias, in float32 without FMA: the result does not depend on the batch,
the window of time steps, the threads, the blocking or the density, so run,
step and chunked runs agree exactly. It differs from a dense conv (another
summation order) in the last bits only.

Multi-level inputs: average-pooled spikes take the values k * u (u = a / 4 for
a 2x2 pool, k = 0..4). The element k * u is listed as k events of amplitude u,
so the same kernel adds its weight row k times (a Linear is the 1x1 conv of a
1x1 image). Summing k copies rounds differently from one multiply, in the last
bits only.

Signed spikes (a SignedIF's, scaled: 0, a or -a): packed as rows [a W; -a W] over 2 C_in channels,
a -a at channel c is listed as event C_in + c, so the same loop adds the exactly negated row
(`pack_signed`, `conv2d(..., signed=True)`).

Fused neuron: `conv2d_neuron` runs the neuron that reads the conv's output (plus an Add's
other operand) in the kernel's epilogue, pixel by pixel: groups of FUSED_PIXEL_GROUP output
pixels go through all time steps of a window in turn, so their potentials stay in cache,
and the conv's output never goes to memory. Each element is y = (acc + bias) (+ res),
then the neuron step of runtime/native.c (runtime/neuron_step.h): bit-identical to the
conv, the Add and the neuron kernel one after another. On ResNet-18 (T=16, batch 32,
2-core Zen 5) it saved about 5% of the run (0.563 -> 0.534 s): the adds and the
neurons' passes over memory go, the conv's event loop stays. Where event convs read
its spikes, it also lists them (`list_output`) while each group of pixels is in cache,
so the next conv does not scan them again from memory (0.534 -> 0.517 s); where one column tile
holds all output channels (C_out <= 128 with AVX-512), each pixel is listed right after its neuron
step, from L1, and spikes nobody stores never leave it (a 64-channel 32x32 layer, one thread on a
2-core Intel Xeon: 98 -> 89 ms; ResNet-18 ~5%). Where every
reader takes those lists (event convs, and fused neurons adding the spikes as their
residual, each row rebuilt from its list: the same floats), the spikes are not stored
at all (`dense_output=False`, decided by runtime/plan.py): on ResNet-18 that spares
writing ~1 GB of spike tensors and reading ~0.5 GB of residuals per batch (about 6% of
the run in interleaved A/B runs, 2-core Zen 5). A 2x2 running max pool between the conv and
the neuron (`pool_sums`: a converted VGG's conv -> max pool -> IF) runs in the epilogue too:
each output goes into its running sum, then each window's step, max of the sums minus the
max before, feeds the neuron at the pooled pixel; groups hold whole pairs of rows
(`pool_fits`). On VGG-11 (T=16, batch 32, 2-core Intel Xeon, interleaved in one process)
the run went from 0.276 to 0.205 s (median of 20): the conv's dense output, the pool's
pass over it and the neuron's pass go.

Safety: listing the events checks every input element; one that is neither 0
nor `a` (nor k * u) makes the call fail (a wrong static analysis is an error,
never a silently wrong result).

The C source is runtime/event_conv.c, built into the library of `snnc.runtime.native`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from snnc.runtime import native

CHANNEL_BLOCK = 256  # input channels per weight slab
PIXEL_GROUP = 64  # output pixels sharing each slab
# ... in conv2d_neuron, where a group goes through all time steps of a window before the next: each step
# streams the weights once per group, so larger groups pay (ResNet-18, T=16 batch 32: 0.53 s at 64, 0.49 s
# at 256, 0.56 s at 512, where a 4x4 layer's step no longer splits over two threads; 2-core Zen 5)
FUSED_PIXEL_GROUP = 256


def fused_min_pixels() -> int:
    """Below this many output pixels per time step, a conv and its neuron run apart: each step would
    stream the weights for a group or two, and one thread would get them all (VGG-11's 2x2 layer, 128
    pixels a step: 9.4 ms fused, 3.0 ms apart)."""
    return max(1, torch.get_num_threads()) * FUSED_PIXEL_GROUP


def pool_fits(ho: int, wo: int) -> bool:
    """Whether conv2d_neuron can run a 2x2/stride-2 running max pool on a [.., ho, wo] output: every group of
    FUSED_PIXEL_GROUP pixels (and each thread's range) then holds whole pairs of rows."""
    return ho % 2 == 0 and wo % 2 == 0 and FUSED_PIXEL_GROUP % (2 * wo) == 0


def runs_fused(pixels_per_step: int) -> bool:
    """Whether a planned conv + neuron with this many output pixels a step (batch x height x width) runs as
    one kernel; else the executor runs the conv, the Add and the neuron apart (the same bits)."""
    return pixels_per_step >= fused_min_pixels()
TILE = 64  # output channels accumulated in registers at once (8 ymm registers)
MAX_TILE = 128  # ... with AVX-512 (8 zmm registers), where the library was built for it (snnc_event_max_tile)


def tile_widths(cout: int, tile: int) -> list[int]:
    """The column tiles of the packed weights, as the C kernel walks them (ev_tile_width)."""
    widths, col = [], 0
    while col < cout:
        tw = 8
        while tw < cout - col and tw < tile:
            tw *= 2
        widths.append(tw)
        col += tw
    return widths


@dataclass(frozen=True)
class PackedConv:
    """A conv2d's weights scaled by the input amplitude and packed for the kernel (see the module doc)."""

    weight: Tensor  # float32, per column tile [kh*kw*C_in, TW], concatenated
    bias: Tensor | None
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    amplitude: float
    tile: int  # the widest column tile (floats)

    def out_hw(self, h: int, w: int) -> tuple[int, int]:
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        return (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1


def supported(weight: Tensor, groups: int, levels: int = 1) -> bool:
    """Whether the kernel takes this conv (groups=1, 4-d weights, C_in * levels < 65536: uint16 event lists)."""
    return groups == 1 and weight.dim() == 4 and weight.shape[1] * levels < 65536


def pays(weight: Tensor) -> bool:
    """Whether the kernel is expected to beat the dense conv (Session's event_conv="auto"): it needs
    at least one full tile of output channels. With fewer, the register tile is partly idle and the
    per-pixel event bookkeeping dominates: on the digits demo's 16 -> 32 conv of 4x4 planes the kernel
    took 28 ms against 6 ms for oneDNN (2-core AMD EPYC, 2026-12-05), while every VGG-11 conv
    (C_out >= 128) runs 1.8-10x faster than dense (benchmarks/RESULTS.md)."""
    return weight.shape[0] >= TILE


def pack(weight: Tensor, bias: Tensor | None, amplitude: float, stride, padding, dilation) -> PackedConv:
    """Scale the weights [C_out, C_in, kh, kw] by the spike amplitude (as float32) and pack them."""
    cout, cin, kh, kw = weight.shape
    rows = (weight.float() * torch.tensor(amplitude, dtype=torch.float32)).permute(2, 3, 1, 0).reshape(-1, cout)
    lib = native.load()
    tile = TILE if lib is None else lib.snnc_event_max_tile(MAX_TILE)
    tiles, col = [], 0
    for tw in tile_widths(cout, tile):
        t = rows[:, col:col + tw]
        tiles.append(torch.nn.functional.pad(t, (0, tw - t.shape[1])).contiguous().flatten())
        col += tw
    b = None if bias is None else bias.float().contiguous()
    amp = float(torch.tensor(amplitude, dtype=torch.float32))
    return PackedConv(torch.cat(tiles).contiguous(), b, cin, cout, (kh, kw), tuple(stride), tuple(padding),
                      tuple(dilation), amp, tile)


def _split(total: int, workers: int, quantum: int) -> list[tuple[int, int]]:
    step = -(-total // workers)
    step = -(-step // quantum) * quantum
    return [(i, min(total, i + step)) for i in range(0, total, step)]


def pack_signed(weight: Tensor, bias: Tensor | None, amplitude: float, stride, padding, dilation) -> PackedConv:
    """`pack` for signed spikes (0, a or -a): rows [a W; -a W] over 2 C_in input channels, so that a -a
    input adds the exactly negated row (fl(a (-w)) = -fl(a w)); `conv2d(..., signed=True)` lists it."""
    return pack(torch.cat((weight, -weight), 1), bias, amplitude, stride, padding, dilation)


def conv2d(x: Tensor, packed: PackedConv, *, channels_last: bool, levels: int = 1, signed: bool = False,
           events: Events | None = None) -> Tensor:
    """The conv of a dense float32 [B, C_in, H, W] spike tensor (values 0 or packed.amplitude), or with
    `levels` L > 1 of a multi-level one (values k * packed.amplitude, k = 0..L: average-pooled spikes),
    whose element k * a is listed as k events (its weight row added k times), or with `signed` of a
    signed one (values 0, a or -a; `packed` from `pack_signed`): a -a at channel c is the event C_in + c.

    Returns [B, C_out, Ho, Wo] in channels_last or NCHW memory format. Raises ValueError
    when an input element is neither 0 nor the amplitude (nor one of its L multiples).
    `events`: x's events, listed already (by `conv2d_neuron(list_output=True)`).
    """
    b, c, h, w = x.shape
    ho, wo = packed.out_hw(h, w)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    out = torch.empty((b, packed.out_channels, ho, wo), dtype=torch.float32, memory_format=fmt)
    if out.numel() == 0:
        return out
    lib, lists = _given_or_listed(x, packed, levels, signed, events)
    kh, kw = packed.kernel_size
    geo = torch.tensor([kh, kw, *packed.stride, *packed.padding, *packed.dilation], dtype=torch.int64)
    ostr = torch.tensor(out.stride(), dtype=torch.int64)
    opix = b * ho * wo
    work = opix * kh * kw * lists.rows * packed.out_channels
    workers = max(1, torch.get_num_threads())
    ranges = _split(opix, workers, PIXEL_GROUP) if workers > 1 and work >= (1 << 20) else [(0, opix)]
    bias = 0 if packed.bias is None else packed.bias.data_ptr()
    fn = lib.snnc_event_conv2d_f32
    results = _parallel(fn, [(*lists.args(h, w), packed.weight.data_ptr(), bias, packed.out_channels, geo.data_ptr(),
                              out.data_ptr(), ostr.data_ptr(), ho, wo, p0, p1, PIXEL_GROUP, packed.tile,
                              lists.off.data_ptr()) for p0, p1 in ranges])
    if any(r != 0 for r in results):
        raise MemoryError("event conv: out of memory for its scratch buffers")
    return out


@dataclass
class Events:
    """The listed events of one input tensor (see snnc_spike_events_f32): what `conv2d` lists before
    it adds rows, or `conv2d_neuron(list_output=True)` hands to the next conv."""

    ev: Tensor
    bnd: Tensor
    off: Tensor
    rows: int  # packed input channels (2 C_in for signed spikes)
    cb: int  # channels per block
    amplitude: float | None = None  # one-level spikes: the value each listed channel stands for

    def args(self, h: int, w: int) -> tuple:
        return self.ev.data_ptr(), self.bnd.data_ptr(), self.rows, self.cb, h, w


def dense(events: Events, shape: tuple[int, int, int, int]) -> Tensor:
    """The channels_last [N, C, H, W] tensor whose one-level spike events these are (amplitude where
    listed, else 0 * amplitude, the bits the neuron wrote)."""
    n, c, h, w = shape
    if events.amplitude is None or events.rows != c or events.off.numel() != n * h * w:
        raise ValueError(f"event conv: events of {events.rows} channels, {events.off.numel()} pixels are not "
                         f"one-level spikes of {list(shape)}")
    ncb = -(-c // events.cb)
    counts = events.bnd.view(-1, ncb + 1)[:, ncb].to(torch.int64) & 0xFFFF
    pixel = torch.repeat_interleave(torch.arange(counts.numel()), counts)
    first = torch.cumsum(counts, 0) - counts  # each pixel's first entry in the flat order
    pos = events.off[pixel] + torch.arange(pixel.numel()) - first[pixel]
    amp = torch.tensor(events.amplitude, dtype=torch.float32)
    out = torch.full((n * h * w, c), float(amp * 0.0), dtype=torch.float32)
    out[pixel, events.ev[pos].to(torch.int64) & 0xFFFF] = amp
    return out.view(n, h, w, c).permute(0, 3, 1, 2)


def events_bytes_per_pixel(rows: int) -> int:
    """The bytes of one pixel's room in `Events` of `rows` channels (one level): indices, block bounds, start."""
    return 2 * rows + 2 * (-(-rows // min(CHANNEL_BLOCK, rows)) + 1) + 8


def _empty_events(pixels: int, rows: int, amplitude: float) -> Events:
    """Room for the one-level events (spikes of `amplitude`) of `pixels` pixels of `rows` channels."""
    cb = min(CHANNEL_BLOCK, rows)
    return Events(torch.empty(pixels * rows, dtype=torch.int16), torch.empty(pixels * (-(-rows // cb) + 1),
                  dtype=torch.int16), torch.empty(pixels, dtype=torch.int64), rows, cb, amplitude)


def _given_or_listed(x: Tensor, packed: PackedConv, levels: int, signed: bool, events: Events | None):
    if events is None:
        return _list_events(x, packed, levels, signed)
    b, c, h, w = x.shape
    if levels != 1 or signed or events.rows != c or events.off.numel() != b * h * w or c != packed.in_channels:
        raise ValueError(f"event conv: the given events ({events.rows} channels, {events.off.numel()} pixels) "
                         f"are not those of the input {list(x.shape)}")
    return native.load(), events


def _list_events(x: Tensor, packed: PackedConv, levels: int, signed: bool):
    """(the library, the events of x) for `conv2d` and `conv2d_neuron`; raises as `conv2d` documents."""
    lib = native.load()
    if lib is None:
        raise RuntimeError(f"the native kernels are unavailable: {native.why_unavailable()}")
    b, c, h, w = x.shape
    rows = 2 * c if signed else c  # the packed input channels: [a W; -a W] for signed spikes
    if rows != packed.in_channels or x.dtype != torch.float32 or (signed and levels != 1):
        raise ValueError(f"event conv expects float32 [B, {packed.in_channels // (2 if signed else 1)}, H, W]"
                         f"{' (signed: one level)' if signed else ''}, got {x.dtype} {list(x.shape)}")
    cb = min(CHANNEL_BLOCK, rows)
    ncb = -(-rows // cb)
    pixels = b * h * w
    if rows * levels >= 65536:
        raise ValueError(f"event conv: {rows} channels x {levels} levels do not fit uint16 event lists")
    ev = torch.empty(pixels * rows * levels, dtype=torch.int16)
    bnd = torch.empty(pixels * (ncb + 1), dtype=torch.int16)
    off = torch.empty(pixels, dtype=torch.int64)  # where each pixel's (packed) event list starts in ev
    workers = max(1, torch.get_num_threads())
    sn, sc, sh, sw = x.stride()
    if signed:
        ev_args, fn = (sn, sc, sh, sw, h, w, c, cb, packed.amplitude), lib.snnc_signed_events_f32
    elif levels == 1:
        ev_args, fn = (sn, sc, sh, sw, h, w, c, cb, packed.amplitude), lib.snnc_spike_events_f32
    else:
        ev_args, fn = (sn, sc, sh, sw, h, w, c, cb, packed.amplitude, levels), lib.snnc_level_events_f32
    ranges = _split(pixels, workers, 64) if workers > 1 and x.numel() >= (1 << 16) else [(0, pixels)]
    results = _parallel(fn, [(x.data_ptr(), *ev_args, q0, q1, ev.data_ptr(), bnd.data_ptr(), off.data_ptr())
                             for q0, q1 in ranges])
    if any(r != 0 for r in results):
        what = ("plus or minus the spike amplitude" if signed else "the spike amplitude" if levels == 1
                else f"a multiple 1..{levels} of the unit")
        raise ValueError(f"event conv: an input element is neither 0 nor {what} {packed.amplitude}")
    return lib, Events(ev, bnd, off, rows, cb, packed.amplitude if levels == 1 and not signed else None)


@dataclass(frozen=True)
class Neuron:
    """The neuron a conv's output feeds (`conv2d_neuron`): the codes and scalars of the native neuron
    kernel (snnc.runtime.native.neuron_f32)."""

    codes: tuple[int, int, int]
    pre: float
    post: float
    th: float
    vr: float
    tau: float


def conv2d_neuron(x: Tensor, packed: PackedConv, steps: int, neuron: Neuron, v: Tensor, *,
                  residual: "Tensor | Events | None" = None, levels: int = 1, signed: bool = False,
                  events: "Events | None" = None, list_output: bool = False,
                  dense_output: bool = True, pool_sums: Tensor | None = None) -> tuple["Tensor | None", "Events | None"]:
    """`conv2d` (channels_last) of `steps` time steps x [steps * N, C_in, H, W], then + residual (the
    other operand of an Add, [steps * N, C_out, Ho, Wo]), then the neuron: returns post * spikes
    [steps * N, C_out, Ho, Wo] (channels_last) and updates its potential v [N, C_out, Ho, Wo]
    (channels_last, dense) in place. The result and v are bit-identical to running the conv, the
    Add and `snnc.runtime.native.neuron_f32` one after another; the conv's output is never stored.

    `events`: x's events, listed already (`list_output` of the layer before), else x is listed here.
    With `list_output`, also returns the output's events as a conv reading it (amplitude post, one
    level) would list them, made while each group of pixels is in cache; else None. Without
    `dense_output` (needs `list_output`) the spikes are only listed: the first result is None, and
    the layer writes no [steps * N, C_out, Ho, Wo] tensor. `residual` may be given as the events of
    one-level spikes (a layer's `list_output`): the same values, rebuilt row by row from the lists.

    `pool_sums` ([N, C_out, Ho, Wo], channels_last, updated in place; no residual): a RunningMaxPool2d
    with a 2x2/stride-2 window runs between the conv and the neuron (its sums of the conv's outputs so
    far, `snnc.runtime.native.running_max_pool2d_f32`'s `acc`), with the same bits; v, the result and its
    lists are then of the pooled [.., Ho / 2, Wo / 2] pixels. Needs `pool_fits(Ho, Wo)`."""
    b, c, h, w = x.shape
    ho, wo = packed.out_hw(h, w)
    n = b // steps
    if pool_sums is not None:
        if not pool_fits(ho, wo) or residual is not None or pool_sums.shape != (n, packed.out_channels, ho, wo) \
                or not pool_sums.is_contiguous(memory_format=torch.channels_last) or pool_sums.dtype != torch.float32:
            raise ValueError(f"conv2d_neuron: pool sums {list(pool_sums.shape)} do not fit a 2x2 pool of "
                             f"{[n, packed.out_channels, ho, wo]} (or a residual is given)")
    side = 1 if pool_sums is None else 2
    oh, ow = ho // side, wo // side  # the neuron's pixels (the pooled ones with pool_sums)
    shape = (b, packed.out_channels, oh, ow)
    if not dense_output and not list_output:
        raise ValueError("conv2d_neuron: without dense_output the spikes must be listed (list_output)")
    out = torch.empty(shape if dense_output else (0,), dtype=torch.float32, memory_format=torch.channels_last
                      if dense_output else torch.contiguous_format)
    cl = torch.channels_last
    if b != n * steps or v.shape != (n, packed.out_channels, oh, ow) or not v.is_contiguous(memory_format=cl) \
            or v.dtype != torch.float32:
        raise ValueError(f"conv2d_neuron: potential {list(v.shape)} does not fit {steps} steps of {list(shape)}")
    res_events = residual if isinstance(residual, Events) else None
    if res_events is not None and (res_events.rows != packed.out_channels or res_events.off.numel() != b * oh * ow
                                   or res_events.amplitude is None):
        raise ValueError(f"conv2d_neuron: the residual's events ({res_events.rows} channels, "
                         f"{res_events.off.numel()} pixels) are not one-level spikes of the output's shape {list(shape)}")
    if isinstance(residual, Tensor) and (residual.shape != shape or residual.stride() != torch.empty(
            shape, memory_format=cl).stride() or residual.dtype != torch.float32):
        raise ValueError(f"conv2d_neuron: residual {list(residual.shape)} is not channels_last like the output")
    if math.prod(shape) == 0:
        return (out.reshape(shape) if dense_output else None), None
    lib, lists = _given_or_listed(x, packed, levels, signed, events)
    kh, kw = packed.kernel_size
    geo = torch.tensor([kh, kw, *packed.stride, *packed.padding, *packed.dilation], dtype=torch.int64)
    ostr = torch.tensor((packed.out_channels * oh * ow, 1, ow * packed.out_channels, packed.out_channels),
                        dtype=torch.int64)  # channels_last, dense
    made = _empty_events(b * oh * ow, packed.out_channels, neuron.post) if list_output else None
    listing = (made.cb, made.ev.data_ptr(), made.bnd.data_ptr(), made.off.data_ptr()) if made else (0, 0, 0, 0)
    per_step = n * ho * wo
    workers = max(1, torch.get_num_threads())
    work = b * ho * wo * kh * kw * lists.rows * packed.out_channels
    group = FUSED_PIXEL_GROUP
    ranges = _split(per_step, workers, group) if workers > 1 and work >= (1 << 20) else [(0, per_step)]
    bias = 0 if packed.bias is None else packed.bias.data_ptr()
    res = residual.data_ptr() if isinstance(residual, Tensor) else 0
    rev = ((res_events.ev.data_ptr(), res_events.bnd.data_ptr(), res_events.off.data_ptr(), res_events.cb,
            res_events.amplitude) if res_events is not None else (0, 0, 0, 1, 0.0))
    nr = (*neuron.codes, neuron.pre, neuron.post, neuron.th, neuron.vr, neuron.tau)
    results = _parallel(lib.snnc_event_conv2d_neuron_f32, [
        (*lists.args(h, w), packed.weight.data_ptr(), bias, packed.out_channels, geo.data_ptr(),
         out.data_ptr() if dense_output else 0, ostr.data_ptr(), ho, wo, j0, j1, group, packed.tile,
         lists.off.data_ptr(), steps, per_step, res, *rev, v.data_ptr(), *nr, *listing,
         0 if pool_sums is None else pool_sums.data_ptr())
        for j0, j1 in ranges])
    if any(r == -2 for r in results):
        raise ValueError(f"conv2d_neuron: unknown neuron codes {neuron.codes}")
    if any(r == -3 for r in results):
        raise ValueError(f"conv2d_neuron: an output is neither 0 nor the spike amplitude {neuron.post}")
    if any(r != 0 for r in results):
        raise MemoryError("event conv: out of memory for its scratch buffers")
    return (out if dense_output else None), made


def _parallel(fn, arg_lists: list[tuple]) -> list[int]:
    if len(arg_lists) == 1:
        return [fn(*arg_lists[0])]
    pool = native.threads()
    futures = [pool.submit(fn, *a) for a in arg_lists]
    return [f.result() for f in futures]
