"""All IR ops. `Op` is the discriminated union of every registered op class."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field, TypeAdapter

from snnc.ir.ops.analog import Activation, ActivationFn, RateDecode
from snnc.ir.ops.base import REGISTRY, OpBase, ParamInfo, SourceLoc, StateSpec, TypeInferenceError
from snnc.ir.ops.elementwise import Add, Concat, Flatten, Identity, ReLU, Scale, Threshold
from snnc.ir.ops.io import Input, Output
from snnc.ir.ops.layout import LayoutCast
from snnc.ir.ops.loihi import CubaLIF, LoihiInfo, LoihiLayerReport
from snnc.ir.ops.linear import BatchNorm, Conv1d, Conv2d, LayerNorm, Linear
from snnc.ir.ops.neuron import (IF, LI, LIF, RESETS, HardReset, Integrator, NeuronOp, NoReset, SignedIF, SoftReset,
                                 is_neuron, reset_of)
from snnc.ir.ops.pool import AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, MaxPool2d, RunningMaxPool2d
from snnc.ir.ops.sigma_delta import SigmaDelta
from snnc.ir.ops.temporal import Delay, Recur, TimeMean
from snnc.ir.ops.tensor import AddConst, AddScalar, Clamp, Constant, MatMul, Mean, Mul, Permute, Reshape, Slice, Softmax, Sub, Sum

Op = Annotated[Union[tuple(REGISTRY.values())], Field(discriminator="kind")]
OP_ADAPTER: TypeAdapter = TypeAdapter(Op)

__all__ = [
    "REGISTRY", "Op", "OP_ADAPTER", "OpBase", "ParamInfo", "SourceLoc", "StateSpec", "TypeInferenceError",
    "Input", "Output", "Conv2d", "Linear", "BatchNorm", "ReLU", "AvgPool2d", "MaxPool2d", "RunningMaxPool2d",
    "AdaptiveAvgPool2d", "Flatten", "Add", "Concat", "Identity", "Scale", "Threshold", "IF", "LIF", "LI", "Integrator", "NeuronOp", "SignedIF", "is_neuron",
    "HardReset", "SoftReset", "NoReset", "LayoutCast", "CubaLIF", "LoihiInfo", "LoihiLayerReport",
    "SigmaDelta",
    "Delay", "Recur", "TimeMean",
    "Conv1d", "LayerNorm", "AvgPool1d", "Reshape", "Permute", "Mean", "Mul", "Sub", "AddScalar", "MatMul",
    "Clamp", "Softmax", "Activation", "ActivationFn", "RateDecode", "Slice", "Sum", "AddConst", "Constant",
]
