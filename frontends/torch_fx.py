"""torch.fx frontend: trace an nn.Module (ANN, or SNN with leaf neurons) into an IR graph.

The lowering tables and the fx graph walker are snnc.frontends.fx_lowering;
torch.nn modules, functions and tensor methods are registered by
snnc.frontends.fx_ops, spiking neurons and step-mode containers (snnc.nn,
SpikingJelly) by snnc.frontends.snn.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import torch.nn as nn

from snnc.core.errors import FrontendError
from snnc.frontends import fx_ops  # noqa: F401 - registers the torch.nn lowerings
from snnc.frontends import fx_tensor_ops  # noqa: F401 - and the tensor/layout ops (after fx_ops: it extends some)
from snnc.frontends import fx_sequence_ops  # noqa: F401 - and the 1-D ops, softmax, LayerNorm, attention
from snnc.frontends import snn
from snnc.frontends import torch_capture
from snnc.frontends.fx_lowering import (MODULE_LOWERINGS, FoldsLeadDims, FxTraceError, _Ctx, _find, _fx_trace,
                                         lower_fx_graph, type_name)
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.types import Layout, TensorType
from snnc.ir.verify import verify


def _as_shapes(input_shape: Sequence[int] | Sequence[Sequence[int]], n: int) -> list[tuple[int, ...]]:
    shapes = input_shape
    if shapes and all(isinstance(d, int) for d in shapes):
        shapes = [shapes]
    shapes = [tuple(int(d) for d in s) for s in shapes]
    if len(shapes) != n:
        raise FrontendError(f"the model takes {n} input(s) but {len(shapes)} input shape(s) were given",
                            hint="pass one per-sample shape (without the batch dim) per input")
    return shapes


def trace(model: nn.Module, input_shape: Sequence[int] | Sequence[Sequence[int]], *, name: str | None = None,
          layout: Layout | None = None, step_mode: str | None = None) -> Graph:
    """Trace `model` into an IR graph: with torch.fx, or with torch.export where fx cannot trace the
    model's Python code (shape checks, ...; see snnc.frontends.torch_capture). Both give the same IR.

    Args:
        input_shape: per-sample shape of each input, without batch and time
            dims (e.g. (1, 8, 8)), or a list of such shapes for several inputs.
        layout: NX for ANNs (one step), TNX for SNNs ([T, N, *] inputs). None
            picks TNX when the model has spiking neurons or multi-step layers.
        step_mode: 's' if the model's forward takes one time step [N, *] (it is
            then run once per step), 'm' if it takes [T, N, *]. None reads the
            step_mode of the model's snnc.nn / SpikingJelly modules.
    """
    if not isinstance(model, nn.Module):
        raise FrontendError(f"expected a torch.nn.Module, got {type(model).__name__}")
    snn.register_available()
    snn.refuse_foreign_neurons(model)
    _warn_training_mode(model)
    mode = step_mode if step_mode is not None else snn.model_step_mode(model)
    if mode not in (None, "s", "m"):
        raise FrontendError(f"step_mode {step_mode!r} is invalid: expected 's' or 'm'")
    neurons = snn.has_neurons(model)
    if layout is None:
        layout = Layout.TNX if neurons or mode == "m" else Layout.NX
    if neurons and not layout.has_time:
        raise FrontendError(f"{type_name(type(model))} has spiking neurons, which need a time dimension",
                            hint="trace it with layout=Layout.TNX (inputs [T, N, *])")
    if _find(MODULE_LOWERINGS, type(model)) is not None:  # a bare leaf layer: fx never treats the root as a leaf
        model = _Root(model)
    meta = {"step_mode": mode} if mode is not None else {}
    per_step = mode == "s" and layout.has_time

    def captured(why: FrontendError) -> Graph:
        return torch_capture.capture(model, _as_shapes(input_shape, torch_capture.forward_arity(model)),
                                     layout=layout, per_step=per_step, name=name or type(model).__name__,
                                     meta=meta, fx_error=why)

    try:
        fx_graph = _fx_trace(model, type(model))
    except FxTraceError as e:  # shape checks and other Python control flow: torch.export runs them
        return captured(e)
    placeholders = [n for n in fx_graph.nodes if n.op == "placeholder"]
    shapes = _as_shapes(input_shape, len(placeholders))
    graph = Graph(name or type(model).__name__, meta)
    ctx = _Ctx(graph, per_step=per_step)
    inputs = []
    for node, shape in zip(placeholders, shapes):
        dims = layout.join("N", "T", shape)
        # the forward parameter's own name ('input'), which fx renames when it shadows a builtin ('input_1')
        arg = str(node.target) if str(node.target).isidentifier() else node.name
        inputs.append(ctx.emit(ops.Input(name=graph.fresh_name(arg), type=TensorType(shape=dims, layout=layout))))
    try:
        results = lower_fx_graph(ctx, fx_graph, dict(model.named_modules()), inputs, prefix="")
    except FoldsLeadDims as e:
        if not layout.has_time or per_step:  # [N, *]: merging N with a feature dim has no meaning
            raise
        # x.flatten(0, 1) for per-step layers and the reshape back to [T, N, ...]: torch.export's
        # symbolic T and N tell the folded values apart
        return captured(e)
    for i, r in enumerate(results):
        ctx.emit(ops.Output(name=graph.fresh_name("out" if len(results) == 1 else f"out{i}"), inputs=(r,)))
    return verify(graph)


def _warn_training_mode(model: nn.Module) -> None:
    """snnc captures what model.eval() computes; say so where training mode would compute otherwise."""
    differ = [path or type(m).__name__ for path, m in model.named_modules() if m.training and (
        isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
        or isinstance(m, tuple(snn.DROPOUT_TYPES)) and getattr(m, "p", 1) > 0)]
    if differ:
        shown = ", ".join(f"'{p}'" for p in differ[:3]) + (f" and {len(differ) - 3} more" if len(differ) > 3 else "")
        warnings.warn(f"{type_name(type(model))} is in training mode, where {shown} compute otherwise: snnc "
                      "captures what model.eval() computes (BatchNorm on its running statistics, no Dropout); "
                      "call model.eval() first to silence this", stacklevel=3)


class _Root(nn.Module):
    """Wraps a single leaf layer given as the whole model; its path is 'root'."""

    def __init__(self, root: nn.Module):
        super().__init__()
        self.root = root

    def forward(self, x):
        return self.root(x)
