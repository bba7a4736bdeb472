"""The CPU reference interpreter: executes an IR graph layer by layer.

Stateless ops run once over the time-folded batch [T*N, *]; neurons step
through time with the dynamics of `snnc.dynamics`. A failing kernel is
re-raised naming the node and its source module.
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import Tensor

from snnc import dynamics
from snnc.errors import InputError, LoweringError, SnncError
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.types import Layout, TensorType
from snnc.ir.verify import verify
from snnc.runtime import layouts
from snnc.runtime.kernels import KERNELS

Observer = Callable[[ops.OpBase, Tensor], None]


def unsupported_ops(graph: Graph) -> list[ops.OpBase]:
    known = (ops.Input, ops.NeuronOp, ops.LayoutCast, *KERNELS)
    return [op for op in graph if not isinstance(op, known)]


class Interpreter:
    """Runs a verified graph. Neuron state lives in `self.state` (node name -> V)."""

    def __init__(self, graph: Graph, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        self.graph = verify(graph)
        bad = unsupported_ops(graph)
        if bad:
            raise LoweringError(f"the CPU runtime has no kernel for {', '.join(op.where() for op in bad)}")
        self.device = torch.device(device)
        self.dtype = dtype
        self.params = {k: (v.to(self.device, dtype) if v.is_floating_point() else v.to(self.device))
                       for k, v in graph.params.items()}
        self.types = graph.types
        self.state: dict[str, Tensor] = {}
        self._neuron_params = {op.name: op.to_params() for op in graph if isinstance(op, ops.NeuronOp)}

    @property
    def has_time(self) -> bool:
        return any(t.layout.has_time for t in self.types.values())

    def reset(self) -> None:
        self.state.clear()

    # -- inputs -----------------------------------------------------------
    def bind(self, op: ops.Input, x, T: int | None) -> tuple[Tensor, int | None]:
        """Check one input against its declared type; a [N, *] input to a time layout is held constant over T."""
        ty = op.type
        if not isinstance(x, Tensor):
            try:
                x = torch.as_tensor(x)
            except Exception as e:  # noqa: BLE001
                raise InputError(f"input %{op.name}: cannot convert {type(x).__name__} to a tensor: {e}") from None
        if not (x.is_floating_point() or x.dtype in (torch.bool, torch.uint8, torch.int8, torch.int16,
                                                      torch.int32, torch.int64)):
            raise InputError(f"input %{op.name} has dtype {x.dtype}; expected a real-valued tensor")
        x = x.to(self.device, self.dtype)
        feats = tuple(ty.features)
        nf = len(feats)
        if tuple(x.shape[-nf:] if nf else ()) != feats or x.dim() not in (nf + 1, nf + 2):
            hint = f"[N, {', '.join(map(str, feats))}]"
            if ty.layout.has_time:
                hint += f" (constant input) or [T, N, {', '.join(map(str, feats))}] (a sequence)"
            raise InputError(f"input %{op.name} expects {ty} but got shape {list(x.shape)}", hint=f"pass {hint}")
        if not bool(torch.isfinite(x).all()):
            raise InputError(f"input %{op.name} contains NaN or Inf")
        if not ty.layout.has_time:
            if x.dim() != nf + 1:
                raise InputError(f"input %{op.name} expects one step {ty}, got a sequence of shape {list(x.shape)}")
            return x, T
        if x.dim() == nf + 1:  # constant analog input
            if T is None:
                raise InputError(f"input %{op.name} is a single step of shape {list(x.shape)}: give T "
                                 "(the number of time steps) to hold it constant")
            x = x.unsqueeze(0).expand(T, *x.shape)
        elif T is not None and x.shape[0] != T:
            raise InputError(f"input %{op.name} is a sequence of {x.shape[0]} steps but T={T}")
        T = x.shape[0]
        return layouts.from_tnx(x, ty.layout) if ty.layout is not Layout.TNX else x, T

    # -- execution --------------------------------------------------------
    def run(self, feeds: Mapping[str, object], T: int | None = None, *,
            observe: Observer | None = None, keep: set[str] | None = None) -> dict[str, Tensor]:
        """Execute the graph; returns output name -> value (plus the values named in `keep`)."""
        if T is not None and (not isinstance(T, int) or isinstance(T, bool) or T <= 0):
            raise InputError(f"T must be a positive int, got {T!r}")
        values: dict[str, Tensor] = {}
        want = {o.name for o in self.graph.outputs} | set(keep or ())
        last_use = self._last_uses()
        for name, op in self.graph.nodes.items():
            if isinstance(op, ops.Input):
                if name not in feeds:
                    raise InputError(f"missing input %{name}", hint=f"inputs: {', '.join(i.name for i in self.graph.inputs)}")
                values[name], T = self.bind(op, feeds[name], T)
            else:
                try:
                    values[name] = self._exec(op, [values[i] for i in op.inputs], T)
                except SnncError:
                    raise
                except Exception as e:  # noqa: BLE001 - add the node to torch's message
                    raise LoweringError(f"while executing {op.where()}: {type(e).__name__}: {e}") from e
            if observe is not None:
                observe(op, values[name])
            for i in op.inputs:  # free intermediates early: peak memory ~ two layers
                if last_use.get(i) == name and i not in want:
                    values.pop(i, None)
        return {k: values[k] for k in want}

    def _last_uses(self) -> dict[str, str]:
        last: dict[str, str] = {}
        for op in self.graph:
            for i in op.inputs:
                last[i] = op.name
        return last

    def _exec(self, op: ops.OpBase, ins: list[Tensor], T: int | None) -> Tensor:
        out_t: TensorType = self.types[op.name]
        if isinstance(op, ops.NeuronOp):
            return self._neuron(op, ins[0], T)
        if isinstance(op, ops.LayoutCast):
            src = self.types[op.inputs[0]].layout
            if src is Layout.NX:
                if T is None:
                    raise InputError(f"{op.where()} repeats a single step over time: give T")
                return layouts.from_tnx(ins[0].unsqueeze(0).expand(T, *ins[0].shape), op.to)
            return layouts.from_tnx(layouts.to_tnx(ins[0], src, T), op.to)
        fn = KERNELS[type(op)]
        layout = out_t.layout
        if layout in (Layout.NX, Layout.TN):
            return fn(op, ins, self.params)
        folded = [layouts.to_tnx(x, self.types[i].layout, T).flatten(0, 1) for x, i in zip(ins, op.inputs)]
        y = fn(op, folded, self.params)
        y = y.unflatten(0, (T, y.shape[0] // T))
        return layouts.from_tnx(y, layout)

    def _neuron(self, op: ops.NeuronOp, x: Tensor, T: int | None) -> Tensor:
        layout = self.types[op.name].layout
        x_seq = layouts.to_tnx(x, layout, T)
        v = self.state.get(op.name)
        if v is not None and v.shape != x_seq.shape[1:]:
            raise InputError(f"{op.where()}: state has shape {list(v.shape)} but the input step is "
                             f"{list(x_seq.shape[1:])}", hint="call reset() when the batch size changes")
        if v is None:
            v = torch.full_like(x_seq[0], op.initial_v())
        spikes, v = dynamics.multi_step(self._neuron_params[op.name], x_seq, v)
        self.state[op.name] = v
        return layouts.from_tnx(spikes, layout)
