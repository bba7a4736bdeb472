"""The CPU reference backend: the artifact is the IR itself; the runtime interprets it with torch."""

from __future__ import annotations

import os
import warnings

from pydantic import BaseModel, ConfigDict, Field

from snnc.backends.artifact import write_ir_artifact
from snnc.core.errors import LoweringError
from snnc.ir import ops
from snnc.ir.formats.artifact import Artifact
from snnc.ir.graph import Graph
from snnc.ir.verify import verify
from snnc.runtime.interpreter import unsupported_ops


class Options(BaseModel):
    """CPU target options."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    time_steps: int | None = Field(default=None, ge=1)  # default T recorded in the manifest


def legalize(graph: Graph) -> Graph:
    """Check every op has a CPU kernel; report all offenders at once."""
    bad = unsupported_ops(graph)
    if bad:
        raise LoweringError("the cpu target cannot run: " + "; ".join(op.where() for op in bad))
    return graph


def lower(graph: Graph, options: Options | None = None, output: str | os.PathLike | None = None, *,
          force: bool = False) -> Artifact:
    options = options or Options()
    g = legalize(verify(graph.copy()))
    if ops.LoihiInfo.of(g).quantized:  # read from a NetX file (or quantized for Loihi)
        warnings.warn(f"graph {g.name} is a Loihi (NetX) network: the cpu target runs its neurons in float, not "
                      "Loihi's fixed point, so spikes can differ from Lava; --target lava runs it bit-exactly",
                      stacklevel=2)
    return write_ir_artifact(g, "cpu", output, {"time_steps": options.time_steps}, force=force)
