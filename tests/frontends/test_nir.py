"""NIR in and out: graphs made with `nir` import and run; IR -> NIR -> IR keeps the outputs identical."""

from __future__ import annotations

import warnings

import nir
import numpy as np
import pytest
import torch
import torch.nn as nn

import snnc
from snnc.core.errors import LoweringError, UnsupportedAttributeError, UnsupportedOpError
from snnc.frontends import load, trace
from snnc.frontends.nir import from_nir
from snnc.ir import ops
from snnc.runtime import Session
from tests.frontends.models import boost, canonical, same_params
from tests.nets import dyadic_, dyadic_inputs, round_bits

DT = 1e-3


def _dyadic(a: np.ndarray, bits: int = 5) -> np.ndarray:
    """a as float32 rounded to `bits` significant bits (multiples of one power of two): exact in sums."""
    return round_bits(torch.from_numpy(np.asarray(a, np.float32)), bits).numpy()


def euler_reference(x: np.ndarray, w1, b1, lif: dict, w2, if_r: float, if_thr: float) -> np.ndarray:
    """NIR's equations, integrated with forward Euler by hand (float32): Affine -> LIF -> Linear -> IF."""
    T, N, _ = x.shape
    v1 = np.zeros((N, w1.shape[0]), np.float32)
    v2 = np.zeros((N, w2.shape[0]), np.float32)
    out = np.zeros((T, N, w2.shape[0]), np.float32)
    for t in range(T):
        i1 = x[t] @ w1.T + b1
        v1 = v1 + np.float32(DT / lif["tau"]) * (lif["v_leak"] - v1 + lif["r"] * i1)
        s1 = (v1 > lif["v_threshold"]).astype(np.float32)
        v1 = np.where(s1 > 0, np.float32(lif["v_reset"]), v1)
        v2 = v2 + np.float32(DT * if_r) * (s1 @ w2.T)
        out[t] = (v2 > if_thr).astype(np.float32)
        v2 = np.where(out[t] > 0, np.float32(0.0), v2)
    return out


def test_graph_made_with_nir_imports_and_runs_like_its_equations():
    rng = np.random.default_rng(0)
    # dyadic weights and inputs (tests/nets.py): numpy's matmul and torch's then give the same, exact sums
    w1, b1 = _dyadic(rng.normal(0, 1.0, (6, 3))), _dyadic(rng.normal(0.5, 0.2, 6))
    w2 = _dyadic(rng.normal(0.3, 0.5, (2, 6)))
    lif = {"tau": 5 * DT, "r": 1.0, "v_leak": 0.0, "v_threshold": 1.0, "v_reset": 0.0}
    full = {k: np.full(6, v, np.float32) for k, v in lif.items()}
    graph = nir.NIRGraph(
        nodes={"in": nir.Input(input_type={"input": np.array([3])}),
               "fc1": nir.Affine(weight=w1, bias=b1),
               "lif": nir.LIF(**full),
               "fc2": nir.Linear(weight=w2),
               "if": nir.IF(r=np.full(2, 2.0 / DT, np.float32), v_threshold=np.full(2, 1.0, np.float32),
                            v_reset=np.zeros(2, np.float32)),
               "out": nir.Output(output_type={"output": np.array([2])})},
        edges=[("in", "fc1"), ("fc1", "lif"), ("lif", "fc2"), ("fc2", "if"), ("if", "out")])
    g = from_nir(graph, dt=DT)
    by_kind = {op.kind: op for op in g}
    assert by_kind["lif"].tau == 5.0 and by_kind["lif"].fire.value == "gt" and by_kind["lif"].decay_input
    assert by_kind["scale"].factor == 2.0  # the IF's r * dt, made an explicit op
    x = _dyadic(rng.uniform(0, 2, (20, 4, 3)), 6)
    out = Session(g).run(torch.from_numpy(x)).numpy()
    ref = euler_reference(x, w1, b1, lif, w2, 2.0 / DT, 1.0)
    assert 0 < ref.mean() < 1
    np.testing.assert_array_equal(out, ref)


