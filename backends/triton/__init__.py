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
    bad = unsupported_ops(graph)
    bad += [op for op in graph if isinstance(op, ops.NeuronOp) and op.kind not in ("if", "lif")]
    timed = [op for op in graph if isinstance(op, (ops.Delay, ops.Recur))]
    if timed:  # the kernels run a window of steps per neuron group; a delay line or a cycle is not modelled
        raise LoweringError("the triton target cannot run " + "; ".join(op.where() for op in timed) +
                            ": delays and recurrent edges run on the cpu target (or lava, for NetX files)")
    if bad:
        raise LoweringError("the triton target cannot run: " + "; ".join(op.where() for op in bad),
                            hint="Loihi CUBA neurons run on the lava target")
    return graph


def lower(graph: Graph, options: Options | None = None, output: str | os.PathLike | None = None, *,
          force: bool = False) -> Artifact:
    options = options or Options()
    g = legalize(verify(graph.copy()))
    runtime = options.model_dump(include=set(RuntimeOptions.model_fields))
    return write_ir_artifact(g, "triton", output, {"time_steps": options.time_steps, "runtime_options": runtime},
                             force=force)
