"""Kernel fusion groups: patterns, IR text, .snnir round trip, and runtime neutrality."""

import torch

import snnc
from snnc.ir import Graph, Layout, TensorType, load, ops, save, verify
from snnc.ir.fusion import live_groups
from snnc.passes import PIPELINES, PassManager, fuse, hoist_constant_input, parse_pipeline
from snnc.runtime import Session


def _pipeline(g):
    return PassManager(parse_pipeline(PIPELINES["cpu"]), verify_each=True).run(g)


def test_converted_cnn_groups_conv_with_its_neuron(small_cnn):
    g = _pipeline(snnc.convert(small_cnn, torch.rand(32, 1, 8, 8)))
    groups, kinds = g.meta["fusion_groups"], g.meta["fusion_kinds"]
    assert list(kinds.values()) == ["conv2d+if", "conv2d+if"]
    for members in groups.values():
        assert [g[m].kind for m in members] == ["conv2d", "if"]
    text = str(g)
    for name, members in groups.items():
        for m in members:
            line = next(ln for ln in text.splitlines() if ln.strip().startswith(f"%{m}:"))
            assert f"group({name})" in line
    assert live_groups(g) == groups


def _chain_graph() -> Graph:
    """x -> scale -> relu -> add(+x) -> lif -> out (spikes) ; x -> identity -> scale -> out2."""
    g = Graph("chains")
    g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", 4), layout=Layout.TNX)))
    g.add(ops.Scale(name="s", inputs=("x",), factor=3.0))
    g.add(ops.ReLU(name="r", inputs=("s",)))
    g.add(ops.Add(name="a", inputs=("r", "x")))
    g.add(ops.LIF(name="n", inputs=("a",), tau=2.0))
    g.add(ops.Output(name="out", inputs=("n",)))
    g.add(ops.Identity(name="i", inputs=("x",)))
    g.add(ops.Scale(name="s2", inputs=("i",), factor=0.5))
    g.add(ops.Output(name="out2", inputs=("s2",)))
    return verify(g)


def test_elementwise_chains_and_neuron_count():
    g = fuse(_chain_graph())
    assert g.meta["fusion_groups"] == {"g0": ["s", "r", "a", "n"], "g1": ["i", "s2"]}
    assert g.meta["fusion_kinds"] == {"g0": "scale+relu+add+lif+count", "g1": "identity+scale"}
    only_elementwise = fuse(_chain_graph(), producers=False, count=False)
    assert only_elementwise.meta["fusion_kinds"]["g0"] == "scale+relu+add+lif"


def test_a_value_with_two_users_ends_a_group():
    g = _chain_graph()
    g.add(ops.Output(name="peek", inputs=("r",)))  # r is now read outside the chain
    groups = fuse(verify(g)).meta["fusion_groups"]
    assert ["s", "r"] in groups.values() and ["a", "n"] in groups.values()


def test_groups_survive_snnir_and_do_not_change_outputs(tmp_path):
    g = fuse(_chain_graph())
    save(g, tmp_path / "g.snnir")
    back = load(tmp_path / "g.snnir")
    assert back.meta["fusion_groups"] == g.meta["fusion_groups"] and str(back) == str(g)
    x = torch.randn(5, 2, 4)
    a, b = Session(_chain_graph()).run(x), Session(back).run(x)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_stale_groups_are_not_live_after_a_later_rewrite(small_cnn):
    g = _pipeline(snnc.convert(small_cnn, torch.rand(32, 1, 8, 8)))
    h = hoist_constant_input(g)  # puts a repeat cast between the first conv and its neuron
    live = live_groups(h)
    assert len(live) == len(g.meta["fusion_groups"]) - 1
    assert len(live_groups(fuse(h))) == 2  # re-fusing groups the hoisted graph afresh