def test_convolutional_nir_graph_with_sum_pool_and_flatten():
    rng = np.random.default_rng(1)
    conv_w = _dyadic(rng.normal(0, 1, (2, 1, 3, 3)))  # and dyadic inputs: exact convolutions in any order
    graph = nir.NIRGraph(
        nodes={"x": nir.Input(input_type={"input": np.array([1, 6, 6])}),
               "conv": nir.Conv2d(input_shape=(6, 6), weight=conv_w, stride=1, padding=1, dilation=1, groups=1,
                                  bias=np.full(2, 0.5, np.float32)),
               "sn": nir.IF(r=np.full((2, 6, 6), 1 / DT, np.float32), v_threshold=np.ones((2, 6, 6), np.float32),
                            v_reset=np.zeros((2, 6, 6), np.float32)),
               "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
               "flat": nir.Flatten(input_type={"input": np.array([2, 3, 3])}, start_dim=0, end_dim=-1),
               "y": nir.Output(output_type={"output": np.array([18])})},
        edges=[("x", "conv"), ("conv", "sn"), ("sn", "pool"), ("pool", "flat"), ("flat", "y")])
    g = from_nir(graph, dt=DT)
    x = torch.from_numpy(_dyadic(rng.uniform(0, 1, (5, 2, 1, 6, 6)), 5))
    out = Session(g).run(x)
    # by hand: IF over the conv output, then sum over 2x2 windows
    cur = torch.nn.functional.conv2d(x.flatten(0, 1), torch.from_numpy(conv_w), torch.full((2,), 0.5), padding=1)
    cur = cur.unflatten(0, (5, 2))
    v, spikes = torch.zeros_like(cur[0]), []
    for t in range(5):
        v = v + cur[t]
        s = (v > 1.0).float()
        v = v * (1 - s)
        spikes.append(s)
    ref = torch.nn.functional.avg_pool2d(torch.stack(spikes).flatten(0, 1), 2, divisor_override=1).flatten(1)
    assert ref.sum() > 0 and torch.equal(out, ref.unflatten(0, (5, 2)))


def snn_for_round_trip():
    from snnc.nn import functional, layer, neuron

    net = nn.Sequential(
        layer.Conv2d(1, 4, 3, padding=1), neuron.IFNode(v_reset=-0.1),
        layer.AvgPool2d(2), layer.Conv2d(4, 8, 3, padding=1, bias=False), neuron.LIFNode(tau=2.0),
        layer.AvgPool2d(2, divisor_override=1), layer.Flatten(), layer.Linear(32, 10),
        neuron.LIFNode(tau=3.0, decay_input=False), layer.Linear(10, 4, bias=False), neuron.IFNode(v_threshold=0.5))
    functional.set_step_mode(net, "m")
    boost(net, 3.0, 0.3)
    with torch.no_grad():  # keep every layer spiking: the comparison then means something
        net[3].weight.abs_()
        net[9].weight.abs_()
    return net


@pytest.mark.parametrize("use_metadata", [True, False])
def test_round_trip_ir_nir_ir_keeps_outputs_identical(tmp_path, use_metadata):
    g = trace(snn_for_round_trip(), (1, 8, 8))
    art = snnc.compile(g, target="nir", output=tmp_path / "nir")
    assert nir.read(art.path / "model.nir") is not None  # other tools read it with nir itself
    g2 = load(art.path / "model.nir", use_metadata=use_metadata)
    x = torch.rand(10, 3, 1, 8, 8) * 2
    keep = {op.name for op in g if isinstance(op, ops.NeuronOp)}
    from snnc.runtime import Interpreter

    a = Interpreter(g).run({g.inputs[0].name: x}, keep=keep)
    b = Interpreter(g2).run({g2.inputs[0].name: x}, keep=keep)
    for name in keep:  # node names survive the round trip
        assert 0 < float(a[name].mean()) < 1, name
        assert torch.equal(a[name], b[name]), name
    if use_metadata:
        assert canonical(g2) == canonical(g) and same_params(g, g2)
    else:  # NIR's own terms: fire on '>' a float32 step below the threshold, which is the same in float32
        assert all(op.fire.value == "gt" for op in g2 if isinstance(op, ops.NeuronOp))


