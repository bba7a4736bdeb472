"""Bring an SNN graph into the one shape NetX can hold: a chain of `synapse -> CUBA neuron` layers.

The result is a float graph (Loihi's integer grid comes later, in the
quantize-loihi pass) that reads

    %x: input -> [cuba_lif]            input layer (a neuron only if the input feeds one directly)
      -> conv2d | [flatten ->] linear -> cuba_lif     once per NetX layer
      -> output                        the last neuron's spikes

Semantic changes are explicit: reset by subtraction becomes reset to 0 with a
warning (or is refused), a hard reset to v_r shifts the threshold by -v_r,
LIF input decay folds 1/tau into the synapse, `>=` stays a field until the
integer threshold makes it `>` exactly. Residual adds and concatenation are
refused, naming the node; so is anything NetX 0.6 cannot read.
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from snnc.core import spelling
from snnc.backends.lava.compose import LINEAR_OPS, compose_convs, measure_dense
from snnc.core.errors import LoweringError
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.ops import CubaLIF, HardReset, LoihiInfo, NoReset, SoftReset
from snnc.ir.verify import verify

# how the ANN is converted for Loihi, in Python and on the command line
_LAVA_CONVERT = {False: "snnc.backends.lava.convert", True: "snnc compile ANN --target lava --calib DATA"}

_PASS_THROUGH = (ops.Scale, ops.Identity, ops.LayoutCast)


class LegalizeOptions(BaseModel):
    """How semantic gaps between the graph and Loihi are closed."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    soft_reset: Literal["convert", "refuse"] = "convert"  # reset by subtraction -> reset to 0 (warns), or refuse
    readout_threshold: float | None = Field(default=None, gt=0)  # of the neuron added after an analog output


def check_supported(graph: Graph) -> None:
    """Report every op NetX cannot hold, all at once."""
    bad = []
    for op in graph:
        if isinstance(op, (ops.Add, ops.Concat)):
            bad.append(f"{op.where()}: NetX 0.6 layers run in sequence, so residual adds and concatenation "
                       "cannot be expressed")
        elif isinstance(op, (ops.MaxPool2d, ops.RunningMaxPool2d)):
            bad.append(f"{op.where()}: max pooling of spikes is not linear and NetX has no pool layer "
                       "(use AvgPool2d, which folds into the next synapse)")
        elif isinstance(op, ops.ReLU):
            bad.append(f"{op.where()}: an analog ReLU cannot run on Loihi (convert the ANN to an SNN first)")
        elif isinstance(op, ops.NeuronOp) and op.state_from is not None:
            bad.append(f"{op.where()}: starts from the final membrane potential of %{op.state_from} (one neuron "
                       "module called twice on whole sequences); a NetX layer is its own neuron population "
                       "with its own state, and Loihi runs all layers in the same time steps")
        elif isinstance(op, ops.NeuronOp) and [e for e in op.extensions() if not e.startswith("a synaptic current")]:
            bad.append(f"{op.where()}: no NetX neuron with "
                       f"{', '.join(e for e in op.extensions() if not e.startswith('a synaptic current'))}")
        elif isinstance(op, ops.Scale) and op.weight is not None and graph.params[op.weight].dim() > 1:
            bad.append(f"{op.where()}: a per-element scale folds into no NetX synapse")
        elif not isinstance(op, (ops.Input, ops.Output, ops.NeuronOp, *LINEAR_OPS)):
            bad.append(f"{op.where()}: no NetX layer for {op.kind}")
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        bad.append(f"graph {graph.name} has {len(graph.inputs)} inputs and {len(graph.outputs)} outputs; "
                   "a NetX network has one of each")
    if not any(ops.is_neuron(op) for op in graph):
        bad.append(f"graph {graph.name} has no spiking neurons: convert the ANN first (snnc.backends.lava.convert)")
    if bad:
        raise LoweringError("the lava target cannot express:\n  " + "\n  ".join(bad),
                            hint="NetX reads input, conv, dense and flatten layers connected in sequence")


