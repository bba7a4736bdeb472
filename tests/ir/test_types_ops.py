import pytest
import torch
from pydantic import ValidationError

from snnc.ir import DType, Layout, TensorType, ops
from snnc.ir.ops import OP_ADAPTER, REGISTRY


def test_layout_features_and_casts():
    t = TensorType(shape=("N", 3, 8, 8))
    assert t.features == (3, 8, 8) and t.batch == "N" and t.time is None
    tnx = t.with_layout(Layout.TNX)
    assert tnx.shape == ("T", "N", 3, 8, 8) and tnx.features == (3, 8, 8)
    nxt = tnx.with_layout(Layout.NXT)
    assert nxt.shape == ("N", 3, 8, 8, "T") and nxt.time == "T"
    tn = tnx.with_layout(Layout.TN)
    assert tn.shape == ("T*N", 3, 8, 8) and tn.time == "T" and tn.batch == "N"
    assert tn.with_layout(Layout.TNX) == tnx
    assert str(tnx.with_dtype(DType.SPIKE)) == "spike[T,N,3,8,8] TNX"


def test_tensor_type_rejects_symbolic_feature_dims():
    with pytest.raises(ValidationError):
        TensorType(shape=("N", "C", 8))


def test_every_op_round_trips_through_json():
    samples = [
        ops.Input(name="x", type=TensorType(shape=("N", 1, 8, 8))),
        ops.Conv2d(name="c", inputs=("x",), weight="w", bias="b", stride=(2, 2), padding=(1, 1)),
        ops.LIF(name="l", inputs=("c",), tau=4.0, reset=ops.SoftReset(), fire="gt", decay_input=False),
        ops.IF(name="i", inputs=("c",), reset=ops.HardReset(v_reset=-0.5), v_threshold=0.7),
        ops.Scale(name="s", inputs=("i",), factor=0.25),
        ops.LayoutCast(name="lc", inputs=("s",), to=Layout.NXT),
    ]
    for op in samples:
        back = OP_ADAPTER.validate_json(OP_ADAPTER.dump_json(op))
        assert back == op and hash(back) == hash(op) and type(back) is type(op)


def test_registry_lists_the_foundation_ops():
    need = {"input", "output", "conv2d", "linear", "batch_norm", "relu", "avg_pool2d", "max_pool2d",
            "adaptive_avg_pool2d", "flatten", "add", "concat", "identity", "scale", "if", "lif", "layout_cast"}
    assert need <= set(REGISTRY)


def test_op_attributes_are_validated():
    with pytest.raises(ValidationError, match="tau"):
        ops.LIF(name="l", inputs=("x",), tau=0.5)
    with pytest.raises(ValidationError):
        ops.Scale(name="s", inputs=("x",), factor=float("nan"))
    with pytest.raises(ValidationError):
        ops.ReLU(name="r", inputs=("x",), bogus=1)
    # window geometry: a zero stride or dilation divided by zero in type inference (found by `make fuzz`)
    conv = {"name": "c", "inputs": ("x",), "weight": "w"}
    for bad in ({"stride": (0, 1)}, {"dilation": (1, 0)}, {"padding": (-1, 0)}):
        with pytest.raises(ValidationError):
            ops.Conv2d(**conv, **bad)
    pool = {"name": "p", "inputs": ("x",), "kernel_size": (2, 2), "stride": (2, 2)}
    for kind in (ops.MaxPool2d, ops.AvgPool2d):
        for bad in ({"stride": (2, 0)}, {"kernel_size": (0, 2)}, {"padding": (0, -1)}):
            with pytest.raises(ValidationError):
                kind(**{**pool, **bad})
    with pytest.raises(ValidationError):
        ops.AdaptiveAvgPool2d(name="a", inputs=("x",), output_size=(0, 1))
    assert ops.Conv2d(**conv, stride=(2, 1), padding=(0, 1), dilation=(1, 2)).stride == (2, 1)


def test_neuron_semantics_are_explicit_fields():
    p = ops.LIF(name="l", inputs=("x",), tau=3.0, reset=ops.SoftReset(), fire="gt").to_params()
    assert (p.reset.value, p.compare.value, p.tau, p.decay_input) == ("soft", "gt", 3.0, True)
    hard = ops.IF(name="i", inputs=("x",), reset=ops.HardReset(v_reset=-1.0))
    assert hard.to_params().v_reset == -1.0 and hard.initial_v() == -1.0
    assert ops.IF.state[0].name == "v" and ops.IF.stateful and not ops.Conv2d.stateful


def test_ops_are_immutable():
    op = ops.ReLU(name="r", inputs=("x",))
    with pytest.raises(ValidationError):
        op.name = "q"
    assert op.replace(name="q").name == "q" and op.name == "r"


def test_fixed_batch_survives_folding_and_unfolding():
    t = TensorType(shape=("T", 3, 4), layout=Layout.TNX)
    tn = t.with_layout(Layout.TN)
    assert tn.shape == ("T*3", 4) and tn.batch == 3 and tn.with_layout(Layout.TNX) == t
