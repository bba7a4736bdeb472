"""Options of the Lynxi-style target: the static sizes and the interface of the flattened graph."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from snnc.ir.types import DType

# The ONNX opset written; 17 is what chip toolchains of this style commonly accept.
DEFAULT_OPSET = 17


class Options(BaseModel):
    """Lynxi target options.

    `time_steps` and `batch_size` fix every shape of the lowered graph; both
    are required (the chip has no dynamic shapes). `state_io` adds one input
    and one output per neuron with its membrane potential, so a runtime can
    stream a long sequence chunk by chunk. `input_kind` says whether an input
    with time is given once per sample and repeated over T inside the graph
    ("constant", as the ANN-to-SNN conversion assumes) or as a folded
    sequence [T*N, *] ("sequence"). `readout="mean"` averages the outputs
    with time over T ([N, *]) instead of returning the [T*N, *] sequence.

    `dtype` is the dtype of the spiking core (see `precision.py`);
    `state_dtype` that of the membrane potentials (and of the state inputs
    and outputs), `analog_dtype` that of the analog head and tail (the layers
    before the first and after the last neuron, the graph's inputs and its
    analog outputs). Both default to float32, which keeps float16 networks on
    the float32 reference's argmax; set them to f16 for an all-float16 graph.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    time_steps: int | None = Field(default=None, ge=1)
    batch_size: int | None = Field(default=None, ge=1)
    dtype: DType = DType.F32
    state_dtype: DType = DType.F32
    analog_dtype: DType = DType.F32
    state_io: bool = False
    input_kind: Literal["constant", "sequence"] = "constant"
    readout: Literal["sequence", "mean"] = "sequence"
    opset: int = Field(default=DEFAULT_OPSET, ge=13)

    @field_validator("dtype", "state_dtype", "analog_dtype", mode="before")
    @classmethod
    def _dtype(cls, v):
        aliases = {"float32": DType.F32, "fp32": DType.F32, "float16": DType.F16, "fp16": DType.F16, "half": DType.F16}
        if isinstance(v, torch.dtype):
            v = {torch.float32: DType.F32, torch.float16: DType.F16}.get(v, str(v))
        v = aliases.get(v, v) if isinstance(v, str) else v
        if DType(v) not in (DType.F32, DType.F16):
            raise ValueError(f"the lynxi target computes in float32 or float16, not {DType(v).value}")
        return DType(v)

    @property
    def torch_dtype(self) -> torch.dtype:
        return self.dtype.torch

    @property
    def state_torch_dtype(self) -> torch.dtype:
        return self.state_dtype.torch
