"""IR graph -> nir.NIRGraph.

One NIR node per IR op, named like the IR value. NIR sums the edges that
enter a node, so Add, Identity and LayoutCast become edges rather than nodes;
NIR types are per sample (no batch or time dims). A `recur` op becomes the
recurrent edge itself (from its source's node to its users: NIR graphs may
have cycles; readers feed them back one step late), a `delay` a nir.Delay of
its steps times dt.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np

from snnc.core.dynamics import FireCompare, NeuronOutput
from snnc.core.errors import LoweringError
from snnc.ir import ops
from snnc.ir.formats.nir import META_KEY, nir_params, to_nir_node
from snnc.ir.graph import Graph

# Ops that become edges, not NIR nodes.
PASS_THROUGH = (ops.Identity, ops.LayoutCast, ops.Add)
SUPPORTED = (ops.Input, ops.Output, ops.Linear, ops.Conv2d, ops.Flatten, ops.AvgPool2d, ops.Scale, ops.Threshold,
             ops.NeuronOp, ops.Delay, ops.Recur, *PASS_THROUGH)
HINTS = {
    ops.BatchNorm: "fold it into the conv/linear before it (pass fuse-bn)",
    ops.ReLU: "convert the ANN to an SNN first (snnc convert / --calib)",
    ops.MaxPool2d: "NIR has no max pooling; use AvgPool2d or SumPool2d",
    ops.RunningMaxPool2d: "NIR has no max pooling (nor a pooling with state); use AvgPool2d or SumPool2d",
    ops.Concat: "NIR has no concatenation",
    ops.AdaptiveAvgPool2d: "use a fixed AvgPool2d",
    ops.SigmaDelta: "NIR has no sigma-delta neuron; the lava target (NetX SDNN) and the cpu target run it",
    ops.Reshape: "NIR edges carry no reshapes other than Flatten",
    ops.Permute: "NIR has no transpose/permute",
    ops.Slice: "NIR has no slice/split of a value's features",
    ops.Mul: "NIR has no product of two values",
    ops.MatMul: "NIR has no product of two values",
    ops.Sum: "NIR has no reduction over feature dims",
    ops.Softmax: "NIR has no softmax (and a rate code has none)",
    ops.LayerNorm: "NIR has no layer norm",
    ops.Clamp: "convert the ANN to an SNN first",
    ops.TimeMean: "NIR has no mean over time; export the network before it and average its output over time",
    ops.Activation: "NIR has no such activation (and a rate code has none); the cpu and triton targets run it",
    ops.RateDecode: "NIR has no running mean (the hybrid --analog conversion's); the cpu and triton targets run it",
}


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32, copy=True)


def _arrays(graph: Graph, op: ops.OpBase) -> dict[str, np.ndarray]:
    """The op's parameters as float64 arrays (per-neuron values)."""
    return {p: graph.params[p].detach().cpu().double().numpy() for p in op.param_refs().values()}


def refusal(op: ops.OpBase, graph: Graph, options: Any) -> tuple[str, str] | None:
    """(why, what to do) when `op` cannot be written to NIR with `options`, else None."""
    if not isinstance(op, SUPPORTED):
        return f"{op.where()} has no NIR equivalent", HINTS.get(type(op), "NIR has no such primitive")
    types = graph.types
    if isinstance(op, ops.NeuronOp) and op.state_from is not None:
        return (f"{op.where()} starts from the final membrane potential of %{op.state_from} (one neuron module "
                "called twice on whole sequences)", "NIR nodes are separate populations with their own state; "
                "NIR cannot share one state between two nodes")
    if isinstance(op, ops.NeuronOp):
        try:
            nir_params(op, options.dt, soft_as_hard=options.soft_reset == "as_hard", ge=options.ge_threshold,
                       params=_arrays(graph, op))
        except ValueError as e:
            hint = ("Options(soft_reset='as_hard') writes soft resets as reset to 0, which changes their meaning"
                    if isinstance(op.reset, ops.SoftReset) else "use a neuron with a hard reset")
            return f"{op.where()}: {e}", hint
    if isinstance(op, ops.Linear) and len(types[op.inputs[0]].features) != 1:
        return (f"{op.where()} acts on features {list(types[op.inputs[0]].features)}",
                "NIR's Affine needs vector features: flatten first")
    if isinstance(op, ops.AvgPool2d):
        k = op.kernel_size[0] * op.kernel_size[1]
        if op.ceil_mode or (op.padding != (0, 0) and not op.count_include_pad and op.divisor_override is None) \
                or op.divisor_override not in (None, 1, k):
            return (f"{op.where()} has ceil_mode, count_include_pad=False or a custom divisor",
                    "NIR pools are plain sum or average pools")
    if isinstance(op, ops.Recur) and isinstance(graph[op.inputs[0]], PASS_THROUGH):
        return (f"{op.where()} reads %{op.inputs[0]} ({graph[op.inputs[0]].kind}), which is no NIR node",
                "let the recurrent edge read the neuron or synapse itself")
    if isinstance(op, ops.Add) and op.inputs[0] == op.inputs[1]:
        return f"{op.where()} adds a value to itself", "NIR edges cannot express x + x; use a Scale(2)"
    return None


