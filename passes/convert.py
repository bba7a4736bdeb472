"""ANN-to-SNN conversion as passes: calibrate, normalize, to-time-layout, relu-to-if.

(Max pooling and bounded activations such as ReLU6: docs/conversion.md, passes/maxpool.py.)

With activation scale lambda (from calibration) normalize rewrites each ReLU as

    Scale(1/lambda) -> ReLU -> Scale(lambda)          (the same function: ReLU is positively homogeneous)

and relu-to-if turns the ReLU between the two scales into IF(v_threshold=1, soft
reset, fire on >=, v_init). With a constant input a the IF fires
floor(T a / lambda + v_init) times in T steps (clipped to [0, T]), and the output
scale restores the magnitude:

    relu(a)  ~  lambda / T * clip(floor(T a / lambda + v_init), 0, T)

v_init = 0 truncates (the textbook conversion: every activation loses up to
lambda / T); v_init = 0.5 rounds to the nearest level (Bu et al. 2022, "optimal
potential initialization"). lambda is one number per layer, or one per channel
(`channelwise`, Kim et al. 2020), chosen by the normalization mode (norm_modes.py).
The passes read the calibration data and options from the PassManager's
ConversionContext (context.py); `convert_graph` runs PIPELINES["convert"].
"""

from __future__ import annotations

import math
import warnings

import torch

from snnc.core.errors import PassError
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.ops import SoftReset
from snnc.ir.types import Layout
from snnc.ir.verify import verify
from snnc.passes.analog import refuse_analog
from snnc.passes.calibrate import MIN_POSITIVE, ActivationStats, calibrate, converts_to_if, refuse_unconvertible
from snnc.passes.context import ConversionContext, calibrated, require
from snnc.passes.distributed import calibrate_distributed
from snnc.passes.maxpool import warn_max_over_spikes
from snnc.passes.manager import PassManager, conversion_pipeline, parse_pipeline, register_pass
from snnc.passes.norm_modes import NormMode


@register_pass("calibrate", context=True)
def calibrate_pass(graph: Graph, context: ConversionContext | None) -> Graph:
    """Sketch every ReLU's activations over the calibration data (for normalize); the graph is unchanged."""
    ctx = require(context, "calibrate")
    refuse_unconvertible(graph)  # before the work: a clamp with no rate code
    refuse_analog(graph, ctx.options.analog)  # and an op with no rate code that --analog does not name
    run = calibrate_distributed if ctx.distributed else calibrate  # distributed: ctx.data is this rank's shard
    extra = {"shard_data": False} if ctx.distributed else {}
    ctx.stats = run(graph, ctx.data, batch_size=ctx.batch_size, channelwise=ctx.options.channelwise,
                    show_progress=ctx.show_progress, **extra)
    ctx.ann = graph
    return graph


