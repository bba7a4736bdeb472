import pytest
import torch

import snnc
from snnc.core import dynamics
from snnc.core.errors import InputError
from snnc.ir import Graph, Layout, TensorType, ops
from snnc.runtime import Session, rate, spike_count


def _if_graph(reset=ops.SoftReset(), fire="ge", thr=1.0) -> Graph:
    g = Graph("if1")
    g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", 3), layout=Layout.TNX)))
    g.add(ops.IF(name="n", inputs=("x",), reset=reset, fire=fire, v_threshold=thr))
    g.add(ops.Output(name="out", inputs=("n",)))
    return g


def test_if_neuron_hand_computed():
    s = Session(_if_graph())
    x = torch.tensor([[0.4, 1.0, 0.0]])
    out = s.run(x, T=5)
    # v: 0.4,0.8,1.2->spike(0.2),0.6,1.0->spike(0)  | 1.0 fires every step (>=) | never
    assert out[:, 0, 0].tolist() == [0, 0, 1, 0, 1]
    assert out[:, 0, 1].tolist() == [1] * 5 and out[:, 0, 2].tolist() == [0] * 5
    assert spike_count(out)[0].tolist() == [2, 5, 0] and rate(out)[0, 1] == 1.0


def test_gt_comparison_does_not_fire_at_equality():
    out = Session(_if_graph(fire="gt")).run(torch.tensor([[1.0, 0.5, 2.0]]), T=2)
    assert out[:, 0].tolist() == [[0, 0, 1], [1, 0, 1]]  # 0.5+0.5 == 1 does not fire


def test_lif_graph_matches_dynamics():
    g = Graph("lif")
    g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", 8), layout=Layout.TNX)))
    g.add(ops.LIF(name="n", inputs=("x",), tau=3.0, reset=ops.HardReset(v_reset=-0.2), decay_input=False))
    g.add(ops.Output(name="out", inputs=("n",)))
    x = torch.randn(7, 4, 8) + 0.5
    expect, _ = dynamics.multi_step(g["n"].to_params(), x)
    assert torch.equal(Session(g).run(x), expect)


def test_state_resets_between_runs_unless_asked():
    s = Session(_if_graph())
    x = torch.full((1, 3), 0.6)
    a = s.run(x, T=1)
    b = s.run(x, T=1)
    assert torch.equal(a, b)
    c = s.run(x, T=1, reset=False)  # 0.6 + 0.6 >= 1 fires
    assert c.sum() == 3 and a.sum() == 0


def test_wrong_input_shape_is_a_clear_error(small_cnn):
    s = Session(snnc.convert(small_cnn, torch.rand(16, 1, 8, 8), "max"))
    with pytest.raises(InputError) as e:
        s.run(torch.rand(2, 1, 7, 7), T=4)
    assert "expects f32[T,N,1,8,8] TNX" in str(e.value) and "[2, 1, 7, 7]" in str(e.value)
    with pytest.raises(InputError, match="positive int"):
        s.run(torch.rand(2, 1, 8, 8), T=0)
    with pytest.raises(InputError, match="give T"):
        s.run(torch.rand(2, 1, 8, 8))
    with pytest.raises(InputError, match="NaN"):
        s.run(torch.full((2, 1, 8, 8), float("nan")), T=2)


def test_constant_input_equals_explicit_sequence(small_cnn):
    s = Session(snnc.convert(small_cnn, torch.rand(16, 1, 8, 8), "99%"))
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(s.run(x, T=6), s.run(x.expand(6, *x.shape).clone()))


def test_compile_load_run_matches_graph(tmp_path, small_cnn):
    g = snnc.convert(small_cnn, torch.rand(16, 1, 8, 8), "max")
    art = snnc.compile(g, target="cpu", output=tmp_path / "a", time_steps=8, passes="")
    assert art.manifest["target"] == "cpu" and art.manifest["snnc_version"] == snnc.__version__
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(snnc.load(tmp_path / "a").run(x, 8), Session(g).run(x, 8))


def test_compile_runs_the_targets_pipeline_as_the_cli_does(tmp_path, small_cnn):
    from snnc.passes import PIPELINES, PassManager, parse_pipeline

    g = snnc.convert(small_cnn, torch.rand(16, 1, 8, 8), "max")
    piped = PassManager(parse_pipeline(PIPELINES["cpu"])).run(g)
    assert [op.kind for op in piped] != [op.kind for op in g]  # the pipeline changes this graph (fold-scales, fuse)
    art = snnc.compile(g, target="cpu", output=tmp_path / "a", time_steps=8)
    assert [op.kind for op in art.graph()] == [op.kind for op in piped]
    assert [op.kind for op in g] == [op.kind for op in snnc.convert(small_cnn, torch.rand(16, 1, 8, 8), "max")]
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(snnc.load(art).run(x, 8), Session(piped).run(x, 8))
