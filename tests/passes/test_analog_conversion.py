"""The hybrid conversion (`analog=`, passes/analog.py): non-ReLU activations run on decoded rates.

The fixture is a small squeeze-excitation MLP with dyadic weights (tests/nets.py's
on_grid): a gate sigmoid(W2 relu(W1 h)) multiplies the spiking h, then a hardswish
reads a rate-coded value. A hand-written simulation (soft-reset IF neurons, running
means) is the independent reference.
"""

import math
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import snnc
from snnc.core.errors import InputError, LoweringError, PassError
from snnc.ir import load, ops, save
from snnc.passes.analog import AnalogReport
from snnc.passes.analog_kinds import parse_analog
from snnc.runtime import Session
from tests.nets import dyadic_inputs, on_grid


class GatedMLP(nn.Module):
    def __init__(self, gen: torch.Generator):
        super().__init__()
        self.fc1, self.relu1 = nn.Linear(8, 16), nn.ReLU()
        self.gate = nn.Sequential(nn.Linear(16, 4), nn.ReLU(), nn.Linear(4, 16), nn.Sigmoid())
        self.fc2, self.act = nn.Linear(16, 12), nn.Hardswish()
        self.fc3, self.relu3, self.fc4 = nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, 5)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    m.weight.copy_(on_grid(m.weight.shape, -8, 8, 4, gen))
                    m.bias.copy_(on_grid(m.bias.shape, -2, 4, 3, gen))

    def forward(self, x):
        h = self.relu1(self.fc1(x))
        h = h * self.gate(h)
        return self.fc4(self.relu3(self.fc3(self.act(self.fc2(h)))))


@pytest.fixture(scope="module")
def setup():
    gen = torch.Generator().manual_seed(19)
    model = GatedMLP(gen).eval()
    calib, x = dyadic_inputs((64, 8), gen), dyadic_inputs((6, 8), gen)
    snn = snnc.convert(model, torch.cat([calib, x]), "max", show_progress=False, analog="sigmoid,Hardswish")
    return model, x, snn


def test_refused_without_analog_naming_the_op_its_module_and_the_flag():
    model, calib = GatedMLP(torch.Generator().manual_seed(0)).eval(), torch.rand(16, 8)
    with pytest.raises(PassError) as info:
        snnc.convert(model, calib, show_progress=False)
    line = info.value.message
    assert "\n" not in line and "'gate.3' (torch.nn.Sigmoid)" in line and "--analog sigmoid,hardswish" in line
    with pytest.raises(PassError) as info:  # one named, the other still refused
        snnc.convert(model, calib, show_progress=False, analog=["sigmoid"])
    assert "'act' (torch.nn.Hardswish)" in info.value.message and "--analog hardswish" in info.value.message


def test_rate_decode_runs_before_relu_to_if_in_the_conversion_pipeline():
    from snnc.passes.manager import PIPELINES

    names = PIPELINES["convert"].split(",")
    assert names.index("to-time-layout") < names.index("rate-decode") < names.index("relu-to-if")


def test_analog_names_are_parsed_once():
    assert parse_analog("SiLU, gelu") == {"silu", "gelu"} and parse_analog(None) == frozenset()
    assert parse_analog("all") >= {"silu", "sigmoid", "hardswish", "hardsigmoid", "gelu", "softmax", "layer_norm"}
    with pytest.raises(InputError, match="unknown analog op 'swish'"):
        snnc.convert(nn.Linear(2, 2), torch.rand(4, 2), analog="swish")


def _if(inp: list[torch.Tensor]) -> list[torch.Tensor]:
    """A soft-reset IF neuron (threshold 1, v_init 0.5, fires on >=) over a list of per-step inputs."""
    v, out = torch.full_like(inp[0], 0.5), []
    for i in inp:
        v = v + i
        s = (v >= 1.0).float()
        v = v - s
        out.append(s)
    return out


def _running_mean(xs: list[torch.Tensor]) -> list[torch.Tensor]:
    total, out = torch.zeros_like(xs[0]), []
    for t, x in enumerate(xs):
        total = total + x
        out.append(total / (t + 1))
    return out


def reference(model: GatedMLP, scales: dict, x: torch.Tensor, T: int) -> torch.Tensor:
    """The hybrid SNN by hand: each ReLU an IF neuron between 1/lambda and lambda, each analog op on the running
    mean of its (rate-coded) input, the gate multiplying the spikes step by step."""
    def spiking(name, currents):
        lam = scales[name]
        return [lam * s for s in _if([c * (1.0 / lam) for c in currents])]

    h = spiking("relu1", [model.fc1(x)] * T)
    g1 = spiking("gate_1", [model.gate[0](v) for v in h])
    gate = [torch.sigmoid(d) for d in _running_mean([model.gate[2](v) for v in g1])]
    a = [F.hardswish(d) for d in _running_mean([model.fc2(v * s) for v, s in zip(h, gate)])]
    return torch.stack([model.fc4(v) for v in spiking("relu3", [model.fc3(v) for v in a])])


