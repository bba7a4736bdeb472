"""snnc.trace captures with torch.export where torch.fx cannot trace (shape checks): the same IR as fx where
both can, identical spikes against the module's own multi-step forward, and refusals naming file:line."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn as nn

from snnc.core.errors import FrontendError, UnsupportedOpError
from snnc.frontends import torch_capture, trace
from snnc.frontends.fx_lowering import _fx_trace
from snnc.frontends.snn import register_available
from snnc.ir import Layout, ops
from snnc.runtime import Interpreter
from tests.frontends.test_snn_trace import conv_snn, neuron_spikes_match
from tests.nets import dyadic_, dyadic_inputs


def _line(obj, text: str) -> str:
    """'test_export_capture.py:N' of the line of `obj`'s source that contains `text`."""
    lines, start = inspect.getsourcelines(obj)
    n = next(i for i, ln in enumerate(lines) if text in ln)
    return f"test_export_capture.py:{start + n}"


class Checked(nn.Module):
    """A multi-step SNN whose forward checks its input's rank (torch.fx cannot trace that) and folds
    [T, N] by hand around a stateless head, as SpikingJelly's zoo models do."""

    def __init__(self, body: nn.Module, head: nn.Module, out: nn.Module):
        super().__init__()
        self.body, self.head, self.out = body, head, out

    def forward(self, x):
        if x.dim() != 5:
            raise ValueError(f"expected [T, N, C, H, W], got {tuple(x.shape)}")
        T, N = x.shape[0], x.shape[1]
        y = self.body(x)
        z = self.head(y.flatten(0, 1).flatten(1))
        return self.out(z.reshape(T, N, -1))


def checked_snn():
    from snnc.nn import functional, layer, neuron

    body = conv_snn(neuron, layer, functional)[:7]  # conv, bn, IF, pool, conv+bn, LIF, pool: [T, N, 8, 2, 2]
    net = dyadic_(Checked(body, nn.Linear(32, 10), neuron.LIFNode(tau=2.0, v_threshold=0.5, step_mode="m")))
    with torch.no_grad():  # powers of two: the weights stay dyadic, and the output layer fires
        net.head.weight.mul_(8.0)
        net.head.bias.add_(0.25)
    return net


def _structure(graph) -> list:
    """The ops with their attributes, locations and operand positions, without value names."""
    order = {op.name: i for i, op in enumerate(graph)}
    return [(type(op).__name__, op.model_dump(exclude={"name", "inputs"}), tuple(order[v] for v in op.inputs))
            for op in graph]


def test_fx_untraceable_shape_check_is_captured_and_matches_spike_for_spike():
    from snnc.nn import functional
    from snnc.nn.neuron import BaseNode

    net = checked_snn()
    with pytest.raises(torch.fx.proxy.TraceError):  # why the fallback is needed
        torch.fx.symbolic_trace(net)
    g = trace(net, (1, 8, 8))
    assert [type(op).__name__ for op in g if isinstance(op, ops.NeuronOp)] == ["IF", "LIF", "LIF"]
    assert [op.loc.module_path for op in g if isinstance(op, ops.NeuronOp)] == ["body.2", "body.5", "out"]
    x = dyadic_inputs((4, 3, 1, 8, 8), torch.Generator().manual_seed(1))
    rates = neuron_spikes_match(net, g, x, functional, BaseNode)
    assert all(0.0 < r < 1.0 for r in rates.values()), rates  # every layer fires, not all the time


class HandFolded(Checked):
    """Checked without its shape check: torch.fx traces it, but its lowering has no sizes for the folded
    [T*N, *] values of `flatten(0, 1)` and the reshape back."""

    def forward(self, x):
        T, N = x.shape[0], x.shape[1]
        z = self.head(self.body(x).flatten(0, 1).flatten(1))
        return self.out(z.reshape(T, N, -1))


def test_folding_time_into_batch_by_hand_is_captured_with_torch_export_spike_for_spike():
    from snnc.nn import functional
    from snnc.nn.neuron import BaseNode

    net = checked_snn()
    hand = HandFolded(net.body, net.head, net.out)
    register_available()
    _fx_trace(hand, HandFolded)  # snnc's fx tracer traces it: the lowering is what needs the symbolic sizes
    g = trace(hand, (1, 8, 8))
    want = trace(net, (1, 8, 8))  # the same model with its shape check: torch.export, as before
    assert [type(op).__name__ for op in g] == [type(op).__name__ for op in want]
    assert [op.loc and op.loc.module_path for op in g] == [op.loc and op.loc.module_path for op in want]
    x = dyadic_inputs((4, 3, 1, 8, 8), torch.Generator().manual_seed(4))
    rates = neuron_spikes_match(hand, g, x, functional, BaseNode)
    assert all(0.0 < r < 1.0 for r in rates.values()), rates