def _chain(graph: Graph) -> list[ops.OpBase]:
    """The ops from the input to the output, checking each value has exactly one user."""
    op: ops.OpBase = graph.inputs[0]
    chain = [op]
    while not isinstance(op, ops.Output):
        users = graph.users(op.name)
        if len(users) != 1:
            names = ", ".join(u.where() for u in users) or "nothing"
            raise LoweringError(f"{op.where()} is read by {names}; NetX layers form a single chain",
                                hint="branches (and dead ends) cannot be mapped to Loihi through NetX")
        op = users[0]
        chain.append(op)
    return chain


def to_cuba(op: ops.NeuronOp, options: LegalizeOptions) -> tuple[CubaLIF, float]:
    """The CUBA neuron for `op`, and the factor its input must be multiplied by."""
    if isinstance(op, CubaLIF):
        return op, 1.0
    theta, factor = op.v_threshold, 1.0
    r = op.reset
    if isinstance(r, NoReset):
        raise LoweringError(f"{op.where()} never resets; Loihi's CUBA neuron always resets to 0",
                            hint="use a hard or soft reset")
    if isinstance(r, SoftReset):
        if options.soft_reset == "refuse":
            raise LoweringError(f"{op.where()} resets by subtraction, which Loihi's CUBA neuron cannot do",
                                hint=f"convert the ANN for Loihi ({_LAVA_CONVERT[spelling.on_command_line()]}: "
                                     "reset to 0, thresholds calibrated) or pass "
                                     + spelling.option("soft_reset", "convert"))
        warnings.warn(f"{op.where()} resets by subtraction; Loihi resets to 0, so it is converted to reset-to-0 "
                      "(charge above threshold is lost at each spike and rates drop; "
                      "snnc.backends.lava.convert calibrates thresholds for it)", stacklevel=3)
    elif isinstance(r, HardReset):
        theta -= r.v_reset  # V' = V - v_reset resets to 0 and leaks towards 0
    start = op.to_params().initial_v
    if op.v_init is not None and op.v_init != start:
        warnings.warn(f"{op.where()} starts at v_init={op.v_init}; NetX cannot set an initial potential, so on "
                      f"Loihi it starts at its reset value {start}", stacklevel=3)
    if isinstance(op, ops.IF):
        vd = 0.0
    elif isinstance(op, ops.LIF):
        vd = 1.0 / op.tau
        if op.decay_input:
            factor = 1.0 / op.tau  # V + (X - V)/tau = (1 - 1/tau) V + X/tau
    else:
        raise LoweringError(f"{op.where()}: no Loihi neuron for {op.kind}")
    if theta < 0:
        raise LoweringError(f"{op.where()}: threshold {theta} relative to the reset value is negative")
    return CubaLIF(name=op.name, inputs=op.inputs, v_threshold=theta, fire=op.fire, voltage_decay=vd,
                   current_decay=op.current_decay, loc=op.loc), factor  # a float CUBA current is Loihi's


def legalize(graph: Graph, options: LegalizeOptions | None = None) -> Graph:
    """The canonical NetX chain for `graph` (see module doc); never mutates `graph`."""
    options = options or LegalizeOptions()
    verify(graph)
    check_supported(graph)
    chain = _chain(graph)
    out = Graph(graph.name, dict(graph.meta))
    inp = chain[0]
    out.add(inp)
    prev = inp.name
    seg: list[ops.OpBase] = []
    input_neuron = False
    for op in chain[1:]:
        if isinstance(op, ops.NeuronOp):
            neuron, factor = to_cuba(op, options)
            if prev == inp.name and all(isinstance(s, _PASS_THROUGH) for s in seg):
                prev = _input_neuron(out, graph, seg, neuron, factor)
                input_neuron = True
            else:
                prev = _layer(out, graph, seg, neuron, factor, prev)
            seg = []
        elif isinstance(op, ops.Output):
            if not all(isinstance(s, _PASS_THROUGH) for s in seg):
                prev = _readout(out, graph, seg, prev, options)
            elif seg:
                warnings.warn(f"{seg[-1].where()}: dropped before the output; Loihi outputs the spikes of "
                              f"%{prev}", stacklevel=2)
            out.add(ops.Output(name=op.name, inputs=(prev,), loc=op.loc))
        else:
            seg.append(op)
    LoihiInfo.of(out).updated(input="neuron" if input_neuron else
                              ("spikes" if inp.type.dtype.value == "spike" else "graded")).put(out)
    out.drop_unused_params()
    return verify(out)


