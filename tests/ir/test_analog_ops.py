"""The hybrid conversion's ops (ir/ops/analog.py): Activation and RateDecode, their kernels, types and .snnir."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from snnc.frontends import trace
from snnc.ir import load, ops, save
from snnc.ir.graph import Graph
from snnc.ir.printer import print_graph
from snnc.ir.types import Layout, TensorType
from snnc.ir.verify import verify
from snnc.core.errors import VerifyError
from snnc.runtime import Session

# each activation's torch module, and what fx lowers it to
MODULES = [(nn.SiLU(), "silu"), (nn.Sigmoid(), "sigmoid"), (nn.Hardswish(), "hardswish"),
           (nn.Hardsigmoid(), "hardsigmoid"), (nn.GELU(), "gelu"), (nn.GELU(approximate="tanh"), "gelu_tanh"),
           (nn.Tanh(), "tanh")]


@pytest.mark.parametrize("module,fn", MODULES, ids=[f for _, f in MODULES])
def test_activation_traces_and_runs_as_torch(module, fn):
    model = nn.Sequential(nn.Linear(6, 5), module).eval()
    g = trace(model, (6,))
    (act,) = [op for op in g if isinstance(op, ops.Activation)]
    assert act.fn.value == fn and act.loc.module_path == "1"
    x = torch.linspace(-5, 5, 60).reshape(10, 6)
    torch.testing.assert_close(Session(g).run(x), model(x), rtol=0, atol=0)


def test_functional_forms_trace_to_the_same_ops():
    class Functional(nn.Module):
        def forward(self, x):
            return (F.silu(x) + torch.sigmoid(x) + x.sigmoid() + F.hardswish(x) + F.hardsigmoid(x)
                    + F.gelu(x, approximate="tanh") + torch.tanh(x))

    g = trace(Functional(), (4,))
    assert [op.fn.value for op in g if isinstance(op, ops.Activation)] == \
        ["silu", "sigmoid", "sigmoid", "hardswish", "hardsigmoid", "gelu_tanh", "tanh"]
    x = torch.randn(3, 4)
    torch.testing.assert_close(Session(g).run(x), Functional()(x))


def _decode_graph() -> Graph:
    g = Graph("decode")
    g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", 3), layout=Layout.TNX)))
    g.add(ops.RateDecode(name="d", inputs=("x",)))
    g.add(ops.Activation(name="s", inputs=("d",), fn=ops.ActivationFn.SIGMOID))
    g.add(ops.Output(name="out", inputs=("s",)))
    return verify(g)


def test_rate_decode_is_the_running_mean_in_any_split_of_time():
    """y[t] = (x[0] + ... + x[t]) / (t + 1), written out by hand; run, chunked run and step() agree bit for bit."""
    x = (torch.rand(7, 2, 3) < 0.4).float() * 0.75
    ref = torch.stack([x[:t + 1].sum(0) / (t + 1) for t in range(7)])
    s = Session(_decode_graph())
    out = s.run(x)
    torch.testing.assert_close(out, torch.sigmoid(ref), rtol=1e-6, atol=1e-7)
    assert torch.equal(s.run(x, chunk=3), out)
    s.reset()
    steps = torch.stack([s.step(x[t]) for t in range(7)])
    assert torch.equal(steps, out)


def test_rate_decode_needs_time():
    g = Graph("nx")
    g.add(ops.Input(name="x", type=TensorType(shape=("N", 3), layout=Layout.NX)))
    g.add(ops.RateDecode(name="d", inputs=("x",)))
    g.add(ops.Output(name="out", inputs=("d",)))
    with pytest.raises(VerifyError, match="rate_decode averages over time"):
        verify(g)


def test_print_and_snnir_round_trip(tmp_path):
    g = _decode_graph()
    text = print_graph(g)
    assert "rate_decode(%x)" in text and "activation(%d) {fn=sigmoid}" in text
    save(g, tmp_path / "d.snnir")
    back = load(tmp_path / "d.snnir")
    assert [back[op.name] == op for op in g] == [True] * 4 and print_graph(back) == text
    with pytest.raises(ValueError):
        ops.Activation(name="a", inputs=("x",), fn="swish")
