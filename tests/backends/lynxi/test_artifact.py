"""What the artifact folder holds, checked with the chip's rules: <= 4-D, static shapes, valid ONNX."""

from __future__ import annotations

import json

import onnx
import pytest
import torch

from snnc.ir.formats.artifact import Artifact
from snnc.ir import NeuronOp
from snnc.runtime import Session
from tests.backends.lynxi.conftest import T, onnx_value_types


@pytest.mark.parametrize("net,variant,dtype", [("digits", "raw", "f32"), ("resnet", "lynxi", "f16")])
def test_every_onnx_value_is_static_and_at_most_4d(compiled, net, variant, dtype):
    art = compiled.artifact(net, variant, dtype)
    model = onnx.load(str(art.path / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    values = onnx_value_types(model)
    produced = [o for n in model.graph.node for o in n.output]
    assert len(produced) > 20 and set(produced) <= set(values)
    untyped = [k for k, d in values.items() if d is None]
    assert not untyped, f"shape inference left {untyped[:5]} untyped"
    too_big = {k: d for k, d in values.items() if len(d) > 4}
    dynamic = {k: d for k, d in values.items() if not all(isinstance(x, int) and x > 0 for x in d)}
    assert not too_big and not dynamic, (too_big, dynamic)
    # the 4-D activations really are [T*N, C, H, W]: time folded into the batch
    first_conv_channels = {"digits": 16, "resnet": 8}[net]
    assert [T * compiled.x.shape[0], first_conv_channels, 8, 8] in values.values()
    # every interface tensor has the dtype the manifest gives it
    elem = {"float32": onnx.TensorProto.FLOAT, "float16": onnx.TensorProto.FLOAT16}
    specs = {s["name"]: s["dtype"] for s in [*art.manifest["interface"]["inputs"],
                                             *art.manifest["interface"]["outputs"]]}
    assert {v.name: v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]} == \
        {k: elem[d] for k, d in specs.items()}
    # which convolutions/linears compute in float16: those between two neurons (the spiking core)
    weights = {t.name: t.data_type for t in model.graph.initializer}
    macs = [weights[n.input[1]] for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    if dtype == "f32":
        assert set(macs) == {onnx.TensorProto.FLOAT} and set(specs.values()) == {"float32"}
    else:  # resnet: stem conv (reads the input) and fc (the readout) in float32, 3 convs on spikes in float16
        assert sorted(macs) == sorted([onnx.TensorProto.FLOAT] * 2 + [onnx.TensorProto.FLOAT16] * 3), macs
        assert specs["x"] == specs["out"] == "float32"
        assert {d for k, d in specs.items() if k.startswith("spk_")} == {"float16"}


def test_exported_program_is_flat_static_and_functional(compiled):
    art = compiled.artifact("resnet", "raw", "f32")
    ep = torch.export.load(art.path / "model.pt2")
    assert not ep.graph_signature.buffers_to_mutate and not ep.graph_signature.user_inputs_to_mutate
    n_ops = 0
    for node in ep.graph.nodes:
        if node.op != "call_function":
            continue
        n_ops += 1
        schema = getattr(node.target, "_schema", None)
        assert schema is None or not schema.is_mutable, f"in-place op {node.target}"
        val = node.meta.get("val")
        if isinstance(val, torch.Tensor):
            assert val.dim() <= 4 and all(isinstance(d, int) for d in val.shape), (node.name, val.shape)
    assert n_ops > 50  # the neurons are unrolled over T


def test_manifest_describes_both_files(compiled):
    art = compiled.artifact("digits", "raw", "f32")
    m = json.loads((art.path / "manifest.json").read_text())
    assert m["target"] == "lynxi" and m["time_steps"] == T and m["batch_size"] == compiled.x.shape[0]
    assert m["dtype"] == "float32" and m["layout"] == "TN" and m["state_io"] is False
    model = onnx.load(str(art.path / m["files"]["onnx"]))
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in [*model.graph.input, *model.graph.output]}
    iface = m["interface"]
    assert [s["name"] for s in iface["inputs"]] == [v.name for v in model.graph.input] == ["x"]
    assert [s["name"] for s in iface["outputs"]] == [v.name for v in model.graph.output]
    for spec in iface["inputs"] + iface["outputs"]:
        assert spec["shape"] == dims[spec["name"]]
    assert iface["outputs"][0]["shape"] == [T * compiled.x.shape[0], 10]
    # one membrane potential per neuron, documented even without state inputs
    neurons = [op for op in compiled.graph("digits", "raw") if isinstance(op, NeuronOp)]
    assert [s["node"] for s in m["state"]] == [op.name for op in neurons] and len(neurons) == 2
    assert m["state"][0]["shape"] == [compiled.x.shape[0], 16, 8, 8] and m["state"][0]["input"] is None
    assert m["state"][0]["init"] == neurons[0].initial_v()
    # the folder is a normal snnc artifact: the reference runtime opens its graph
    assert Artifact.open(art.path).target == "lynxi"
    assert Session(art.path).run(compiled.x[:2], 2)["out"].shape == (2, 2, 10)
