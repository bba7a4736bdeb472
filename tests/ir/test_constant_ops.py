"""AddConst and Constant (ir/ops/tensor.py): a weight added to a value, a weight broadcast over the batch."""

import pytest
import torch

from snnc.core.errors import VerifyError
from snnc.ir import load, ops, save
from snnc.ir.graph import Graph
from snnc.ir.printer import print_graph
from snnc.ir.types import Layout, TensorType
from snnc.ir.verify import verify
from snnc.runtime import Session


def _graph(layout: Layout = Layout.NX, pos_shape=(5, 3)) -> Graph:
    """ViT's front: a class token [1, 3] in front of 4 tokens, then a position embedding."""
    g = Graph("tokens")
    shape = ("N", 4, 3) if layout is Layout.NX else ("T", "N", 4, 3)
    g.add(ops.Input(name="x", type=TensorType(shape=shape, layout=layout)))
    cls = g.add_param("cls", torch.tensor([[1.0, -2.0, 0.5]]))
    pos = g.add_param("pos", torch.arange(15.0).reshape(pos_shape) / 8)
    g.add(ops.Constant(name="c", inputs=("x",), value=cls))
    g.add(ops.Concat(name="cat", inputs=("c", "x"), dim=0))
    g.add(ops.AddConst(name="p", inputs=("cat",), value=pos))
    g.add(ops.Output(name="out", inputs=("p",)))
    return verify(g)


def test_types_and_values_written_out_by_hand():
    g = _graph()
    assert g.type_of("c").features == (1, 3) and g.type_of("p").features == (5, 3)
    x = torch.randn(2, 4, 3)
    want = torch.cat([torch.tensor([[1.0, -2.0, 0.5]]).expand(2, 1, 3), x], 1) + torch.arange(15.0).reshape(5, 3) / 8
    torch.testing.assert_close(Session(g).run(x), want, rtol=0, atol=0)


def test_the_constant_is_the_same_at_every_step_and_sample():
    """With time, the constant is fed at every step: its mean over steps (its rate) is itself."""
    g = _graph(Layout.TNX)
    x = (torch.rand(6, 2, 4, 3) < 0.5).float()
    out = Session(g).run(x)
    assert out.shape == (6, 2, 5, 3)
    row = torch.tensor([1.0, -2.0, 0.5]) + torch.arange(3.0) / 8
    assert torch.equal(out[:, :, 0], row.expand(6, 2, 3))
    torch.testing.assert_close(out[:, :, 1:].mean(0), x.mean(0) + torch.arange(3.0, 15.0).reshape(4, 3) / 8)


def test_a_broadcast_constant_adds_per_channel():
    with pytest.raises(VerifyError, match=r"a constant of shape \[1, 15\] does not broadcast against the features"):
        _graph(pos_shape=(1, 15))
    h = Graph("per-channel")
    h.add(ops.Input(name="x", type=TensorType(shape=("N", 2, 3), layout=Layout.NX)))
    b = h.add_param("b", torch.tensor([[1.0], [-1.0]]))
    h.add(ops.AddConst(name="y", inputs=("x",), value=b))
    h.add(ops.Output(name="out", inputs=("y",)))
    x = torch.zeros(1, 2, 3)
    assert torch.equal(Session(verify(h)).run(x), torch.tensor([[[1.0] * 3, [-1.0] * 3]]))


def test_print_and_snnir_round_trip(tmp_path):
    g = _graph(Layout.TNX)
    text = print_graph(g)
    assert "constant(%x, @cls)" in text and "add_const(%cat, @pos)" in text
    save(g, tmp_path / "t.snnir")
    back = load(tmp_path / "t.snnir")
    assert [back[op.name] == op for op in g] == [True] * len(g.nodes) and print_graph(back) == text
    x = torch.rand(3, 2, 4, 3)
    assert torch.equal(Session(back).run(x), Session(g).run(x))


@pytest.mark.parametrize("target,named", [("lynxi", "constant"), ("lava", "constant"), ("nir", "(constant)")])
def test_targets_without_the_ops_refuse_them_by_name(target, named, tmp_path):
    import snnc
    from snnc.core.errors import SnncError

    with pytest.raises(SnncError) as info:
        snnc.compile(_graph(Layout.TNX), target, tmp_path / target)
    assert named in str(info.value)


def test_triton_runs_them_as_the_reference(tmp_path):
    """Triton runs ops without a kernel of its own in torch (its interpreter without a GPU, tests/conftest.py)."""
    import snnc
    from snnc.backends.triton import legalize

    g = _graph(Layout.TNX)
    assert legalize(g) is g
    pytest.importorskip("triton")
    x = torch.rand(4, 2, 4, 3)
    s = snnc.load(snnc.compile(g, "triton", tmp_path / "t", time_steps=4))
    torch.testing.assert_close(s.run(x, 4), Session(g).run(x, 4), rtol=0, atol=0)
