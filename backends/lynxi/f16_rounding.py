"""Spell out the rounding of float16 arithmetic in the ONNX file, so that no runtime can skip it.

onnxruntime's CPU provider has no float16 kernels for Add/Sub/Mul/Div. It
runs such nodes in float32 and inserts Casts only where the float16 region
meets a node that takes float16, so a chain of them (a neuron unrolled over
T steps) never rounds to float16 in between: the membrane potential is a
float32 value for the whole run, rounded only where it leaves the graph. A
run of T steps and two streamed chunks of T/2 then differ, because the
chunk boundary rounds the state and the single run does not.

`spell_float16_rounding` rewrites each float16 Add/Sub/Mul/Div as
Cast(float32) -> the op in float32 -> Cast(float16). The values are the same:
the inputs are float16 numbers, and for +, -, *, / rounding the exact result
to float32 (24-bit significand) and then to float16 (11-bit) equals rounding
it to float16 directly, as 24 >= 2*11 + 2. That is also how torch computes
float16 ops on the CPU. onnxruntime keeps explicit narrowing Casts, so it
rounds after every op, as the ONNX float16 semantics and the torch.export
program do.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

ROUNDED_OPS = ("Add", "Sub", "Mul", "Div")


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    g = onnx.shape_inference.infer_shapes(model).graph
    types = {vi.name: vi.type.tensor_type.elem_type for vi in [*g.input, *g.value_info, *g.output]}
    types.update({init.name: init.data_type for init in g.initializer})
    return types


def spell_float16_rounding(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with every float16 Add/Sub/Mul/Div computed in float32 between explicit Casts (in place)."""
    types = _elem_types(model)
    widened: dict[str, str] = {}  # float16 value -> its float32 Cast, one per value
    nodes: list[onnx.NodeProto] = []

    def wide(name: str) -> str:
        if name not in widened:
            widened[name] = f"{name}__f32"
            nodes.append(helper.make_node("Cast", [name], [widened[name]], name=f"{name}__to_f32",
                                          to=TensorProto.FLOAT))
        return widened[name]

    for node in model.graph.node:
        if node.op_type not in ROUNDED_OPS or types.get(node.output[0]) != TensorProto.FLOAT16:
            nodes.append(node)
            continue
        out = node.output[0]
        op = onnx.NodeProto()
        op.CopyFrom(node)
        op.input[:] = [wide(i) for i in node.input]
        op.output[:] = [f"{out}__f32_op"]
        nodes.append(op)
        nodes.append(helper.make_node("Cast", [op.output[0]], [out], name=f"{out}__round_f16",
                                      to=TensorProto.FLOAT16))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model
