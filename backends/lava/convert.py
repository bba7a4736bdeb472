"""ANN-to-SNN conversion for Loihi: reset to 0, thresholds calibrated for it, a spiking readout.

The conversion pipeline gives IF neurons that reset by subtraction, which keeps
the charge above threshold; Loihi's CUBA neuron resets to 0 and loses it, so with
the same thresholds rates come out low. The lava target's own conversion passes
(PIPELINES["convert-lava"], run after PIPELINES["convert"] by `snnc compile --calib
--target lava` and by `convert` below):

    reset-to-zero         every IF/LIF resets to 0 and starts at 0
    calibrate-thresholds  each layer's threshold scaled by the factor (from THRESHOLD_GRID)
                          whose reset-to-0 rates best match the ANN's ReLU activations on
                          calibration data, layer by layer from the input
    calibrate-readout     the analog output layer's readout neuron gets the 99.9th percentile
                          of the ANN's positive outputs as threshold (class scores become
                          spike counts), and the input range is recorded for quantization
"""

from __future__ import annotations

import warnings

import torch

from snnc.frontends.torch_fx import trace
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.ops import HardReset, LoihiInfo
from snnc.passes.calibrate import converts_to_if
from snnc.passes.context import ConversionContext, calibrated, conversion_context, require
from snnc.passes.convert import convert_graph
from snnc.passes.manager import PIPELINES, PassSpec, register_pass
from snnc.runtime.interpreter import Interpreter

THRESHOLD_GRID = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)
DEFAULT_T = 32  # the T thresholds are calibrated for when the conversion names none
DEFAULT_SAMPLES = 256  # calibration samples the threshold and readout searches run

PIPELINES["convert-lava"] = "reset-to-zero,calibrate-thresholds,calibrate-readout"


def reset_to_zero(graph: Graph) -> Graph:
    """Every IF/LIF resets to 0 and starts at 0 (Loihi's semantics, stated rather than warned about)."""
    g = graph.copy()
    for op in list(g):
        if isinstance(op, (ops.IF, ops.LIF)):
            g.replace_op(op.replace(reset=HardReset(v_reset=0.0), v_init=None))
    return g


@register_pass("reset-to-zero", context=True)
def reset_to_zero_pass(graph: Graph, context: ConversionContext | None) -> Graph:
    """Every IF/LIF resets to 0 and starts at 0, as Loihi's CUBA neuron does."""
    if context is not None and "v_init" in context.options.model_fields_set and context.options.v_init:
        warnings.warn(f"v_init={context.options.v_init}: Loihi neurons start at 0 (NetX cannot set an initial "
                      "potential), so v_init only tunes what depends on it (mode mse, bias correction)",
                      stacklevel=2)
    return reset_to_zero(graph)


def calibrate_thresholds(snn: Graph, ann: Graph, data: torch.Tensor, T: int) -> tuple[Graph, dict[str, float]]:
    """Scale each neuron's threshold so its reset-to-0 rate x output scale tracks the ANN activation."""
    targets = [op.name for op in snn if isinstance(op, ops.Scale) and op.name in ann.nodes
               and converts_to_if(ann[op.name])]
    with torch.no_grad():
        want = Interpreter(ann).run({ann.inputs[0].name: data}, keep=set(targets))
    g, chosen = snn, {}
    for name in targets:
        neuron = snn[snn[name].inputs[0]]
        if not isinstance(neuron, ops.NeuronOp):
            continue
        best = None
        for beta in THRESHOLD_GRID:
            trial = g.copy()
            trial.replace_op(neuron.replace(v_threshold=neuron.v_threshold * beta))
            with torch.no_grad():
                got = Interpreter(trial).run({trial.inputs[0].name: data}, T, keep={name})[name].mean(0)
            err = float(((got - want[name]) ** 2).mean())
            if best is None or err < best[0]:
                best = (err, beta, trial)
        g, chosen[neuron.name] = best[2], best[1]
    return g, chosen


@register_pass("calibrate-thresholds")
class CalibrateThresholds(PassSpec):
    """Scale each layer's threshold so its reset-to-0 rates match the ANN (at -T, default 32)."""

    uses_context = True
    samples: int = DEFAULT_SAMPLES  # the first calibration samples the search runs

    def __call__(self, graph: Graph, context: ConversionContext | None) -> Graph:
        ctx = calibrated(context, "calibrate-thresholds")
        g, chosen = calibrate_thresholds(graph, ctx.ann, ctx.head(self.samples), ctx.options.time_steps or DEFAULT_T)
        g = g.copy() if g is graph else g  # passes never change their input
        return LoihiInfo.of(g).updated(threshold_factors=chosen).put(g)


def readout_threshold(ann: Graph, x: torch.Tensor) -> float:
    """The 99.9th percentile of the ANN's positive outputs on `x` (1.0 when none is positive)."""
    with torch.no_grad():
        out = Interpreter(ann).run({ann.inputs[0].name: x})[ann.outputs[0].name]
    pos = out.clamp(min=0).flatten()
    return float(torch.quantile(pos[pos > 0], 0.999)) if bool((pos > 0).any()) else 1.0


@register_pass("calibrate-readout")
class CalibrateReadout(PassSpec):
    """The spiking readout's threshold from the ANN's outputs, and the input range, for quantize-loihi."""

    uses_context = True
    samples: int = DEFAULT_SAMPLES  # the first calibration samples the ANN runs on

    def __call__(self, graph: Graph, context: ConversionContext | None) -> Graph:
        ctx = require(context, "calibrate-readout")
        x = ctx.head(self.samples)
        ann = ctx.model if ctx.model is not None else ctx.ann  # the ANN as given: its outputs are the scores
        g = graph.copy()  # threshold_factors stay as calibrate-thresholds left them ({} when it did not run)
        return LoihiInfo.of(g).updated(readout_threshold=readout_threshold(ann, x),
                                       input_max=float(x.abs().max()) or 1.0).put(g)


def convert(model, calibration_data, mode: str | float = "99.9%", *, T: int = DEFAULT_T, calibrate: bool = True,
            calib_samples: int = DEFAULT_SAMPLES, input_shape=None, **options) -> Graph:
    """A float SNN ready for the lava target (reset to 0, calibrated thresholds, spiking readout).

    The same passes as `snnc compile --calib DATA --target lava -T T`; **options are the
    conversion options of snnc.convert (channelwise, v_init, bias_correction).
    """
    context = conversion_context(calibration_data, mode, time_steps=T, **options)
    ann = model if isinstance(model, Graph) else trace(model, input_shape or context.sample_shape)
    lava = ["reset-to-zero"] + [f"calibrate-thresholds{{samples={calib_samples}}}"] * calibrate \
        + [f"calibrate-readout{{samples={calib_samples}}}"]
    return convert_graph(ann, context, pipeline=",".join([PIPELINES["convert"], *lava]))
