"""Streaming: with explicit membrane-potential inputs/outputs, T steps run as two chunks of T/2
give the spikes of one run of T (and the reference's final potentials)."""

from __future__ import annotations

import pytest
import torch

import snnc
from snnc.backends.lynxi import Runner
from snnc.core.errors import InputError
from snnc.ir import NeuronOp
from snnc.runtime import Session
from tests.backends.lynxi.conftest import T


@pytest.fixture(scope="module")
def chunked(compiled, tmp_path_factory):
    """The digits SNN lowered for T/2 steps with state inputs and outputs."""
    g = compiled.graph("digits", "raw")
    return snnc.compile(g, "lynxi", tmp_path_factory.mktemp("stream") / "digits", time_steps=T // 2,
                        batch_size=compiled.x.shape[0], state_io=True)


def test_manifest_names_the_state_tensors(chunked, compiled):
    m = chunked.manifest
    n = compiled.x.shape[0]
    assert m["state_io"] is True and m["time_steps"] == T // 2
    ins = [s["name"] for s in m["interface"]["inputs"]]
    outs = [s["name"] for s in m["interface"]["outputs"]]
    for st in m["state"]:
        assert st["input"] in ins and st["output"] in outs and st["shape"][0] == n
    assert ins[0] == "x" and len(ins) == 1 + len(m["state"])


@pytest.mark.parametrize("engine", ["onnx", "torch"])
def test_two_chunks_equal_one_run_of_T(chunked, compiled, engine):
    g, x = compiled.graph("digits", "raw"), compiled.x
    session = Session(g)  # every value is exact (conftest.py): any kernel and summation order gives these bits
    ref = session.run(x, T)
    r = Runner(chunked, engine)
    first, second = r.run(x), r.run(x)
    for k in (k for k in ref if k.startswith("spk_")):
        got = torch.cat([first[k], second[k]]).reshape(ref[k].shape)
        assert torch.equal(got, ref[k]), f"{k}: {int((got != ref[k]).sum())} spikes differ"
    # the second chunk really continued from the first: without the state it would differ
    fresh = Runner(chunked, engine).run(x)
    assert any(not torch.equal(fresh[k], second[k]) for k in first if k.startswith("spk_"))
    for node, v in session.state.items():
        assert torch.equal(r.state[node], v), node
    r.reset()
    again = r.run(x)
    assert all(torch.equal(again[k], first[k]) for k in first)


