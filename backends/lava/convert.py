"""ANN-to-SNN conversion for Loihi: reset to 0, thresholds calibrated for it, a spiking readout.

snnc.convert gives IF neurons that reset by subtraction, which keeps the
charge above threshold; Loihi's CUBA neuron resets to 0 and loses it, so with
the same thresholds rates come out low. Here each layer's threshold is scaled
by the factor (from THRESHOLD_GRID) whose reset-to-0 rates best match the
ANN's ReLU activations on calibration data, layer by layer from the input. The
analog output layer gets a readout neuron whose threshold is the 99.9th
percentile of the ANN's positive outputs, so class scores become spike counts.
"""

from __future__ import annotations

import torch

from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.ops import HardReset, LoihiInfo

THRESHOLD_GRID = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)


def reset_to_zero(graph: Graph) -> Graph:
    """Every IF/LIF resets to 0 and starts at 0 (Loihi's semantics, stated rather than warned about)."""
    g = graph.copy()
    for op in list(g):
        if isinstance(op, (ops.IF, ops.LIF)):
            g.replace_op(op.replace(reset=HardReset(v_reset=0.0), v_init=None))
    return g


def calibrate_thresholds(snn: Graph, ann: Graph, data: torch.Tensor, T: int) -> tuple[Graph, dict[str, float]]:
    """Scale each neuron's threshold so its reset-to-0 rate x output scale tracks the ANN activation."""
    from snnc.runtime.interpreter import Interpreter

    targets = [op.name for op in snn if isinstance(op, ops.Scale) and op.name in ann.nodes
               and isinstance(ann[op.name], ops.ReLU)]
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


def convert(model, calibration_data, mode: str | float = "99.9%", *, T: int = 32, calibrate: bool = True,
            calib_samples: int = 256, input_shape=None) -> Graph:
    """A float SNN ready for the lava target (reset to 0, calibrated thresholds, spiking readout)."""
    import snnc
    from snnc.api import _sample_shape
    from snnc.passes import fuse_bn

    shape, data = _sample_shape(calibration_data)
    ann = model if isinstance(model, Graph) else snnc.trace(model, input_shape or shape)
    x = torch.as_tensor(data if isinstance(data, torch.Tensor) else next(iter(data)))[:calib_samples].float()
    snn = reset_to_zero(snnc.convert(ann, calibration_data, mode))
    chosen: dict[str, float] = {}
    if calibrate:
        snn, chosen = calibrate_thresholds(snn, fuse_bn(ann), x, T)
    with torch.no_grad():
        from snnc.runtime.interpreter import Interpreter

        out = Interpreter(ann).run({ann.inputs[0].name: x})[ann.outputs[0].name]
    pos = out.clamp(min=0).flatten()
    readout = float(torch.quantile(pos[pos > 0], 0.999)) if bool((pos > 0).any()) else 1.0
    LoihiInfo.of(snn).updated(readout_threshold=readout, threshold_factors=chosen,
                              input_max=float(x.abs().max()) or 1.0).put(snn)
    return snn


def demo_rows(model, data, *, T: int = 32, calib_samples: int = 512, show: bool = False) -> dict:
    """Digits-demo accuracies (%): float SNN with soft reset vs reset-to-0 vs the Loihi emulation.

    Returns {"T", "latency_steps", "rows": {name: accuracy}, "reset_to_0_cost", "quantization_cost"}.
    """
    import snnc
    from snnc.backends.lava.backend import emulate
    from snnc.demo import accuracy
    from snnc.runtime.session import Session

    calib = data.x_train[:calib_samples]
    x, y = data.x_test, data.y_test
    soft = snnc.convert(model, calib, "99.9%")
    hard = reset_to_zero(soft)
    lava_snn = convert(model, calib, "99.9%", T=T)
    loihi = emulate(lava_snn)
    rows = {
        "SNN, reset by subtraction (float)": accuracy(Session(soft).predict(x, T), y),
        "SNN, reset to 0, same thresholds (float)": accuracy(Session(hard).predict(x, T), y),
        "SNN, reset to 0, calibrated (float)": accuracy(Session(lava_snn).predict(x, T), y),
        f"Loihi emulation (fixed point, {loihi.latency}-step latency)": accuracy(loihi.predict(x, T), y),
    }
    vals = list(rows.values())
    result = {"T": T, "latency_steps": loihi.latency, "rows": rows, "reset_to_0_cost": vals[0] - vals[2],
              "quantization_cost": vals[2] - vals[3]}
    if show:
        print(f"digits on Loihi (T={T}, {x.shape[0]} test images):")
        for k, v in rows.items():
            print(f"  {k:52s} {v:6.2f} %")
        print(f"  cost of reset-to-0 after calibration: {result['reset_to_0_cost']:+.2f} points; "
              f"of fixed point + spiking readout: {result['quantization_cost']:+.2f} points")
    return result