def test_soft_reset_is_refused_or_converted_explicitly(tmp_path):
    from snnc.nn import neuron

    g = trace(nn.Sequential(nn.Linear(4, 4), neuron.IFNode(v_reset=None, step_mode="m")), (4,))
    with pytest.raises(LoweringError, match=r"(?s)%_1 \(if\).*soft reset.*as_hard"):
        snnc.compile(g, target="nir", output=tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    with pytest.warns(UserWarning, match="reset by subtraction"):
        art = snnc.compile(g, target="nir", output=tmp_path / "ok", soft_reset="as_hard")
    exact = load(art.path / "model.nir")
    plain = load(art.path / "model.nir", use_metadata=False)
    assert isinstance(next(op for op in exact if op.kind == "if").reset, ops.SoftReset)
    assert isinstance(next(op for op in plain if op.kind == "if").reset, ops.HardReset)
    x = torch.full((20, 1, 4), 0.9)
    torch.testing.assert_close(Session(exact).run(x), Session(g).run(x), rtol=0, atol=0)


def test_threshold_keep_option_warns_and_converted_ann_exports(tmp_path):
    from snnc.nn import neuron

    g = trace(nn.Sequential(nn.Linear(3, 3), neuron.IFNode(step_mode="m")), (3,))
    with pytest.warns(UserWarning, match="will not fire at equality"):
        art = snnc.compile(g, target="nir", output=tmp_path / "keep", ge_threshold="keep")
    node = nir.read(art.path / "model.nir").nodes["_1"]
    assert float(node.v_threshold[0]) == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        art = snnc.compile(g, target="nir", output=tmp_path / "next")
    assert float(nir.read(art.path / "model.nir").nodes["_1"].v_threshold[0]) == float(np.nextafter(
        np.float32(1), np.float32(0)))


def test_unsupported_ops_are_listed_at_once(tmp_path):
    g = trace(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(2)), (1, 6, 6))
    with pytest.raises(LoweringError) as e:
        snnc.compile(g, target="nir", output=tmp_path / "x", passes="")  # fuse-bn would fold the BatchNorm
    msg = str(e.value)
    assert "batch_norm" in msg and "fuse-bn" in msg and "relu" in msg and "max_pool2d" in msg


def test_nir_import_errors_name_the_node():
    def graph(neuron, n=3):
        return nir.NIRGraph(nodes={"i": nir.Input(input_type={"input": np.array([n])}), "n": neuron,
                                   "o": nir.Output(output_type={"output": np.array([n])})},
                            edges=[("i", "n"), ("n", "o")])

    # (CubaLIF and per-neuron thresholds, refused here before, are read now: tests/frontends/test_nir_coverage.py)
    conv1d = nir.Conv1d(input_shape=None, weight=np.ones((3, 3, 1)), stride=1, padding=0, dilation=1, groups=1,
                        bias=np.zeros(3))
    one_d = nir.NIRGraph(nodes={"i": nir.Input(input_type={"input": np.array([3, 4])}), "n": conv1d,
                                "o": nir.Output(output_type={"output": np.array([3, 4])})},
                         edges=[("i", "n"), ("n", "o")], type_check=False)
    with pytest.raises(UnsupportedOpError, match=r"(?s)'n' \(Conv1d\).*supported NIR nodes"):
        from_nir(one_d, dt=DT)
    slow = nir.LIF(tau=np.full(3, 1e-4), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3))
    with pytest.raises(UnsupportedAttributeError, match="choose a smaller dt"):
        from_nir(graph(slow), dt=DT)
    with pytest.warns(UserWarning, match="carry no time step"):
        from_nir(graph(nir.IF(r=np.full(3, 1e4), v_threshold=np.ones(3), v_reset=np.zeros(3))))
    rec = nir.NIRGraph(nodes={"i": nir.Input(input_type={"input": np.array([2])}),
                              "a": nir.Affine(weight=np.eye(2), bias=np.zeros(2)),
                              "b": nir.Affine(weight=np.eye(2), bias=np.zeros(2)),
                              "o": nir.Output(output_type={"output": np.array([2])})},
                       edges=[("i", "a"), ("a", "b"), ("b", "a"), ("b", "o")], type_check=False)
    # a cycle used to be refused as "recurrent"; issue 17 reads it, the edge that closes it one step late
    assert [op.kind for op in from_nir(rec, dt=DT) if op.back_edge] == ["recur"]