def test_runner_values_are_every_value_of_the_run_and_leave_the_state(chunked, compiled):
    """Runner.values: each neuron's spikes ([T*N, *], the reference's, second chunk included), the outputs
    of `run`, the final states; the state is not carried forward."""
    g, x, n = chunked.graph(), compiled.x, compiled.x.shape[0]
    neurons = [op.name for op in g if isinstance(op, NeuronOp)]
    ref = Session(g).observe(x, T, probes=neurons).probes  # exact network (conftest.py): the reference's bits
    r = Runner(chunked, "torch")
    start = {k: v.clone() for k, v in r.state.items()}
    for chunk in range(2):
        values = r.values(x)
        assert all(torch.equal(r.state[k], v) for k, v in start.items())  # values() carried nothing forward
        out = r.run(x)
        assert out and all(torch.equal(values[k], v) for k, v in out.items())
        assert all(torch.equal(values[st["output"]], r.state[st["node"]]) for st in chunked.manifest["state"])
        for name in neurons:
            want = ref[name][chunk * T // 2:(chunk + 1) * T // 2]
            assert torch.equal(values[name].reshape(want.shape), want), name
        start = {k: v.clone() for k, v in r.state.items()}


def test_runner_refuses_a_wrong_static_shape(chunked, compiled):
    r = Runner(chunked, "onnx")
    with pytest.raises(InputError, match="static shape"):
        r.run(compiled.x[:3])


@pytest.fixture(scope="module")
def rounding_charge(compiled):
    """The digits SNN with each neuron's input scale times 0.9: its convolutions stay exact (any summation order
    gives the same bits), but the charge, an elementwise product in the state dtype, now rounds in float16."""
    g = compiled.graph("digits", "raw").copy()
    for op in list(g):
        if op.kind == "scale" and op.name.endswith("_in"):  # Scale(1/lambda) -> IF, from the conversion
            g.replace_op(op.model_copy(update={"factor": op.factor * 0.9}))
    return g


# float16 state through onnxruntime used to differ from one run in 8 of the second layer's 262144 spikes: its CPU
# provider ran the unrolled float16 neuron in float32 without rounding between steps, so only a chunk boundary
# rounded the state. The ONNX file now spells every float16 rounding out (f16_rounding.py).
@pytest.mark.parametrize("state_dtype,engine,ort_optimization", [
    ("float32", "onnx", True), ("float16", "onnx", True), ("float16", "onnx", False), ("float16", "torch", True)])
def test_float16_streams_its_state_in_the_state_dtype(compiled, rounding_charge, tmp_path, state_dtype, engine,
                                                      ort_optimization):
    """A float16 network streams membrane potentials of `state_dtype`: the manifest, the ONNX inputs and
    outputs and the Runner agree on it, and two chunks of T/2 equal one run of T of the same artifact style."""
    import onnx

    g, x = rounding_charge, compiled.x[:64]
    opts = dict(batch_size=x.shape[0], dtype="f16", state_dtype=state_dtype)
    run = dict(ort_optimization=ort_optimization) if engine == "onnx" else {}
    whole = Runner(snnc.compile(g, "lynxi", tmp_path / "whole", time_steps=T, **opts), engine, **run).run(x)
    if state_dtype == "float16" and engine == "onnx" and ort_optimization:
        # the test can fail: float16 state really rounds this network (only elementwise ops differ, so the
        # count of changed spikes is the same on every CPU)
        f32 = Runner(snnc.compile(g, "lynxi", tmp_path / "f32", time_steps=T, **{**opts, "state_dtype": "f32"}),
                     engine).run(x)
        assert any(not torch.equal(whole[k], f32[k]) for k in whole if k.startswith("spk_"))
    art = snnc.compile(g, "lynxi", tmp_path / "chunks", time_steps=T // 2, state_io=True, **opts)
    elem = {"float32": onnx.TensorProto.FLOAT, "float16": onnx.TensorProto.FLOAT16}[state_dtype]
    model = onnx.load(str(art.path / "model.onnx"))
    types = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}
    for st in art.manifest["state"]:
        assert st["dtype"] == state_dtype and types[st["input"]] == types[st["output"]] == elem
    r = Runner(art, engine, **run)
    first, second = r.run(x), r.run(x)
    assert all(v.dtype == {"float32": torch.float32, "float16": torch.float16}[state_dtype] for v in r.state.values())
    for k in (k for k in whole if k.startswith("spk_")):
        assert whole[k].dtype == torch.float16
        got = torch.cat([first[k], second[k]])
        assert torch.equal(got, whole[k]), f"{k}: {int((got != whole[k]).sum())} spikes differ"


def test_onnx_file_has_no_float16_arithmetic(compiled, tmp_path):
    """Every float16 Add/Sub/Mul/Div is written as Cast -> float32 op -> Cast (onnxruntime would skip the rounding)."""
    import onnx

    g = compiled.graph("digits", "raw")
    art = snnc.compile(g, "lynxi", tmp_path / "f16", time_steps=2, batch_size=4, dtype="f16", state_dtype="f16",
                       analog_dtype="f16", state_io=True)
    model = onnx.shape_inference.infer_shapes(onnx.load(str(art.path / "model.onnx")))
    elem = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.value_info, *model.graph.output]}
    arith = [n for n in model.graph.node if n.op_type in ("Add", "Sub", "Mul", "Div")]
    assert arith and all(elem[n.output[0]] == onnx.TensorProto.FLOAT for n in arith)
    rounds = [n for n in model.graph.node if n.op_type == "Cast" and n.input[0] in {a.output[0] for a in arith}]
    assert len(rounds) == len(arith)