class SampleFold(nn.Module):
    def forward(self, x):
        return x.flatten(0, 1)  # [N, F, G] -> [N*F, G]: a sample's features become batch entries


def test_folding_the_batch_of_an_ann_is_still_refused_by_the_fx_path():
    with pytest.raises(FrontendError, match="would merge the batch or time dim") as e:
        trace(SampleFold(), (4, 2))
    assert "torch.export" not in e.value.message and _line(SampleFold.forward, "flatten") in e.value.message


def test_a_model_both_paths_capture_gives_the_same_graph_and_outputs():
    from snnc.nn import functional, layer, neuron

    register_available()
    net = conv_snn(neuron, layer, functional)
    g_fx = trace(net, (1, 8, 8))
    g_ex = torch_capture.capture(net, [(1, 8, 8)], layout=Layout.TNX, per_step=False, name=g_fx.name,
                                 meta=dict(g_fx.meta), fx_error=FrontendError("forced"))
    assert _structure(g_ex) == _structure(g_fx)
    assert {k: v.shape for k, v in g_ex.params.items()} == {k: v.shape for k, v in g_fx.params.items()}
    assert all(torch.equal(g_ex.params[k], g_fx.params[k]) for k in g_fx.params)
    x = dyadic_inputs((3, 2, 1, 8, 8), torch.Generator().manual_seed(2))
    a = Interpreter(g_fx).run({g_fx.inputs[0].name: x})[g_fx.outputs[0].name]
    b = Interpreter(g_ex).run({g_ex.inputs[0].name: x})[g_ex.outputs[0].name]
    assert torch.equal(a, b) and a.any()


class SingleStep(nn.Module):
    """A single-step network ([N, *] per call) with a rank check: one multi-step neuron op per module."""

    def __init__(self):
        from snnc.nn import neuron

        super().__init__()
        self.fc1, self.sn1 = nn.Linear(6, 8), neuron.IFNode()
        self.fc2, self.sn2 = nn.Linear(8, 4), neuron.LIFNode(tau=2.0)

    def forward(self, x):
        assert x.dim() == 2, "expected [N, features]"
        return self.sn2(self.fc2(self.sn1(self.fc1(x))))


def test_single_step_model_is_captured_per_step_and_matches_its_python_time_loop():
    from snnc.nn import functional

    net = dyadic_(SingleStep())
    with torch.no_grad():
        net.fc1.weight.mul_(4.0)
        net.fc2.weight.mul_(4.0)
    g = trace(net, (6,))
    assert g.meta["step_mode"] == "s"
    assert [op.loc.module_path for op in g if isinstance(op, ops.NeuronOp)] == ["sn1", "sn2"]
    x = dyadic_inputs((5, 3, 6), torch.Generator().manual_seed(3))
    functional.reset_net(net)
    with torch.no_grad():
        ref = torch.stack([net(x[t]) for t in range(5)])
    out = Interpreter(g).run({g.inputs[0].name: x})[g.outputs[0].name]
    assert torch.equal(out, ref) and ref.any() and not ref.all()


class Reused(nn.Module):
    def __init__(self):
        from snnc.nn import neuron

        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 4), nn.Linear(4, 4)
        self.sn = neuron.IFNode(step_mode="m")

    def forward(self, x):
        if x.ndim != 3:
            raise ValueError("expected [T, N, F]")
        return self.sn(self.fc2(self.sn(self.fc1(x))))


def test_a_neuron_called_twice_is_refused_naming_both_call_sites():
    with pytest.raises(UnsupportedOpError, match=r"'sn' \(snnc\.nn\.neuron\.IFNode\) is called 2 times") as e:
        trace(Reused(), (4,))
    assert e.value.message.count(_line(Reused.forward, "return self.sn")) == 2


class Unsupported(nn.Module):
    def __init__(self):
        from snnc.nn import neuron

        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.sn = neuron.IFNode(step_mode="m")

    def forward(self, x):
        if x.ndim != 3:
            raise ValueError("expected [T, N, F]")
        y = torch.sin(self.fc(x))
        return self.sn(y)


