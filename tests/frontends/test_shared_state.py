"""A stateful module called more than once shares one state, in call order (issue 18).

In snnc.nn and SpikingJelly a neuron module keeps one membrane potential. Called twice on whole sequences
(multi-step mode), the second call starts from the first call's final V: the IR says so with `state_from`,
and the CPU runtime runs it. Calls that would alternate on one state step by step (a single-step module
called twice per step, or a Python time loop over a single-step network) are refused, naming every call
site; no call ever gets a silent copy of the state. Weights and inputs are dyadic (tests/nets.py), so equal
spikes are a property of the tracing, not of summation order.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from snnc.core.errors import InputError, LoweringError, UnsupportedOpError, VerifyError
from snnc.frontends import trace
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.verify import verify
from snnc.runtime import Interpreter
from tests.frontends.models import boost
from tests.nets import dyadic_, dyadic_inputs


class Reused(nn.Module):
    """One multi-step neuron module applied to two layers of the same width (call 2 continues call 1)."""

    def __init__(self, neuron, layer):
        super().__init__()
        self.fc1, self.fc2 = layer.Linear(8, 16), layer.Linear(16, 16)
        self.sn = neuron.LIFNode(tau=2.0)

    def forward(self, x):
        return self.sn(self.fc2(self.sn(self.fc1(x))))


def reused(neuron, layer, functional) -> nn.Module:
    net = Reused(neuron, layer)
    functional.set_step_mode(net, "m")
    return dyadic_(boost(net, 8.0, 0.5))


def torch_run(net: nn.Module, x: torch.Tensor, functional) -> torch.Tensor:
    functional.reset_net(net)
    with torch.no_grad():
        return net(x).detach()


def run(graph: Graph, x: torch.Tensor, **kwargs) -> torch.Tensor:
    return Interpreter(graph).run({graph.inputs[0].name: x}, **kwargs)[graph.outputs[0].name]


def copies(graph: Graph) -> Graph:
    """The same graph with every call on a fresh state: what tracing produced before."""
    g = graph.copy()
    for name in g.state_links():
        g.replace_op(g[name].replace(state_from=None))
    return verify(g)


def test_a_reused_multi_step_neuron_continues_its_state_as_the_module_does():
    from snnc.nn import functional, layer, neuron

    net = reused(neuron, layer, functional)
    g = trace(net, (8,))
    first, second = [op for op in g if isinstance(op, ops.NeuronOp)]
    assert (first.loc.module_path, second.loc.module_path) == ("sn", "sn")
    assert first.state_from is None and second.state_from == first.name
    assert f"state_from=%{first.name}," in str(g)
    x = dyadic_inputs((6, 4, 8), torch.Generator().manual_seed(1))
    ref = torch_run(net, x, functional)
    assert 0.05 < float(ref.mean()) < 0.95, float(ref.mean())
    assert torch.equal(run(g, x), ref)
    assert not torch.equal(run(copies(g), x), ref)  # independent copies give other spikes


def test_a_neuron_in_two_multi_step_containers_continues_its_state():
    from snnc.nn import functional, layer, neuron

    class TwoLoops(nn.Module):  # each container runs its own loop over T: call 2 after call 1's last step
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = layer.Linear(8, 8, step_mode="m"), layer.Linear(8, 8, step_mode="m")
            self.sn = neuron.IFNode(step_mode="s")
            self.a, self.b = layer.MultiStepContainer(self.sn), layer.MultiStepContainer(self.sn)

        def forward(self, x):
            return self.b(self.fc2(self.a(self.fc1(x))))

    net = dyadic_(boost(TwoLoops(), 8.0, 0.5))
    g = trace(net, (8,))
    first, second = [op for op in g if isinstance(op, ops.NeuronOp)]
    assert second.state_from == first.name
    x = dyadic_inputs((5, 3, 8), torch.Generator().manual_seed(2))
    ref = torch_run(net, x, functional)
    assert torch.equal(run(g, x), ref)
    assert not torch.equal(run(copies(g), x), ref)


def test_run_and_windows_agree_and_streaming_is_refused():
    from snnc.nn import functional, layer, neuron
    from snnc.runtime.session import Session

    g = trace(reused(neuron, layer, functional), (8,))
    x = dyadic_inputs((6, 4, 8), torch.Generator().manual_seed(3))
    s = Session(g)
    whole = s.run(x)
    assert torch.equal(s.run(x, chunk=2), whole)  # one window whatever is asked: call 2 needs call 1's end
    tiny = Interpreter(g, memory_budget=1)  # a budget that would split T into windows of one step
    assert torch.equal(tiny.run({g.inputs[0].name: x})[g.outputs[0].name], whole)
    s.reset()
    with pytest.raises(InputError, match=r"%sn_1 .*final membrane potential of %sn.*step by step"):
        s.step(x[0])
    s.run(x)
    with pytest.raises(InputError, match="continue an earlier run"):
        s.run(x, reset=False)


def test_calls_in_one_time_step_are_refused_with_every_call_site():
    from snnc.nn import neuron

    class Twice(nn.Module):  # single-step: the two calls would alternate on one state, A_t, B_t, A_t+1, ...
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.sn = neuron.IFNode()

        def forward(self, x):
            y = self.sn(self.fc(x))
            return self.sn(y)

    line = Twice.forward.__code__.co_firstlineno
    with pytest.raises(UnsupportedOpError) as e:
        trace(Twice(), (4,))
    msg = str(e.value)
    assert "'sn' (snnc.nn.neuron.IFNode)" in msg and "called 2 times in the same time step" in msg
    assert f"test_shared_state.py:{line + 1}" in msg and f"test_shared_state.py:{line + 2}" in msg


class Loop(nn.Module):
    """A single-step network run in its own Python time loop (SNASNet's pattern): fx unrolls the loop."""

    def __init__(self, neuron, collect: str, steps: int = 4):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 4)
        self.sn1, self.sn2 = neuron.LIFNode(tau=2.0), neuron.IFNode()
        self.collect, self.steps = collect, steps

    def forward(self, x):
        if self.collect == "stack":  # x: [T, N, 8], step t read as x[t]
            return torch.stack([self.sn2(self.fc2(self.sn1(self.fc1(x[t])))) for t in range(self.steps)])
        acc = 0  # x: [N, 8], the same input every step; the mean of the readout over the steps
        for t in range(self.steps):
            acc = acc + self.fc2(self.sn1(self.fc1(x)))
        return acc / self.steps