def test_cli_compiles_to_nir(tmp_path):
    from typer.testing import CliRunner

    from snnc.cli import app
    from snnc.ir import save

    save(trace(snn_for_round_trip(), (1, 8, 8)), tmp_path / "snn.snnir")
    res = CliRunner().invoke(app, ["compile", str(tmp_path / "snn.snnir"), "--target", "nir", "-o",
                                   str(tmp_path / "out"), "-T", "8"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "model.nir").is_file() and snnc.load(tmp_path / "out").artifact.target == "nir"


@pytest.mark.spikingjelly
def test_nir_exported_by_spikingjelly_imports_and_runs(tmp_path):
    pytest.importorskip("nirtorch")
    pytest.importorskip("spikingjelly.activation_based.nir_exchange")
    from spikingjelly.activation_based import functional, layer, neuron
    from spikingjelly.activation_based.nir_exchange import export_to_nir

    net = nn.Sequential(layer.Conv2d(1, 4, 3, padding=1), neuron.IFNode(), layer.AvgPool2d(2), layer.Flatten(),
                        layer.Linear(64, 10), neuron.LIFNode(tau=2.0))
    functional.set_step_mode(net, "m")
    dyadic_(boost(net, 4.0, 0.2))  # and dyadic inputs: SpikingJelly's convolution and ours give exact sums
    x = dyadic_inputs((8, 2, 1, 8, 8))
    export_to_nir(net, x, tmp_path / "sj.nir")
    g = load(tmp_path / "sj.nir", dt=1e-4, fire="ge")  # SpikingJelly's dt, and it fires at equality
    functional.reset_net(net)
    with torch.no_grad():
        ref = net(x)
    assert 0 < ref.mean() < 1 and torch.equal(Session(g).run(x), ref)


def test_add_becomes_summed_edges_and_comes_back(tmp_path):
    from snnc.nn import neuron

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(4, 6), nn.Linear(6, 6), nn.Linear(6, 6, bias=False)
            self.sn1, self.sn2 = neuron.IFNode(step_mode="m"), neuron.LIFNode(tau=2.0, step_mode="m")

        def forward(self, x):
            s = self.sn1(self.fc1(x))
            return self.sn2(self.fc2(s) + self.fc3(s))

    net = boost(Residual(), 2.0, 0.5)
    g = trace(net, (4,))
    art = snnc.compile(g, target="nir", output=tmp_path / "res")
    ng = nir.read(art.path / "model.nir")
    assert "add" not in {type(n).__name__.lower() for n in ng.nodes.values()}
    assert sorted(src for src, dst in ng.edges if dst == "sn2") == ["fc2", "fc3"]
    g2 = load(art.path / "model.nir")
    assert [op.kind for op in g2].count("add") == 1
    x = torch.rand(12, 3, 4)
    out = Session(g).run(x)
    assert 0 < float(out.mean()) < 1 and torch.equal(Session(g2).run(x), out)