def test_an_unsupported_op_after_capture_names_the_op_the_module_and_the_line():
    with pytest.raises(UnsupportedOpError) as e:
        trace(Unsupported(), (4,))
    msg = e.value.message
    assert "aten.sin" in msg and "Unsupported" in msg and _line(Unsupported.forward, "torch.sin") in msg


class TimeIntoFeatures(nn.Module):
    def __init__(self):
        from snnc.nn import neuron

        super().__init__()
        self.sn = neuron.IFNode(step_mode="m")

    def forward(self, x):
        assert x.dim() == 3
        return self.sn(x).transpose(0, 2)  # [F, N, T]: time moved into the features


def test_moving_the_time_dim_is_refused_not_misread():
    with pytest.raises(UnsupportedOpError, match=r"\[4, N, T\].*keeps the batch and time dims first") as e:
        trace(TimeIntoFeatures(), (4,))
    assert _line(TimeIntoFeatures.forward, "transpose") in e.value.message


class ValueDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        if x.sum() > 0:  # on the values: neither capture can represent it
            return self.fc(x)
        return x


def test_value_dependent_control_flow_is_refused_by_both_paths_with_the_line():
    with pytest.raises(FrontendError, match="torch.fx cannot trace.*torch.export \\(the fallback\\) fails") as e:
        trace(ValueDependent(), (4,))
    assert _line(ValueDependent.forward, "x.sum()") in e.value.message


class FxUnsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return torch.sin(self.fc(x))


def test_fx_refusals_name_the_source_line():
    with pytest.raises(UnsupportedOpError, match="function sin") as e:
        trace(FxUnsupported(), (4,))
    assert _line(FxUnsupported.forward, "torch.sin") in e.value.message


def test_capture_leaves_the_model_as_it_was():
    net = checked_snn()
    net.train()
    forwards = {p: m.__dict__.get("forward") for p, m in net.named_modules()}
    trace(net, (1, 8, 8))
    assert net.training and all(m.training for m in net.modules())
    assert {p: m.__dict__.get("forward") for p, m in net.named_modules()} == forwards


def test_model_that_needs_a_particular_batch_size_is_refused():
    class Fixed(nn.Module):
        def forward(self, x):
            assert x.dim() == 2
            return x.reshape(2, -1)  # only right for N == 2

    with pytest.raises(FrontendError):
        trace(Fixed(), (4,))


@pytest.mark.spikingjelly
def test_spikingjelly_checked_twin_matches_sj_spike_for_spike():
    pytest.importorskip("spikingjelly.activation_based.neuron")
    from spikingjelly.activation_based import functional, layer, neuron

    body = conv_snn(neuron, layer, functional)[:7]
    net = dyadic_(Checked(body, nn.Linear(32, 10), neuron.LIFNode(tau=2.0, v_threshold=0.5, step_mode="m")))
    g = trace(net, (1, 8, 8))
    x = dyadic_inputs((4, 3, 1, 8, 8), torch.Generator().manual_seed(4))
    neuron_spikes_match(net, g, x, functional, neuron.BaseNode)


class CheckedContainers(nn.Module):
    """Per-step containers inside a model fx cannot trace: their single-step neurons see every step in turn."""

    def __init__(self):
        from snnc.nn import layer, neuron

        super().__init__()
        self.a = layer.MultiStepContainer(nn.Linear(6, 8), neuron.IFNode())
        self.b = layer.SeqToANNContainer(nn.Linear(8, 4))
        self.sn = neuron.LIFNode(tau=2.0, step_mode="m")

    def forward(self, x):
        if x.ndim != 3:
            raise ValueError("expected [T, N, F]")
        return self.sn(self.b(self.a(x)))


def test_per_step_containers_in_a_captured_model_match_the_module():
    from snnc.nn import functional

    net = dyadic_(CheckedContainers())
    with torch.no_grad():
        net.a[0].weight.mul_(4.0)
        net.b[0].weight.mul_(4.0)
    g = trace(net, (6,))
    assert [op.loc.module_path for op in g if isinstance(op, ops.NeuronOp)] == ["a.1", "sn"]
    x = dyadic_inputs((5, 3, 6), torch.Generator().manual_seed(5))
    functional.reset_net(net)
    with torch.no_grad():
        ref = net(x)
    out = Interpreter(g).run({g.inputs[0].name: x})[g.outputs[0].name]
    assert torch.equal(out, ref) and ref.any() and not ref.all()
    assert "forward" not in net.a.__dict__  # the container's own forward is back