def loop(neuron, collect: str) -> nn.Module:
    return dyadic_(boost(Loop(neuron, collect), 8.0, 0.5))


@pytest.mark.parametrize("collect", ["stack", "mean"])
def test_a_python_time_loop_becomes_one_multi_step_neuron_per_module(collect):
    from snnc.nn import functional, neuron

    net = loop(neuron, collect)
    with pytest.warns(UserWarning, match=r"own time loop \(4 calls of each neuron module.*T=4.*"
                      + ("stacks" if collect == "stack" else "sum over T is the model's output")):
        g = trace(net, (8,))
    assert [op.loc.module_path for op in g if isinstance(op, ops.NeuronOp)] == (
        ["sn1", "sn2"] if collect == "stack" else ["sn1"])
    assert not g.state_links()
    gen = torch.Generator().manual_seed(6)
    x = dyadic_inputs((4, 3, 8) if collect == "stack" else (3, 8), gen)
    ref = torch_run(net, x, functional)
    out = Interpreter(g).run({"x": x}, T=4)[g.outputs[0].name]
    assert torch.equal(out if collect == "stack" else out.sum(0), ref)
    assert 0.05 < float(Interpreter(g).run({"x": x}, T=4, keep={"sn1"})["sn1"].mean()) < 0.95


def test_the_folded_loop_differs_from_the_copies_tracing_made_before():
    from snnc.nn import functional, neuron

    net = loop(neuron, "stack")
    x = dyadic_inputs((4, 3, 8), torch.Generator().manual_seed(7))
    ref = torch_run(net, x, functional)
    fresh = []
    for t in range(4):  # each call on a fresh state, as independent copies of the neurons would run
        functional.reset_net(net)
        with torch.no_grad():
            fresh.append(net.sn2(net.fc2(net.sn1(net.fc1(x[t])))))
    assert not torch.equal(torch.stack(fresh), ref)


