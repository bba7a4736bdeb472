"""Step-mode layouts: assign_layout, cancel_casts, and the layout functions they rely on."""

import pytest
import torch

from snnc.core.errors import PassError
from snnc.ir import Graph, Layout, TensorType, ops, verify
from snnc.passes import assign_layout, cancel_casts, parse_pipeline
from snnc.runtime import Session
from snnc.runtime import layouts as L


def _net() -> Graph:
    """x -> conv -> IF -> avgpool -> flatten -> linear -> out, plus the spikes as a second output."""
    g = Graph("net")
    g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", 2, 4, 4), layout=Layout.TNX)))
    g.params["w"] = torch.randn(3, 2, 3, 3)
    g.params["fc"] = torch.randn(5, 12)
    g.add(ops.Conv2d(name="conv", inputs=("x",), weight="w", padding=(1, 1)))
    g.add(ops.IF(name="if1", inputs=("conv",), v_init=0.5))
    g.add(ops.AvgPool2d(name="pool", inputs=("if1",), kernel_size=(2, 2), stride=(2, 2)))
    g.add(ops.Flatten(name="flat", inputs=("pool",)))
    g.add(ops.Linear(name="fc", inputs=("flat",), weight="fc"))
    g.add(ops.Output(name="out", inputs=("fc",)))
    g.add(ops.Output(name="spikes", inputs=("if1",)))
    return verify(g)


def _casts(g: Graph) -> list:
    return [op for op in g if isinstance(op, ops.LayoutCast)]


@pytest.mark.parametrize("via", [Layout.NXT, Layout.TN])
def test_round_trip_is_identity_and_leaves_no_casts(via):
    g = _net()
    x = torch.randn(5, 3, 2, 4, 4)
    there = verify(assign_layout(g, via))
    assert there.inputs[0].type.layout is via
    assert {there.type_of(op.name).layout for op in there if op.kind not in ("input", "output", "layout_cast")} == {via}
    assert len(_casts(there)) == 2  # one per output, back to the caller's TNX
    back = verify(assign_layout(there, Layout.TNX))
    assert _casts(back) == [] and str(back) == str(g)
    a, b, c = Session(g).run(x), Session(there).run(x), Session(back).run(x)
    for k in a:
        assert torch.equal(a[k], b[k]) and torch.equal(a[k], c[k])


@pytest.mark.parametrize("via", [Layout.NXT, Layout.TN])
def test_inverse_cast_chains_cancel(via):
    g = Graph("c")
    g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", 3), layout=Layout.TNX)))
    g.add(ops.LayoutCast(name="a", inputs=("x",), to=via))
    g.add(ops.LayoutCast(name="b", inputs=("a",), to=Layout.TNX))
    g.add(ops.IF(name="n", inputs=("b",)))
    g.add(ops.LayoutCast(name="c", inputs=("n",), to=Layout.NXT))
    g.add(ops.LayoutCast(name="d", inputs=("c",), to=Layout.TN))
    g.add(ops.Output(name="out", inputs=("d",)))
    h = verify(cancel_casts(g))
    casts = _casts(h)
    assert [(c.inputs, c.to) for c in casts] == [(("n",), Layout.TN)]  # TNX->NXT->TN composes into TNX->TN
    x = torch.randn(4, 2, 3)
    assert torch.equal(Session(g).run(x), Session(h).run(x))


def test_keep_outputs_false_gives_target_layout_outputs():
    g = _net()
    h = verify(assign_layout(g, Layout.TN, keep_outputs=False))
    assert _casts(h) == [] and h.type_of("out").layout is Layout.TN
    x = torch.randn(4, 2, 2, 4, 4)
    assert torch.equal(L.tn_to_tnx(Session(h).run(x)["out"], 4), Session(g).run(x)["out"])


def test_single_step_values_stay_nx_and_repeat_casts_follow_the_target():
    g = Graph("hoisted")
    g.add(ops.Input(name="x", type=TensorType(shape=("N", 3), layout=Layout.NX)))
    g.add(ops.Scale(name="s", inputs=("x",), factor=2.0))
    g.add(ops.LayoutCast(name="rep", inputs=("s",), to=Layout.TNX))
    g.add(ops.IF(name="n", inputs=("rep",)))
    g.add(ops.Output(name="out", inputs=("n",)))
    h = verify(assign_layout(g, Layout.NXT))
    assert h.type_of("s").layout is Layout.NX and h["rep"].to is Layout.NXT
    x = torch.rand(2, 3)
    assert torch.equal(Session(g).run(x, 6), Session(h).run(x, 6))


def test_bad_layouts_are_pass_errors():
    with pytest.raises(PassError, match="NX has no time"):
        assign_layout(_net(), Layout.NX)
    with pytest.raises(PassError, match="unknown layout"):
        assign_layout(_net(), "XYZ")
    assert parse_pipeline("layout{to=TN}")[0][1].to is Layout.TN


@pytest.mark.parametrize("shape", [(1, 1, 3), (4, 2, 3, 5, 5), (7, 1, 2)])
def test_layout_functions_round_trip(shape):
    x = torch.randn(shape)
    T = shape[0]
    assert torch.equal(L.nxt_to_tnx(L.tnx_to_nxt(x)), x)
    assert torch.equal(L.tn_to_tnx(L.tnx_to_tn(x), T), x)
    for lay in (Layout.TNX, Layout.NXT, Layout.TN):
        assert torch.equal(L.to_tnx(L.from_tnx(x, lay), lay, T), x)
    assert L.tnx_to_nxt(x)[..., 0].equal(x[0])  # time really is last
