"""A mean over time, `x.mean(0)` of a [T, N, *] value (MS-ResNet's `head(x).mean(0)`), as the IR's TimeMean.

TimeMean is the running mean y[t] = (x[0] + ... + x[t]) / (t + 1): the last step of a run is the
model's output, and run, step() and chunked runs agree. Both capture paths (torch.fx, and
torch.export for code with shape checks) lower it; what cannot be computed step by step after it
(a neuron, a mix with a value that still has its steps) is refused. Checked against a hand-written
forward-Euler reference; the targets compute it (lynxi, triton) or refuse it by name (nir, lava).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import snnc
from snnc.backends.lynxi import Runner
from snnc.core.errors import LoweringError, UnsupportedOpError
from snnc.frontends import trace
from snnc.ir import load, ops, save
from snnc.ir.graph import Graph
from snnc.ir.types import Layout, TensorType
from snnc.nn.neuron import IFNode
from snnc.runtime import Session
from tests.frontends.models import ref_if

T, N = 5, 3


class MeanHead(nn.Module):
    """fc -> IF -> fc, averaged over T; `checked` adds a shape check that only torch.export can capture."""

    def __init__(self, checked: bool = False):
        super().__init__()
        self.checked = checked
        self.fc1, self.sn, self.fc2 = nn.Linear(6, 8), IFNode(step_mode="m"), nn.Linear(8, 3)
        with torch.no_grad():
            self.fc1.weight.uniform_(-0.2, 0.8)

    def forward(self, x):  # [T, N, 6] -> [N, 3]
        if self.checked and x.dim() != 3:
            raise ValueError("expected [T, N, 6]")
        return self.fc2(self.sn(self.fc1(x))).mean(0)

    def reference(self, x):
        with torch.no_grad():
            return self.fc2(ref_if(self.fc1(x))).mean(0)


def _model(checked: bool) -> MeanHead:
    torch.manual_seed(0)
    return MeanHead(checked).eval()


@pytest.mark.parametrize("checked", [False, True], ids=["fx", "export"])
def test_a_mean_over_time_matches_the_reference_at_the_last_step(checked):
    model = _model(checked)
    x = torch.rand(T, N, 6)
    g = trace(model, (6,))
    assert [op.kind for op in g][-2:] == ["time_mean", "output"]
    want = model.reference(x)
    got = Session(g, channels_last=False, event_conv=False).run(x)
    assert got.shape == (T, N, 3)
    assert (got[-1] - want).abs().max() <= 1e-6
    assert (got[0] - want).abs().max() > 1e-3  # the earlier steps are partial means: the op matters
    assert torch.equal(Session(g).predict(x), want.argmax(-1))  # predict reads the last step


def test_run_step_and_chunks_agree_and_snnir_round_trips(tmp_path):
    g = trace(_model(False), (6,))
    x = torch.rand(T, N, 6)
    s = Session(g, channels_last=False, event_conv=False)
    whole = s.run(x)
    assert torch.equal(s.run(x, chunk=2), whole)
    s.reset()
    assert torch.equal(torch.stack([s.step(x[t]) for t in range(T)]), whole)
    save(g, tmp_path / "m.snnir")
    back = load(tmp_path / "m.snnir")
    assert [op.kind for op in back] == [op.kind for op in g]
    assert torch.equal(Session(back, channels_last=False, event_conv=False).run(x), whole)


def test_the_kernel_is_the_running_mean():
    g = Graph("tm")
    g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", 4), layout=Layout.TNX)))
    g.add(ops.TimeMean(name="m", inputs=("x",)))
    g.add(ops.Output(name="out", inputs=("m",)))
    x = torch.randn(T, N, 4)
    got = Session(g).run(x)
    want = torch.stack([x[: t + 1].mean(0) for t in range(T)])
    assert (got - want).abs().max() <= 1e-6


@pytest.mark.parametrize("checked", [False, True], ids=["fx", "export"])
def test_a_mean_over_time_mixed_with_the_steps_is_refused(checked):
    class Mixed(MeanHead):
        def forward(self, x):
            if self.checked and x.dim() != 3:
                raise ValueError("expected [T, N, 6]")
            y = self.fc2(self.sn(self.fc1(x)))
            return y - y.mean(0)  # each step minus the mean over all steps

    torch.manual_seed(0)
    with pytest.raises(UnsupportedOpError, match=r"combines a mean over time .*still has its time steps"):
        trace(Mixed(checked).eval(), (6,))


def test_a_neuron_after_a_mean_over_time_is_refused():
    class NeuronAfter(MeanHead):
        def forward(self, x):
            return self.sn(self.fc1(x).mean(0))

    with pytest.raises(UnsupportedOpError, match=r"'sn'.* runs on a mean over time"):
        trace(NeuronAfter().eval(), (6,))


def test_targets_compute_it_or_refuse_it_by_name(tmp_path):
    g = trace(_model(False), (6,))
    x = torch.rand(T, N, 6)
    want = Session(g, channels_last=False, event_conv=False).run(x)
    art = snnc.compile(g, "lynxi", tmp_path / "ly", time_steps=T, batch_size=N, input_kind="sequence")
    for engine in ("onnx", "torch"):
        (got,) = Runner(art, engine).run(x.reshape(T * N, 6)).values()
        assert (got.reshape(want.shape) - want).abs().max() <= 1e-6, engine
    mean = snnc.compile(g, "lynxi", tmp_path / "ly_mean", time_steps=T, batch_size=N, input_kind="sequence",
                        readout="mean")  # the mean over T of a running mean is its last step
    (got,) = Runner(mean, "torch").run(x.reshape(T * N, 6)).values()
    assert (got - want[-1]).abs().max() <= 1e-6
    with pytest.raises(LoweringError, match=r"\(time_mean\).*state_io"):
        snnc.compile(g, "lynxi", tmp_path / "ly2", time_steps=T, batch_size=N, state_io=True)
    assert torch.equal(snnc.load(snnc.compile(g, "triton", tmp_path / "tr")).run(x), want)
    with pytest.raises(LoweringError, match=r"\(time_mean\).*has no NIR equivalent"):
        snnc.compile(g, "nir", tmp_path / "nir")
    with pytest.raises(LoweringError, match=r"no NetX layer for time_mean"):
        snnc.compile(g, "lava", tmp_path / "lava", time_steps=T)