def test_a_time_loop_that_cannot_be_folded_is_refused_not_copied():
    from snnc.nn import neuron

    class Recurrent(nn.Module):  # step t reads the last step's output: not the same computation every step
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.sn = neuron.LIFNode()

        def forward(self, x):
            out = self.sn(self.fc(x))
            for t in range(2):
                out = self.sn(self.fc(x) + out)
            return out

    with pytest.raises(UnsupportedOpError, match=r"(?s)'sn' .* called 3 times in the same time step.*"
                                                 r"test_shared_state.py:\d+; .*test_shared_state.py:\d+; "
                                                 r".*test_shared_state.py:\d+.*step_mode='m'"):
        trace(Recurrent(), (4,))


def test_calls_on_different_shapes_are_refused():
    from snnc.nn import functional, layer, neuron

    class Widths(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = layer.Linear(8, 16), layer.Linear(16, 4)
            self.sn = neuron.IFNode()

        def forward(self, x):
            return self.sn(self.fc2(self.sn(self.fc1(x))))

    net = Widths()
    functional.set_step_mode(net, "m")
    with pytest.raises(UnsupportedOpError, match=r"'sn' .*called 2 times on inputs of different shapes"):
        trace(net, (8,))


@pytest.mark.spikingjelly
def test_spikingjelly_reused_neuron_matches_spike_for_spike():
    pytest.importorskip("spikingjelly.activation_based.neuron")
    from spikingjelly.activation_based import functional, layer, neuron

    from snnc import nn as snn

    ours = reused(snn.neuron, snn.layer, snn.functional)
    net = reused(neuron, layer, functional)
    net.load_state_dict(ours.state_dict())
    g = trace(net, (8,))
    assert [op.state_from for op in g if isinstance(op, ops.NeuronOp)] == [None, "sn"]
    x = dyadic_inputs((8, 4, 8), torch.Generator().manual_seed(4))
    ref = torch_run(net, x, functional)
    assert torch.equal(run(g, x), ref)
    assert not torch.equal(run(copies(g), x), ref)


@pytest.mark.spikingjelly
@pytest.mark.parametrize("collect", ["stack", "mean"])
def test_spikingjelly_time_loop_folds_and_matches_spike_for_spike(collect):
    pytest.importorskip("spikingjelly.activation_based.neuron")
    from spikingjelly.activation_based import functional, neuron

    from snnc import nn as snn

    ours = loop(snn.neuron, collect)
    net = loop(neuron, collect)
    net.load_state_dict(ours.state_dict())
    with pytest.warns(UserWarning, match="own time loop"):
        g = trace(net, (8,))
    assert len([op for op in g if isinstance(op, ops.NeuronOp)]) == (2 if collect == "stack" else 1)
    x = dyadic_inputs((4, 3, 8) if collect == "stack" else (3, 8), torch.Generator().manual_seed(8))
    ref = torch_run(net, x, functional)
    out = Interpreter(g).run({"x": x}, T=4)[g.outputs[0].name]
    assert torch.equal(out if collect == "stack" else out.sum(0), ref)


# -- the IR ---------------------------------------------------------------------------------------
def linked_graph(**second) -> Graph:
    from snnc.ir.types import Layout, TensorType

    g = Graph("linked")
    g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", 4), layout=Layout.TNX)))
    g.add(ops.IF(name="a", inputs=("x",)))
    g.add(ops.IF(name="b", inputs=("x",), **{"state_from": "a", **second}))
    g.add(ops.Output(name="out", inputs=("b",)))
    return g


@pytest.mark.parametrize("second, error", [
    (dict(state_from="nope"), "not a neuron of the graph"),
    (dict(state_from="x"), "not a neuron of the graph"),
    (dict(state_from="b"), r"comes after it|cycle without a one-step delay: %b -> %b"),  # b continues itself
    (dict(v_init=0.5), "both v_init=0.5 and state_from=%a"),
])
def test_the_verifier_checks_state_links(second, error):
    with pytest.raises(VerifyError, match=error):
        verify(linked_graph(**second))


def test_the_verifier_refuses_a_state_continued_twice_and_a_shape_change():
    from snnc.ir.types import Layout, TensorType

    g = linked_graph()
    g.nodes = {**{k: v for k, v in g.nodes.items() if k != "out"}, "c": ops.IF(name="c", inputs=("x",),
                                                                              state_from="a")}
    g.add(ops.Output(name="out", inputs=("c",)))
    with pytest.raises(VerifyError, match="continued by both %b and %c"):
        verify(g)
    g = Graph("shapes")
    g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", 4), layout=Layout.TNX)))
    g.add(ops.Input(name="y", type=TensorType(shape=("T", "N", 5), layout=Layout.TNX)))
    g.add(ops.IF(name="a", inputs=("x",)))
    g.add(ops.IF(name="b", inputs=("y",), state_from="a"))
    g.add(ops.Output(name="o1", inputs=("a",)))
    g.add(ops.Output(name="o2", inputs=("b",)))
    with pytest.raises(VerifyError, match="a shared membrane potential has one shape"):
        verify(g)


def test_state_links_round_trip_through_snnir_and_keep_their_source_alive(tmp_path):
    from snnc.ir import serialize
    from snnc.passes.dce import dce

    g = verify(linked_graph())
    path = serialize.save(g, tmp_path / "linked.snnir")
    back = serialize.load(path)
    assert back["b"] == g["b"] and back.state_links() == {"b": "a"}
    assert "a" in dce(g).nodes  # %a's output is unused, but %b starts from its state
    with pytest.raises(VerifyError, match="still used by %b"):
        g.copy().remove("a")
    x = torch.rand(5, 2, 4) * 0.6
    a = Interpreter(g).run({"x": x}, keep={"a"})
    v = torch.zeros(2, 4)
    for t in range(5):  # %a's last V, then %b: a forward-Euler IF by hand
        v = v + x[t]
        v = torch.where(v >= 1.0, torch.zeros_like(v), v)
    expect = []
    for t in range(5):
        v = v + x[t]
        expect.append((v >= 1.0).float())
        v = torch.where(v >= 1.0, torch.zeros_like(v), v)
    assert torch.equal(a["out"], torch.stack(expect))


# -- the targets ----------------------------------------------------------------------------------
def test_the_cpu_target_runs_it_and_the_others_refuse_it_by_name(tmp_path):
    import snnc
    from snnc.nn import functional, layer, neuron

    net = reused(neuron, layer, functional)
    g = trace(net, (8,))
    x = dyadic_inputs((6, 4, 8), torch.Generator().manual_seed(5))
    snnc.compile(g, "cpu", tmp_path / "cpu")
    assert torch.equal(snnc.load(tmp_path / "cpu").run(x), torch_run(net, x, functional))
    for target, opts in [("triton", {}), ("lynxi", {"time_steps": 6, "batch_size": 4}), ("lava", {}),
                         ("nir", {})]:
        with pytest.raises(LoweringError, match=r"%sn_1 .*'sn'.*final membrane potential|%sn_1 .*continues %sn"):
            snnc.compile(g, target, tmp_path / target, **opts)