def normalize(graph: Graph, stats: ActivationStats, mode: NormMode, *, channelwise: bool = False,
              v_init: float = 0.0, time_steps: int | None = None) -> Graph:
    """Wrap each calibrated ReLU as Scale(1/lambda) -> ReLU -> Scale(lambda), lambda chosen by `mode`.

    A bounded activation Clamp(0, a) (ReLU6, hardtanh(0, a), ...) becomes
    Scale(1/lambda) -> Clamp(0, 1) -> Scale(lambda) with lambda = min(a, calibrated lambda):
    the IF neuron relu-to-if makes of the Clamp(0, 1) fires at most once per step, so its
    output is capped at lambda <= a, and at a exactly when calibration reaches the bound.
    Any other Clamp is refused (a PassError naming it).

    The output Scale keeps the ReLU's name (its users need no rewiring); the ReLU takes
    the name of the IF neuron relu-to-if makes of it. channelwise: one lambda per channel
    (feature dim 0) from `stats.channel_sketches`. v_init and time_steps: the IF's initial
    potential and the T that mode 'mse' optimizes lambda for.
    """
    if not 0.0 <= v_init < 1.0:
        raise PassError(f"v_init={v_init} is outside [0, 1): it is a fraction of the threshold")
    refuse_unconvertible(graph)
    g = graph.copy()
    scales: dict[str, float | list[float]] = {}
    for op in list(g):
        if not converts_to_if(op):
            continue
        sketch = (stats.channel_sketches if channelwise else stats.sketches).get(op.name)
        if sketch is None:
            what = "per-channel " if channelwise else ""
            raise PassError(f"{op.where()} has no {what}calibration statistics",
                            hint="calibrate the same graph first" + (" with channelwise=True" if channelwise else ""))
        lam = mode.scale(sketch, time_steps, v_init).double()
        dead = ~((lam > 0) & torch.isfinite(lam))
        peak = sketch.channel_quantile(1.0).double()  # the exact maxima
        quiet = dead & (peak > 0) & torch.isfinite(peak)  # it fired, but the mode's share of values is ~0
        if bool(quiet.any()):
            what, instead = (("its activations", f"their maximum ({float(peak[0]):.3g})") if lam.numel() == 1 else
                             (f"{int(quiet.sum())} of its {lam.numel()} channels", "each one's maximum"))
            warnings.warn(f"{op.where()}: the '{mode}' scale of {what} is 0 (that share of the calibration values "
                          f"is 0 or below {MIN_POSITIVE:g}); using {instead} instead", stacklevel=2)
            lam, dead = torch.where(quiet, peak, lam), dead & ~quiet
        if bool(dead.all()):
            warnings.warn(f"{op.where()}: calibrated activation scale is {float(lam[0])} (a dead layer: it never "
                          "fired on the calibration data); using 1.0", stacklevel=2)
        if bool(dead.any()):  # a dead channel never fires: any lambda will do; take the layer's
            layer = stats.sketches.get(op.name)
            fill = float(mode.scale(layer, time_steps, v_init)[0]) if layer is not None and layer.n else 1.0
            lam = torch.where(dead, torch.full_like(lam, fill if fill > 0 and math.isfinite(fill) else 1.0), lam)
        bound = op.max if isinstance(op, ops.Clamp) else None
        if bound is not None:
            lam = torch.clamp(lam, max=bound)  # the IF's rate cap (one spike per step) becomes the bound
        pre = g.fresh_name(f"{op.name}_in")
        inner = g.fresh_name(f"{op.name}_if")
        if lam.numel() == 1:
            scales[op.name] = float(lam[0])
            inv = ops.Scale(name=pre, inputs=op.inputs, factor=1.0 / float(lam[0]), loc=op.loc)
            out = ops.Scale(name=op.name, inputs=(inner,), factor=float(lam[0]), loc=op.loc)
        else:
            scales[op.name] = [float(v) for v in lam]
            inv = ops.Scale(name=pre, inputs=op.inputs, weight=g.add_param(f"{op.name}.inv_scale", (1.0 / lam).float()),
                            loc=op.loc)
            out = ops.Scale(name=op.name, inputs=(inner,), weight=g.add_param(f"{op.name}.scale", lam.float()),
                            loc=op.loc)
        g.insert_after(op.name, inv)
        act = (ops.ReLU(name=inner, inputs=(pre,), loc=op.loc) if bound is None
               else ops.Clamp(name=inner, inputs=(pre,), min=0.0, max=1.0, loc=op.loc))
        g.insert_after(pre, act)
        g.replace_op(out)  # the ReLU node becomes the output scale
        g.sort()
    meta = dict(g.meta)
    meta["conversion"] = {"mode": str(mode), "channelwise": channelwise, "v_init": v_init,
                          "time_steps": time_steps, "scales": dict(sorted(scales.items()))}
    g.meta = meta
    return g


@register_pass("normalize", context=True)
def normalize_pass(graph: Graph, context: ConversionContext | None) -> Graph:
    """Scale(1/lambda) -> ReLU -> Scale(lambda) around each ReLU, lambda from calibration and --mode."""
    ctx = calibrated(context, "normalize")
    return normalize(graph, ctx.stats, ctx.mode, channelwise=ctx.options.channelwise, v_init=ctx.options.v_init,
                     time_steps=ctx.options.time_steps)