def to_nir_graph(graph: Graph, options: Any):
    """Build the nir.NIRGraph of a legalized graph."""
    import nir

    types = graph.types
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    sources: dict[str, list[str]] = {}  # IR value -> the NIR nodes whose sum it is

    def connect(op: ops.OpBase) -> None:
        for i in op.inputs:
            edges.extend((s, op.name) for s in sources[i])

    soft, ge_kept, v_init = [], [], []
    for op in graph:
        feats = tuple(int(d) for d in types[op.name].features)
        if isinstance(op, ops.Add):
            sources[op.name] = sources[op.inputs[0]] + sources[op.inputs[1]]
            continue
        if isinstance(op, (ops.Identity, ops.LayoutCast)):
            sources[op.name] = list(sources[op.inputs[0]])
            continue
        if isinstance(op, ops.Recur):  # the recurrent edge: from the source's NIR node (named like it)
            sources[op.name] = [op.inputs[0]]
            continue
        if isinstance(op, ops.Input):
            node = nir.Input(input_type={"input": np.array(feats)})
        elif isinstance(op, ops.Output):
            node = nir.Output(output_type={"output": np.array(feats)})
        elif isinstance(op, ops.NeuronOp):
            node = to_nir_node(op, feats, options.dt, soft_as_hard=options.soft_reset == "as_hard",
                               ge=options.ge_threshold, metadata=options.metadata, params=_arrays(graph, op))
            if isinstance(op.reset, ops.SoftReset):
                soft.append(op.name)
            if op.fire is FireCompare.GE and options.ge_threshold == "keep" and op.output is NeuronOutput.SPIKES:
                ge_kept.append(op.name)
            if op.v_init is not None and op.v_init != op.to_params().initial_v:
                v_init.append(op.name)
        else:
            node = _stateless(op, graph, types, options.dt)
        nodes[op.name] = node
        connect(op)
        sources[op.name] = [op.name]
    if soft:
        warnings.warn(f"NIR cannot express reset by subtraction: {', '.join('%' + n for n in soft)} are written "
                      "as reset to 0 (soft_reset='as_hard'); other tools will reset to 0, which fires less often. "
                      f"snnc restores the soft reset from the '{META_KEY}' metadata", stacklevel=3)
    if ge_kept:
        warnings.warn(f"{', '.join('%' + n for n in ge_kept)} fire on v >= threshold but NIR says v > threshold "
                      "(ge_threshold='keep'): other tools will not fire at equality", stacklevel=3)
    if v_init:
        warnings.warn(f"NIR has no initial membrane potential: the v_init of {', '.join('%' + n for n in v_init)} "
                      f"is kept only in the '{META_KEY}' metadata{'' if options.metadata else ' (disabled)'}; "
                      "other tools start from their own default", stacklevel=3)
    meta = {META_KEY: json.dumps({"dt": options.dt, "graph": graph.name}, sort_keys=True)} if options.metadata else {}
    try:
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)
    except Exception as e:  # noqa: BLE001 - nir's own type check
        raise LoweringError(f"nir rejected the graph {graph.name}: {type(e).__name__}: {e}") from None


def _stateless(op: ops.OpBase, graph: Graph, types, dt: float = 1.0) -> Any:
    import nir

    p = graph.params
    in_feats = tuple(int(d) for d in types[op.inputs[0]].features)
    if isinstance(op, ops.Linear):
        if op.bias is None:
            return nir.Linear(weight=_np(p[op.weight]))
        return nir.Affine(weight=_np(p[op.weight]), bias=_np(p[op.bias]))
    if isinstance(op, ops.Conv2d):
        w = _np(p[op.weight])
        bias = _np(p[op.bias]) if op.bias is not None else np.zeros(w.shape[0], dtype=np.float32)
        return nir.Conv2d(input_shape=in_feats[1:], weight=w, stride=op.stride, padding=op.padding,
                          dilation=op.dilation, groups=op.groups, bias=bias)
    if isinstance(op, ops.Flatten):
        return nir.Flatten(input_type={"input": np.array(in_feats)}, start_dim=op.start_dim, end_dim=op.end_dim)
    if isinstance(op, ops.AvgPool2d):
        cls = nir.SumPool2d if op.divisor_override == 1 else nir.AvgPool2d
        return cls(kernel_size=np.array(op.kernel_size), stride=np.array(op.stride), padding=np.array(op.padding))
    if isinstance(op, ops.Delay):
        steps = np.full(in_feats, float(op.steps))
        if op.delays is not None:
            steps = np.broadcast_to(p[op.delays].detach().cpu().double().numpy().reshape(
                in_feats if p[op.delays].numel() > 1 else (1,)), in_feats)
        return nir.Delay(delay=(steps * dt).astype(np.float32))
    if isinstance(op, ops.Scale):
        scale = np.full(in_feats, op.factor, dtype=np.float64)
        if op.weight is not None:
            w = p[op.weight].detach().cpu().double().numpy()
            scale = scale * (w if w.ndim > 1 else w.reshape((-1,) + (1,) * (len(in_feats) - 1)))
        return nir.Scale(scale=scale.astype(np.float32))
    if isinstance(op, ops.Threshold):
        thr = np.full(in_feats, op.threshold, dtype=np.float64) if op.threshold_param is None else \
            np.broadcast_to(p[op.threshold_param].detach().cpu().double().numpy(), in_feats)
        if op.fire is FireCompare.GE:  # NIR's Threshold fires on x > threshold: the float32 just below
            thr = np.nextafter(thr.astype(np.float32), np.float32(-np.inf))
        return nir.Threshold(threshold=np.asarray(thr, dtype=np.float32).copy())
    raise LoweringError(f"{op.where()} has no NIR equivalent")
