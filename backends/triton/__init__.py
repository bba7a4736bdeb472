"""The Triton GPU backend: stateless ops through torch (cuDNN/cuBLAS) on the time-folded
batch, neurons through the Triton multi-step kernels of `snnc.runtime.triton`.

The artifact is the IR (like cpu) marked for the triton runtime; `snnc.load` opens it
in a Session whose neuron layers run the Triton kernels (on CUDA, or on the CPU under
TRITON_INTERPRET=1, which is how CI checks it against the reference runtime).
"""

from __future__ import annotations

import os

from pydantic import Field

from snnc.backends.artifact import write_ir_artifact
from snnc.core.errors import LoweringError
from snnc.ir import ops
from snnc.ir.formats.artifact import Artifact
from snnc.ir.graph import Graph
from snnc.ir.verify import verify
from snnc.runtime.interpreter import unsupported_ops
from snnc.runtime.triton.options import RuntimeOptions


class Options(RuntimeOptions):
    """Triton target options: the runtime's (fused_linear, cuda_graphs, ...; see docs/triton.md) and T."""

    time_steps: int | None = Field(default=None, ge=1)  # default T recorded in the manifest


def legalize(graph: Graph) -> Graph:
    """Every neuron must be one the kernels implement (IF/LIF); other ops run through torch."""
    bad = [op.where() for op in unsupported_ops(graph)]
    bad += [op.where() for op in graph if isinstance(op, ops.NeuronOp) and op.kind not in ("if", "lif")]
    bad += [op.where() for op in graph if isinstance(op, ops.SigmaDelta)]  # no Triton kernel; the cpu target runs it
    bad += [f"{op.where()}: {', '.join(op.extensions())}" for op in graph
            if isinstance(op, ops.NeuronOp) and op.kind in ("if", "lif") and op.extensions()]
    bad += [f"{op.where()}: a per-element scale (the chain kernels scale per channel)" for op in graph
            if isinstance(op, ops.Scale) and op.weight is not None and graph.params[op.weight].dim() > 1]
    timed = [op for op in graph if isinstance(op, (ops.Delay, ops.Recur))]
    if timed:  # the kernels run a window of steps per neuron group; a delay line or a cycle is not modelled
        raise LoweringError("the triton target cannot run " + "; ".join(op.where() for op in timed) +
                            ": delays and recurrent edges run on the cpu target (or lava, for NetX files)")
    if bad:
        raise LoweringError("the triton target cannot run: " + "; ".join(bad),
                            hint="the Triton kernels run IF/LIF neurons with scalar parameters; the cpu target "
                                 "runs the others (CUBA current, leaky integrators, per-neuron values, sigma-delta) "
                                 "in float, and Loihi CUBA and sigma-delta neurons run on the lava target")
    linked = [op for op in graph if isinstance(op, ops.NeuronOp) and op.state_from is not None]
    if linked:
        raise LoweringError("the triton target cannot run a neuron that starts from another's final membrane "
                            "potential (one neuron module called twice on whole sequences): "
                            + "; ".join(f"{op.where()} continues %{op.state_from}" for op in linked),
                            hint="the cpu target runs it")
    return graph


def lower(graph: Graph, options: Options | None = None, output: str | os.PathLike | None = None, *,
          force: bool = False) -> Artifact:
    options = options or Options()
    g = legalize(verify(graph.copy()))
    runtime = options.model_dump(include=set(RuntimeOptions.model_fields))
    return write_ir_artifact(g, "triton", output, {"time_steps": options.time_steps, "runtime_options": runtime},
                             force=force)