@register_pass("to-time-layout")
def to_time_layout(graph: Graph) -> Graph:
    """Make every NX graph input TNX ([T, N, *]); types downstream follow."""
    g = graph.copy()
    for op in g.inputs:
        if op.type.layout is Layout.NX:
            g.replace_op(op.replace(type=op.type.with_layout(Layout.TNX)))
    return g


def relu_to_if(graph: Graph, v_init: float = 0.0, *, signed: bool = False) -> Graph:
    """Replace each ReLU (and Clamp(0, a)) of a normalized graph by IF(1.0, soft reset, v_init) under the same name.

    v_init: the IF's initial potential as a fraction of its threshold (0.5 rounds). signed: a SignedIF
    instead (ir/ops/neuron.py), whose -1 spikes take back spikes that input arriving later cancels,
    so its count follows the ReLU of the summed input in any order. Warns about each MaxPool2d left
    to take the max over spikes (the running-maxpool pass replaces them).
    """
    if "conversion" not in graph.meta:
        raise PassError(f"graph {graph.name} is not normalized: relu-to-if makes IF neurons of the ReLUs that "
                        "normalize scaled to threshold 1", hint="run 'calibrate,normalize' before 'relu-to-if'")
    if not 0.0 <= v_init < 1.0:
        raise PassError(f"v_init={v_init} is outside [0, 1): it is a fraction of the threshold")
    warn_max_over_spikes(graph)
    g = graph.copy()
    for op in list(g):
        if converts_to_if(op) and signed:
            g.replace_op(ops.SignedIF(name=op.name, inputs=op.inputs, v_threshold=1.0, v_init=v_init, loc=op.loc))
        elif converts_to_if(op):
            g.replace_op(ops.IF(name=op.name, inputs=op.inputs, v_threshold=1.0, reset=SoftReset(),
                                v_init=v_init if v_init else None, loc=op.loc))
    refuse_nonlinear(g)
    return g


def refuse_nonlinear(graph: Graph) -> None:
    """PassError naming every op a rate code cannot carry: one not linear in its rate-coded inputs.

    Values downstream of a neuron are rates (averages over T). A unary op marked
    `rate_preserving = False` (softmax, layer norm, clamp) on a rate, or a product
    (mul, matmul) of two rates, does not average to the ANN's value. A product
    with one input that is constant over time (computed before any neuron) is
    linear in the other and stays.
    """
    rated: set[str] = set()
    bad = []
    for op in graph:
        marked = [i in rated for i in op.inputs]
        if isinstance(op, ops.RateDecode):
            continue  # its output is the decoded rate: an analog value (passes/analog.py)
        if isinstance(op, (ops.NeuronOp, ops.SignedIF)) or any(marked):
            rated.add(op.name)
        if type(op).rate_preserving or not any(marked):
            continue
        if op.arity == 2 and not all(marked):
            continue  # linear in the one rate-coded input
        bad.append(op)
    if bad:
        raise PassError("ANN-to-SNN conversion cannot rate-code " + "; ".join(
            f"{op.where()} ({op.kind} is not linear in its spiking inputs)" for op in bad),
            hint="a rate code carries only ops linear in their inputs (conv, linear, pooling, mean, reshape, "
                 "add, scale); run an activation, softmax or layer norm on the decoded rate with --analog KIND "
                 "(docs/conversion.md), or replace it")


@register_pass("relu-to-if", context=True)
def relu_to_if_pass(graph: Graph, context: ConversionContext | None) -> Graph:
    """Each normalized ReLU becomes an IF neuron (threshold 1, soft reset, --v-init; a SignedIF with --signed)."""
    options = require(context, "relu-to-if").options
    return relu_to_if(graph, options.v_init, signed=options.signed)


def convert_graph(graph: Graph, context: ConversionContext, *, target: str | None = None,
                  pipeline: str | None = None, **manager) -> Graph:
    """Run the conversion pipeline (`pipeline`, or conversion_pipeline(target)) on an ANN graph; verified.

    **manager: PassManager fields (verify_each, print_after, printer, dump_dir).
    """
    pm = PassManager(parse_pipeline(pipeline if pipeline is not None else conversion_pipeline(target)),
                     context=context, **manager)
    return verify(pm.run(graph))
