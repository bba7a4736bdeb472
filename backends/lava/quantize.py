"""quantize-loihi: put an SNN on Loihi's fixed-point grid, with a per-layer error report.

The lava target's own pass, registered when snnc.backends.lava is imported.
The graph is first legalized for NetX (snnc.backends.lava.legalize: one
`synapse -> CUBA neuron` chain). Each layer then gets a weight exponent e, the
largest power of two 2^e for which every Loihi register stays in range:

    weights    W = clamp(2 round(w 2^e / 2), -256, 254)     8-bit mantissa x 2 (even), as slayer/NetX
    threshold  vThMant = floor(theta s)  (fire on >)        17-bit; s = 2^e x input scale
               vThMant = ceil(theta s) - 1  (fire on >=)    integer v >= m  <=>  v > m - 1: exact
    bias       B = round(b s)                               13-bit signed (bias_exp is 6 in NetX)
    decays     iDecay = round(4096 current_decay), vDecay = round(4096 voltage_decay)
    current    max |sum W x| < 2^17                         a_in << 6 must fit the 24-bit current

so the integer network computes the float one scaled by s, up to rounding.
A graded (analog) input is sent as integers x_int = round(x input_scale) with
input_scale = (2^input_bits - 1) / input_max (Loihi 2 graded spikes). The
report (`LoihiInfo.of(graph).layers`, snnc.ir.ops.LoihiInfo) gives, per layer,
e, the register that limited it, the weight range used and the relative errors.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from snnc.backends.lava.legalize import LegalizeOptions, legalize
from snnc.core.errors import PassError
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.ops import LoihiInfo, LoihiLayerReport
from snnc.passes.manager import PassSpec, register_pass

W_MIN, W_MAX = -256, 254
VTH_MAX = (1 << 17) - 1
BIAS_MAX = (1 << 12) - 1
A_MAX = (1 << 17) - 1
DECAY_ONE = 4096


# -- the rounding rules, as plain functions --------------------------------------
def quantize_weight(w: Tensor, exp: int) -> Tensor:
    """Even integers 2 round(w 2^exp / 2) in [-256, 254] (round half to even, as torch/slayer)."""
    return (2 * torch.round(w.double() * 2.0 ** exp / 2)).clamp(W_MIN, W_MAX)


def threshold_mantissa(theta: float, scale: float, fire_ge: bool) -> int:
    """The integer vThMant for which `v > vThMant` fires exactly when the scaled float rule does."""
    t = theta * scale
    m = math.ceil(t) - 1 if fire_ge else math.floor(t)
    return int(min(max(m, 0), VTH_MAX))


def decay_mantissa(decay: float) -> int:
    return int(min(max(round(decay * DECAY_ONE), 0), DECAY_ONE))


def _exp_for(limit: float, value: float) -> float:
    return math.inf if value <= 0 else math.floor(math.log2(limit / value))


@register_pass("quantize-loihi")
class QuantizeLoihi(PassSpec):
    """Legalize for NetX and quantize weights, thresholds, biases and decays to Loihi fixed point."""

    soft_reset: Literal["convert", "refuse"] = "convert"
    readout_threshold: float | None = Field(default=None, gt=0)
    input_bits: int = Field(default=7, ge=1, le=15)
    input_max: float | None = Field(default=None, gt=0)

    def __call__(self, graph: Graph) -> Graph:
        if LoihiInfo.of(graph).quantized:
            return graph
        g = legalize(graph, LegalizeOptions(soft_reset=self.soft_reset, readout_threshold=self.readout_threshold))
        return quantize(g, input_bits=self.input_bits, input_max=self.input_max)


def quantize(graph: Graph, *, input_bits: int = 7, input_max: float | None = None) -> Graph:
    """Quantize a legalized graph (see snnc.backends.lava.legalize); returns a new graph."""
    info = LoihiInfo.of(graph)
    if info.input is None:
        raise PassError(f"graph {graph.name} is not legalized for Loihi", hint="run the quantize-loihi pass")
    g = graph.copy()
    mode = info.input
    x_max = float(input_max or info.input_max or 1.0)
    if mode == "spikes":
        in_scale, in_max, message_bits = 1.0, 1.0, 0
    else:
        q = (1 << input_bits) - 1
        in_scale, in_max, message_bits = q / x_max, float(q), (input_bits + 1 if mode == "graded" else 0)
    inp = g.inputs[0].name
    layers = []
    for op in list(g):
        if not isinstance(op, ops.CubaLIF):
            continue
        src = g[op.inputs[0]]
        if isinstance(src, ops.Input):  # the input neuron: driven with x_int, no synapse
            layers.append(_quantize_input_neuron(g, op, in_scale))
            continue
        if not isinstance(src, (ops.Conv2d, ops.Linear)):
            raise PassError(f"{op.where()} is fed by {src.where()}, not by a conv2d/linear synapse",
                            hint="legalize the graph for Loihi first")
        reads_input = _reads(g, src, inp)
        layers.append(_quantize_layer(g, src, op, in_scale if reads_input else 1.0,
                                      in_max if reads_input else 1.0))
    info.updated(quantized=True, input_scale=in_scale, input_bits=input_bits if mode != "spikes" else 0,
                 input_max=x_max, input_message_bits=message_bits, layers=tuple(layers)).put(g)
    g.drop_unused_params()
    return g


def _reads(g: Graph, op: ops.OpBase, name: str) -> bool:
    src = op.inputs[0]
    while src != name and isinstance(g[src], ops.Flatten):
        src = g[src].inputs[0]
    return src == name


def _neuron_ints(op: ops.CubaLIF) -> tuple[int, int]:
    return decay_mantissa(op.current_decay), decay_mantissa(op.voltage_decay)


def _quantize_input_neuron(g: Graph, op: ops.CubaLIF, in_scale: float) -> LoihiLayerReport:
    i_decay, v_decay = _neuron_ints(op)
    vth = threshold_mantissa(op.v_threshold, in_scale, op.fire.value == "ge")
    g.replace_op(op.replace(v_threshold=float(vth), current_decay=i_decay / DECAY_ONE,
                            voltage_decay=v_decay / DECAY_ONE, fire=ops.CubaLIF.model_fields["fire"].default))
    return LoihiLayerReport(neuron=op.name, synapse=None, weight_exp=None, limited_by="input scale", v_th_mant=vth,
                            threshold_rel_error=_rel(vth + (op.fire.value == "ge"), op.v_threshold * in_scale),
                            i_decay=i_decay, v_decay=v_decay)


def _quantize_layer(g: Graph, syn: ops.Conv2d | ops.Linear, op: ops.CubaLIF, in_scale: float,
                    in_max: float) -> LoihiLayerReport:
    w = g.params[syn.weight].double()
    b = g.params[syn.bias].double() if syn.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    i_decay, v_decay = _neuron_ints(op)
    rows = w.flatten(1)
    drive = torch.maximum(rows.clamp(min=0).sum(1), (-rows).clamp(min=0).sum(1)).max().item() * in_max
    drive /= max(i_decay, 1) / DECAY_ONE  # a decaying current sums up to 1/current_decay inputs
    limits = {
        "weights (8 bit)": _exp_for(W_MAX, w.abs().max().item()),
        "threshold (17 bit)": _exp_for(VTH_MAX, op.v_threshold * in_scale),
        "bias (13 bit)": _exp_for(BIAS_MAX, b.abs().max().item() * in_scale),
        "current (24 bit)": _exp_for(A_MAX, drive),
    }
    limited_by = min(limits, key=limits.get)
    e = limits[limited_by]
    if not math.isfinite(e):
        raise PassError(f"{syn.where()} has all-zero weights and bias; NetX cannot hold an empty synapse")
    e = int(e)
    scale = 2.0 ** e * in_scale
    wq = quantize_weight(w, e)
    bq = torch.round(b * scale).clamp(-BIAS_MAX, BIAS_MAX)
    ge = op.fire.value == "ge"
    vth = threshold_mantissa(op.v_threshold, scale, ge)
    wname = g.add_param(f"{syn.name}.weight_q", wq.float())
    bname = g.add_param(f"{syn.name}.bias_q", bq.float()) if bool((bq != 0).any()) else None
    g.replace_op(syn.replace(weight=wname, bias=bname))
    g.replace_op(op.replace(v_threshold=float(vth), current_decay=i_decay / DECAY_ONE,
                            voltage_decay=v_decay / DECAY_ONE, fire=ops.CubaLIF.model_fields["fire"].default))
    return LoihiLayerReport(
        neuron=op.name, synapse=syn.name, weight_exp=e, limited_by=limited_by,
        weight_range_used=float(wq.abs().max() / W_MAX),
        weight_rel_error=_rel_norm(wq / 2.0 ** e, w),
        bias_rel_error=_rel_norm(bq / scale, b) if bool((b != 0).any()) else 0.0,
        v_th_mant=vth, threshold_rel_error=_rel(vth + ge, op.v_threshold * scale),
        i_decay=i_decay, v_decay=v_decay,
        decay_abs_error=max(abs(i_decay / DECAY_ONE - op.current_decay), abs(v_decay / DECAY_ONE - op.voltage_decay)),
    )


def _rel(q: float, x: float) -> float:
    return abs(q - x) / abs(x) if x else float(q != 0)


def _rel_norm(q: Tensor, x: Tensor) -> float:
    n = float(x.norm())
    return float((q - x).norm()) / n if n else float(q.norm() != 0)


def quantization_report(graph: Graph) -> str:
    """The per-layer quantization report of a quantized graph, as a text table."""
    layers = LoihiInfo.of(graph).layers
    if layers is None:
        raise PassError(f"graph {graph.name} is not quantized for Loihi", hint="run the quantize-loihi pass")
    head = f"{'layer':28s} {'exp':>4s} {'limited by':18s} {'w used':>7s} {'w err':>7s} {'b err':>7s} {'vThMant':>8s} {'th err':>7s}"
    lines = [head]
    for r in layers:
        exp = "-" if r.weight_exp is None else str(r.weight_exp)
        used = "-" if r.weight_range_used is None else f"{r.weight_range_used:.0%}"
        werr = "-" if r.weight_rel_error is None else f"{r.weight_rel_error:.2%}"
        berr = "-" if r.bias_rel_error is None else f"{r.bias_rel_error:.2%}"
        lines.append(f"{r.neuron:28s} {exp:>4s} {r.limited_by:18s} {used:>7s} {werr:>7s} {berr:>7s} "
                     f"{r.v_th_mant:>8d} {r.threshold_rel_error:>7.2%}")
    return "\n".join(lines)
