"""The NIR target: write an IR graph as a NIR file (`model.nir`) for other SNN tools.

The artifact folder holds model.nir (nir.write / nir.read), graph.snnir (the
graph that was exported) and manifest.json. docs/nir.md gives the mapping
per op and how the semantic gaps are resolved.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from snnc.backends.artifact import write_artifact
from snnc.backends.nir.export import refusal, to_nir_graph
from snnc.core.errors import LoweringError
from snnc.ir.formats.artifact import Artifact
from snnc.ir.formats.nir import DEFAULT_DT
from snnc.ir.graph import Graph
from snnc.ir.verify import verify

NIR_FILE = "model.nir"


class Options(BaseModel):
    """NIR target options.

    Args:
        dt: seconds per time step, used to turn step counts into NIR's
            continuous-time parameters (tau = tau_steps * dt, IF r = 1/dt).
        soft_reset: 'refuse' neurons that reset by subtraction (NIR resets to
            v_reset), or write them 'as_hard' (reset to 0) with a warning.
        ge_threshold: neurons firing on v >= threshold are written with the
            largest float32 below the threshold ('nextafter': identical in
            float32 for NIR's v > threshold), or unchanged with a warning ('keep').
        metadata: record each neuron's exact IR op in its NIR metadata, so
            snnc reads back what NIR cannot say (soft reset, >=, v_init).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    dt: float = Field(default=DEFAULT_DT, gt=0)
    soft_reset: Literal["refuse", "as_hard"] = "refuse"
    ge_threshold: Literal["nextafter", "keep"] = "nextafter"
    metadata: bool = True
    time_steps: int | None = Field(default=None, gt=0)  # default T recorded in the manifest


def legalize(graph: Graph, options: Options | None = None) -> Graph:
    """Check every op has a NIR form under `options`; report all offenders at once."""
    options = options or Options()
    bad = [r for op in graph if (r := refusal(op, graph, options)) is not None]
    if bad:
        hints = dict.fromkeys(hint for _, hint in bad)
        raise LoweringError("the nir target cannot express: " + "; ".join(why for why, _ in bad),
                            hint="; ".join(hints))
    return graph


def lower(graph: Graph, options: Options | None = None, output: str | os.PathLike | None = None, *,
          force: bool = False) -> Artifact:
    """Write `graph` as a NIR artifact folder at `output`."""
    import nir

    options = options or Options()
    if output is None:
        raise LoweringError("the nir target needs an output folder")
    g = legalize(verify(graph.copy()), options)
    nir_graph = to_nir_graph(g, options)
    return write_artifact(g, "nir", output, {"nir": NIR_FILE, "nir_version": nir.version, "dt": options.dt,
                                             "soft_reset": options.soft_reset,
                                             "ge_threshold": options.ge_threshold,
                                             "time_steps": options.time_steps},
                          lambda folder: nir.write(folder / NIR_FILE, nir_graph), force=force)