def test_hybrid_matches_a_hand_written_simulation(setup):
    model, x, snn = setup
    scales = snn.meta["conversion"]["scales"]
    with torch.no_grad():
        ref = reference(model, scales, x, 24)
    out = Session(snn).run(x, 24)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    compiled = snnc.load(snnc.compile(snn, "cpu")).run(x, 24)
    torch.testing.assert_close(compiled, out, rtol=1e-5, atol=1e-5)


def test_hybrid_converges_to_the_ann(setup):
    model, x, snn = setup
    with torch.no_grad():
        ann = model(x)
    out = Session(snn).run(x, 512)
    err = [float((out[:T].mean(0) - ann).abs().max() / ann.abs().max()) for T in (8, 64, 512)]
    assert err[0] > err[1] > err[2] and err[2] < 0.02, err


def test_the_analog_op_changes_the_output(setup):
    """Replacing the decoded sigmoid by the identity (or dropping its decode) gives another network."""
    model, x, snn = setup
    out = Session(snn).run(x, 64)
    (sig,) = [op for op in snn if isinstance(op, ops.Activation) and op.fn is ops.ActivationFn.SIGMOID]
    same = snn.copy()
    same.replace_op(ops.Identity(name=sig.name, inputs=sig.inputs, loc=sig.loc))
    assert (Session(same).run(x, 64) - out).abs().max() > 0.1 * out.abs().max()
    undecoded = snn.copy()
    undecoded.replace_op(sig.replace(inputs=snn[sig.inputs[0]].inputs))  # the sigmoid of each step's value
    assert (Session(undecoded).run(x, 64) - out).abs().max() > 1e-3 * out.abs().max()


def test_the_report_counts_the_macs_of_each_kind(setup):
    _, _, snn = setup
    report = AnalogReport.of(snn)
    # fc1 reads the input (8*16); the gate's two layers and fc2 (spikes times the gate) and fc4 read spikes;
    # fc3 reads the decoded hardswish
    assert (report.input_macs, report.spiking_macs, report.decoded_macs) == (128, 64 + 64 + 192 + 50, 120)
    assert report.decoded_ops == {"sigmoid": 1, "hardswish": 1} and report.exact_ops == {}
    assert math.isclose(report.share, 120 / 618) and "19.4% of 618 MACs/sample" in report.summary()


def test_an_analog_op_on_the_input_alone_runs_exactly():
    """Before any ReLU, values are constant over time: no decode, the op sees the exact value."""
    model = nn.Sequential(nn.Linear(4, 6), nn.SiLU(), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    calib = torch.rand(32, 4)
    snn = snnc.convert(model, calib, "max", show_progress=False, analog="silu")
    assert not any(isinstance(op, ops.RateDecode) for op in snn)
    report = AnalogReport.of(snn)
    assert report.exact_ops == {"silu": 1} and report.decoded_macs == 0 and report.input_macs == 24 + 36
    with warnings.catch_warnings(record=True) as seen:  # no ReLU at all: nothing spikes, and it says so
        warnings.simplefilter("always")
        snnc.convert(nn.Sequential(nn.Linear(4, 3), nn.Sigmoid()), calib, show_progress=False, analog="all")
    assert any("no ReLU to convert" in str(w.message) for w in seen)


def test_snnir_keeps_the_decodes_and_the_report(setup, tmp_path):
    _, x, snn = setup
    save(snn, tmp_path / "h.snnir")
    back = load(tmp_path / "h.snnir")
    assert [back[op.name] == op for op in snn] == [True] * len(snn.nodes)
    assert AnalogReport.of(back) == AnalogReport.of(snn)
    assert torch.equal(Session(back).run(x, 8), Session(snn).run(x, 8))


@pytest.mark.parametrize("target,named", [("lynxi", "'rate_decode'"), ("lava", "rate_decode"),
                                          ("nir", "(rate_decode)")])
def test_targets_without_an_analog_op_refuse_it_by_name(setup, target, named, tmp_path):
    _, _, snn = setup
    with pytest.raises(LoweringError) as info:
        snnc.compile(snn, target, tmp_path / target)
    assert named in str(info.value) and "activation" in str(info.value)


def test_triton_runs_the_hybrid_graph_as_the_reference(setup, tmp_path):
    """The Triton session runs RateDecode and Activation in torch between its neuron groups (like
    RunningMaxPool2d); without a GPU its kernels run in Triton's interpreter (tests/conftest.py)."""
    pytest.importorskip("triton")
    _, x, snn = setup
    s = snnc.load(snnc.compile(snn, "triton", tmp_path / "t", time_steps=8))
    assert s._interp.neuron_impl == "triton"
    ref = Session(snn).run(x, 8)
    torch.testing.assert_close(s.run(x, 8), ref, rtol=1e-6, atol=1e-6)
