"""remove-identities, fold-constants, dce and hoist-constant-input."""

import pytest
import torch

import snnc
from snnc.core.errors import InputError
from snnc.ir import Graph, Layout, TensorType, ops, verify
from snnc.passes import dce, fold_constants, hoist_constant_input, remove_identities
from snnc.runtime import Session


def _exact(g, h, x, T=4):
    a, b = Session(g).run(x, T), Session(h).run(x, T)
    assert torch.equal(a, b)


def test_remove_identities_drops_every_kind_of_no_op():
    g = Graph("ids")
    g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", 2, 3, 3), layout=Layout.TNX)))
    g.add(ops.Identity(name="i", inputs=("x",)))
    g.add(ops.Scale(name="one", inputs=("i",), factor=1.0))
    g.add(ops.LayoutCast(name="same", inputs=("one",), to=Layout.TNX))
    g.add(ops.AvgPool2d(name="p1", inputs=("same",), kernel_size=(1, 1), stride=(1, 1)))
    g.add(ops.AdaptiveAvgPool2d(name="ap", inputs=("p1",), output_size=(3, 3)))
    g.add(ops.Concat(name="cat", inputs=("ap",)))
    g.add(ops.Flatten(name="f0", inputs=("cat",), start_dim=1, end_dim=1))
    g.add(ops.IF(name="n", inputs=("f0",)))
    g.add(ops.Scale(name="two", inputs=("n",), factor=2.0))  # not an identity
    g.add(ops.Output(name="out", inputs=("two",)))
    g = verify(g)
    h = verify(remove_identities(g))
    assert [op.name for op in h] == ["x", "n", "two", "out"] and h["n"].inputs == ("x",)
    _exact(g, h, torch.randn(4, 2, 2, 3, 3), None)


def test_fold_constants_merges_scales_flattens_and_linears():
    g = Graph("c")
    g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", 2, 2, 2), layout=Layout.TNX)))
    g.params["c"] = torch.tensor([0.5, 4.0])
    g.params["w1"] = torch.randint(-4, 5, (6, 8)).float() / 4
    g.params["b1"] = torch.randint(-4, 5, (6,)).float() / 4
    g.params["w2"] = torch.randint(-4, 5, (3, 6)).float() / 4
    g.add(ops.Scale(name="s1", inputs=("x",), factor=2.0))
    g.add(ops.Scale(name="s2", inputs=("s1",), weight="c"))
    g.add(ops.Flatten(name="f1", inputs=("s2",), start_dim=1, end_dim=2))
    g.add(ops.Flatten(name="f2", inputs=("f1",), start_dim=0, end_dim=1))
    g.add(ops.Linear(name="l1", inputs=("f2",), weight="w1", bias="b1"))
    g.add(ops.Linear(name="l2", inputs=("l1",), weight="w2"))
    g.add(ops.Output(name="out", inputs=("l2",)))
    g = verify(g)
    h = verify(fold_constants(g))
    assert [op.kind for op in h] == ["input", "scale", "flatten", "linear", "output"]
    assert h["f2"].start_dim == 0 and h["f2"].end_dim == 2
    assert torch.equal(h.params[h["s2"].weight], torch.tensor([1.0, 8.0]))
    _exact(g, h, torch.randint(-8, 8, (3, 2, 2, 2)).float() / 4)  # dyadic: exact


def test_linear_with_two_users_is_not_merged():
    g = Graph("c")
    g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", 3), layout=Layout.TNX)))
    g.params["w"] = torch.eye(3)
    g.add(ops.Linear(name="l1", inputs=("x",), weight="w"))
    g.add(ops.Linear(name="l2", inputs=("l1",), weight="w"))
    g.add(ops.Output(name="o1", inputs=("l2",)))
    g.add(ops.Output(name="o2", inputs=("l1",)))
    assert len(fold_constants(verify(g))) == len(g)


def test_dce_drops_dead_branches_but_keeps_inputs():
    g = Graph("d")
    g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", 3), layout=Layout.TNX)))
    g.add(ops.Input(name="unused", type=TensorType(shape=("T", "N", 3), layout=Layout.TNX)))
    g.add(ops.IF(name="dead", inputs=("x",)))
    g.add(ops.Identity(name="i", inputs=("x",)))
    g.add(ops.Output(name="out", inputs=("i",)))
    h = verify(dce(verify(g)))
    assert list(h.nodes) == ["x", "unused", "out"]


def test_hoisting_computes_the_prefix_in_nx_and_rejects_sequences(small_cnn):
    x = torch.rand(16, 1, 8, 8)
    g = snnc.convert(small_cnn, x)
    h = verify(hoist_constant_input(g))
    first_neuron = next(op for op in h if isinstance(op, ops.NeuronOp))
    repeat = h[first_neuron.inputs[0]]
    assert isinstance(repeat, ops.LayoutCast) and repeat.to is Layout.TNX
    prefix = [op for op in h if op.kind not in ("input",) and h.type_of(op.name).layout is Layout.NX]
    assert [op.kind for op in prefix] == ["conv2d", "scale"]  # conv1 and the 1/lambda scale, once
    assert torch.equal(Session(g).run(x, 8), Session(h).run(x, 8))
    with pytest.raises(InputError, match="one step"):
        Session(h).run(torch.rand(8, 2, 1, 8, 8))