def _scalar_of(graph: Graph, seg: list[ops.OpBase]) -> float:
    f = 1.0
    for s in seg:
        if isinstance(s, ops.Scale):
            if s.weight is not None:
                w = graph.params[s.weight]
                if not bool((w == w.flatten()[0]).all()):
                    raise LoweringError(f"{s.where()}: a per-channel scale in front of the input neuron "
                                        "has no NetX form")
                f *= float(w.flatten()[0])
            f *= s.factor
    return f


def _input_neuron(out: Graph, graph: Graph, seg, neuron: CubaLIF, factor: float) -> str:
    s = _scalar_of(graph, seg) * factor
    if s <= 0:
        raise LoweringError(f"{neuron.where()}: the input neuron is driven with a non-positive scale {s}")
    out.add(neuron.replace(inputs=(graph.inputs[0].name,), v_threshold=neuron.v_threshold / s))
    return neuron.name


def _layer(out: Graph, graph: Graph, seg, neuron: CubaLIF, factor: float, prev: str) -> str:
    syn = _synapse(out, graph, seg, prev, factor, f"{neuron.name}_syn")
    out.add(neuron.replace(inputs=(syn,)))
    return neuron.name


def _synapse(out: Graph, graph: Graph, seg, prev: str, factor: float, default_name: str) -> str:
    """Add the one Conv2d or (Flatten +) Linear computing `seg` on %prev, scaled by factor."""
    in_feats = tuple(out.types[prev].features)
    main = next((s for s in reversed(seg) if isinstance(s, (ops.Conv2d, ops.Linear))), None)
    name = main.name if main is not None else default_name
    name = out.fresh_name(name.replace(".", "_")) if name in out.nodes else name
    loc = main.loc if main is not None else (seg[-1].loc if seg else None)
    dense = len(in_feats) != 3 or any(isinstance(s, (ops.Linear, ops.Flatten)) for s in seg)
    if dense:
        a, c = measure_dense(graph, seg, in_feats)
        src = prev
        if len(in_feats) != 1:
            src = out.add(ops.Flatten(name=out.fresh_name(f"{name}_flatten"), inputs=(prev,), loc=loc))
        w = out.add_param(f"{name}.weight", (a * factor).float())
        b = out.add_param(f"{name}.bias", (c * factor).float()) if bool((c != 0).any()) else None
        return out.add(ops.Linear(name=name, inputs=(src,), weight=w, bias=b, loc=loc))
    spec = compose_convs(graph, seg, in_feats)
    w = out.add_param(f"{name}.weight", (spec.weight * factor).float())
    b = None
    if spec.bias is not None and bool((spec.bias != 0).any()):
        b = out.add_param(f"{name}.bias", (spec.bias * factor).float())
    return out.add(ops.Conv2d(name=name, inputs=(prev,), weight=w, bias=b, stride=spec.stride, padding=spec.padding,
                              dilation=spec.dilation, groups=spec.groups, loc=loc))


def _readout(out: Graph, graph: Graph, seg, prev: str, options: LegalizeOptions) -> str:
    """A spiking readout after an analog output (NetX outputs spikes only)."""
    base = next((s.name for s in reversed(seg) if isinstance(s, (ops.Conv2d, ops.Linear))), seg[-1].name)
    syn = _synapse(out, graph, seg, prev, 1.0, f"{base}_syn")
    theta = options.readout_threshold or LoihiInfo.of(graph).readout_threshold
    if theta is None:
        w = out.params[out[syn].weight]
        b = out.params[out[syn].bias] if out[syn].bias else torch.zeros(w.shape[0])
        drive = w.clamp(min=0).flatten(1).sum(1) + b
        theta = max(float(drive.max()) / 4.0, 1e-6)
        warnings.warn(f"{seg[-1].where()}: the graph's output is analog, but Loihi outputs spikes; a readout "
                      f"neuron (reset to 0, threshold {theta:.4g}, a guess from the weights) now spikes at a rate "
                      "that grows with it. Calibrate it with snnc.backends.lava.convert or set readout_threshold",
                      stacklevel=3)
    neuron = CubaLIF(name=out.fresh_name(f"{base}_readout"), inputs=(syn,), v_threshold=float(theta),
                     loc=seg[-1].loc)
    return out.add(neuron)
