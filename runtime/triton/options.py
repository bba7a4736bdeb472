"""Options of the triton runtime; the triton target's `Options` extend them (`-O key=value`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RuntimeOptions(BaseModel):
    """Options of the triton runtime (also options of the triton target: `-O key=value`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    # linear + neuron in one kernel (weight tile on chip across T). auto: when the weight slice fits
    # (K <= 128) and the run is on CUDA. Off by default until measured faster on a GPU.
    fused_linear: Literal["on", "off", "auto"] = "off"
    cuda_graphs: bool = True  # capture/replay small-batch runs on CUDA
    graph_max_batch: int = Field(default=32, ge=0)  # largest batch that is captured
    graph_cache: int = Field(default=2, ge=0)  # captured graphs kept (least recently used dropped)
