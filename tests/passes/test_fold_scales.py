"""fold-scales: the algebra, each rewrite, what must not fold, and the converted digits network."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import snnc
from snnc.ir import Graph, Layout, TensorType, ops, verify
from snnc.passes import fold_scales
from snnc.passes.fold_scales import scale_conv_input, scale_linear_input, scale_output_rows
from snnc.runtime import Session


@settings(max_examples=25, deadline=None)
@given(cin=st.integers(1, 4), mult=st.integers(1, 3), groups=st.sampled_from([1, 2]), seed=st.integers(0, 2**16))
def test_conv_algebra(cin, mult, groups, seed):
    g = torch.Generator().manual_seed(seed)
    cin, cout = cin * groups, mult * groups
    w, b = torch.randn(cout, cin // groups, 3, 3, generator=g), torch.randn(cout, generator=g)
    x, s_in = torch.randn(2, cin, 5, 5, generator=g), torch.rand(cin, generator=g) + 0.1
    s_out = torch.randn(cout, generator=g)
    want = F.conv2d(x * s_in.view(1, -1, 1, 1), w, b, padding=1, groups=groups) * s_out.view(1, -1, 1, 1)
    w2, b2 = scale_output_rows(scale_conv_input(w, s_in, groups), b, s_out)
    torch.testing.assert_close(F.conv2d(x, w2, b2, padding=1, groups=groups), want, rtol=1e-4, atol=1e-4)
    lw, s = torch.randn(3, 6, generator=g), torch.randn(6, generator=g)
    xl = torch.randn(4, 6, generator=g)
    torch.testing.assert_close(F.linear(xl, scale_linear_input(lw, s)), F.linear(xl * s, lw), rtol=1e-5, atol=1e-5)


def _graph(build) -> Graph:
    g = Graph("t")
    build(g)
    return verify(g)


def _same(g, h, x, T=6):
    a, b = Session(g).run(x, T), Session(h).run(x, T)
    assert torch.equal(a, b), (a - b).abs().max()


@pytest.mark.parametrize("neuron", [
    ops.IF(name="n", inputs=("s",), v_threshold=1.0, reset=ops.SoftReset()),
    ops.IF(name="n", inputs=("s",), v_threshold=0.5, reset=ops.HardReset(v_reset=-0.25), v_init=0.5, fire="gt"),
    ops.LIF(name="n", inputs=("s",), tau=2.0, reset=ops.HardReset(v_reset=-0.5), decay_input=False),
    ops.LIF(name="n", inputs=("s",), tau=4.0, reset=ops.NoReset(), v_init=0.25),
])
@pytest.mark.parametrize("k", [0.25, 4.0])
def test_scale_folds_into_any_neuron(neuron, k):
    def build(g):
        g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", 8), layout=Layout.TNX)))
        g.add(ops.Scale(name="s", inputs=("x",), factor=k))
        g.add(neuron)
        g.add(ops.Output(name="out", inputs=("n",)))

    g = _graph(build)
    h = verify(fold_scales(g))
    n = h["n"]
    assert "s" not in h.nodes and n.inputs == ("x",) and n.v_threshold == neuron.v_threshold / k
    if isinstance(neuron.reset, ops.HardReset):
        assert n.reset.v_reset == neuron.reset.v_reset / k
    x = torch.randint(-4, 12, (12, 3, 8)).float() / 8  # dyadic: exact, and hits the threshold exactly
    _same(g, h, x, T=None)


def test_negative_or_per_channel_scale_before_a_neuron_stays():
    def build(g):
        g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", 3), layout=Layout.TNX)))
        g.params["c"] = torch.tensor([1.0, 2.0, 4.0])
        g.add(ops.Scale(name="neg", inputs=("x",), factor=-2.0))
        g.add(ops.IF(name="n1", inputs=("neg",)))
        g.add(ops.Scale(name="ch", inputs=("x",), weight="c"))
        g.add(ops.IF(name="n2", inputs=("ch",)))
        g.add(ops.Add(name="sum", inputs=("n1", "n2")))
        g.add(ops.Output(name="out", inputs=("sum",)))

    h = fold_scales(_graph(build))
    assert {"neg", "ch"} <= set(h.nodes)  # a threshold is one float and must stay positive


def test_converted_chain_folds_into_weights_and_keeps_unit_thresholds():
    """conv -> S(1/a) per channel -> IF -> S(a) -> avgpool -> flatten -> linear: no Scale left."""
    def build(g):
        g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", 1, 4, 4), layout=Layout.TNX)))
        g.params["w"] = torch.randint(-4, 5, (3, 1, 3, 3)).float() / 4
        g.params["b"] = torch.randint(-4, 5, (3,)).float() / 4
        g.params["inv"] = torch.tensor([0.5, 0.25, 2.0])
        g.params["lam"] = torch.tensor([2.0, 4.0, 0.5])
        g.params["fc"] = torch.randint(-4, 5, (5, 12)).float() / 4
        g.add(ops.Conv2d(name="conv", inputs=("x",), weight="w", bias="b", padding=(1, 1)))
        g.add(ops.Scale(name="pre", inputs=("conv",), weight="inv"))
        g.add(ops.IF(name="n", inputs=("pre",), reset=ops.SoftReset(), v_init=0.5))
        g.add(ops.Scale(name="post", inputs=("n",), weight="lam"))
        g.add(ops.AvgPool2d(name="pool", inputs=("post",), kernel_size=(2, 2), stride=(2, 2)))
        g.add(ops.Flatten(name="flat", inputs=("pool",)))
        g.add(ops.Linear(name="fc", inputs=("flat",), weight="fc"))
        g.add(ops.Output(name="out", inputs=("fc",)))

    g = _graph(build)
    h = verify(fold_scales(g))
    assert [op.kind for op in h] == ["input", "conv2d", "if", "avg_pool2d", "flatten", "linear", "output"]
    assert h["n"].v_threshold == 1.0
    assert torch.equal(h.params["b"], g.params["b"] * g.params["inv"])
    # the per-channel lambda, expanded over the 2x2 pooled positions of each channel, scales fc's columns
    assert torch.equal(h.params["fc"], g.params["fc"] * g.params["lam"].repeat_interleave(4))
    _same(g, h, torch.randint(0, 9, (2, 1, 4, 4)).float() / 4)


def test_scale_before_differently_scaled_add_is_kept_and_shared_conv_is_not_touched():
    def build(g):
        g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", 2, 3, 3), layout=Layout.TNX)))
        g.params["w"] = torch.ones(2, 2, 1, 1)
        g.add(ops.Conv2d(name="conv", inputs=("x",), weight="w"))
        g.add(ops.Scale(name="a", inputs=("conv",), factor=2.0))  # conv has two users: cannot fold back
        g.add(ops.Scale(name="b", inputs=("conv",), factor=0.5))
        g.add(ops.Add(name="sum", inputs=("a", "b")))
        g.add(ops.Output(name="out", inputs=("sum",)))

    g = _graph(build)
    h = fold_scales(g)
    assert [op.kind for op in h] == [op.kind for op in g] and torch.equal(h.params["w"], g.params["w"])


def test_equal_scales_move_past_add():
    def build(g):
        g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", 4), layout=Layout.TNX)))
        g.params["fc"] = torch.eye(4)
        g.add(ops.Scale(name="a", inputs=("x",), factor=2.0))
        g.add(ops.ReLU(name="r", inputs=("x",)))
        g.add(ops.Scale(name="b", inputs=("r",), factor=2.0))
        g.add(ops.Add(name="sum", inputs=("a", "b")))
        g.add(ops.Linear(name="fc", inputs=("sum",), weight="fc"))
        g.add(ops.Output(name="out", inputs=("fc",)))

    g = _graph(build)
    h = verify(fold_scales(g))
    assert not any(op.kind == "scale" for op in h) and torch.equal(h.params["fc"], 2 * torch.eye(4))
    _same(g, h, torch.randint(-8, 8, (3, 4)).float() / 4)


def test_converted_small_cnn_has_no_scales_left_and_same_predictions(small_cnn):
    x = torch.rand(64, 1, 8, 8)
    g = snnc.convert(small_cnn, x, "99.9%")
    h = verify(fold_scales(g))
    assert sum(op.kind == "scale" for op in g) == 4 and not any(op.kind == "scale" for op in h)
    a, b = Session(g).run(x, 8), Session(h).run(x, 8)
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)  # float rounding of the folded weights only


def test_residual_block_keeps_one_scale_on_the_skip_path():
    """h = a*IF1(conv1/a); IF2((conv2(h) + h)/b): everything folds but the skip path's a/b."""
    def build(g):
        g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", 2, 3, 3), layout=Layout.TNX)))
        for name in ("w1", "w2"):
            g.params[name] = torch.randint(-4, 5, (2, 2, 3, 3)).float() / 4
        g.add(ops.Conv2d(name="c1", inputs=("x",), weight="w1", padding=(1, 1)))
        g.add(ops.Scale(name="in1", inputs=("c1",), factor=0.25))
        g.add(ops.IF(name="if1", inputs=("in1",), v_init=0.5))
        g.add(ops.Scale(name="h", inputs=("if1",), factor=4.0))
        g.add(ops.Conv2d(name="c2", inputs=("h",), weight="w2", padding=(1, 1)))
        g.add(ops.Add(name="sum", inputs=("c2", "h")))
        g.add(ops.Scale(name="in2", inputs=("sum",), factor=0.5))
        g.add(ops.IF(name="if2", inputs=("in2",)))
        g.add(ops.Scale(name="out_s", inputs=("if2",), factor=2.0))
        g.add(ops.Output(name="out", inputs=("out_s",)))

    g = _graph(build)
    h = verify(fold_scales(g))
    scales = [op for op in h if op.kind == "scale"]
    assert [(s.inputs, s.factor) for s in scales] == [(("if1",), 2.0), (("if2",), 2.0)]  # a/b, and the output's
    assert torch.equal(h.params["w2"], g.params["w2"] * 2.0)  # a on the input side, 1/b on the rows
    _same(g, h, torch.randint(-4, 9, (2, 2, 3, 3)).float() / 4)
