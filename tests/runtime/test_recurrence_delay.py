"""Delays and recurrent edges in the IR and on the CPU reference runtime (issue 17), on hand-built graphs
checked against forward-Euler references written here in plain torch."""

import pytest
import torch

from snnc.core.errors import LoweringError, VerifyError
from snnc.ir import load, ops, save
from snnc.ir.graph import Graph
from snnc.ir.types import DType, Layout, TensorType
from snnc.ir.verify import verify
from snnc.runtime.interpreter import Interpreter
from snnc.runtime.session import Session

T, N, NIN, NOUT = 14, 3, 4, 5


def _seq(n: int) -> TensorType:
    return TensorType(shape=("T", "N", n), layout=Layout.TNX)


def recurrent_lif(w_rec_scale: float = 1.0, delays=None) -> Graph:
    """x -> linear + linear(recur(s)) -> LIF s -> [delay] -> out."""
    gen = torch.Generator().manual_seed(11)
    g = Graph("rnn")
    g.add(ops.Input(name="x", type=_seq(NIN)))
    w = g.add_param("w", torch.randn(NOUT, NIN, generator=gen))
    wr = g.add_param("wr", w_rec_scale * torch.randn(NOUT, NOUT, generator=gen))
    g.add(ops.Recur(name="prev", inputs=("s",), type=_seq(NOUT).with_dtype(DType.SPIKE)))
    g.add(ops.Linear(name="ff", inputs=("x",), weight=w))
    g.add(ops.Linear(name="rec", inputs=("prev",), weight=wr))
    g.add(ops.Add(name="z", inputs=("ff", "rec")))
    g.add(ops.LIF(name="s", inputs=("z",), tau=2.0, v_threshold=0.8))
    out = "s"
    if delays is not None:
        d = g.add_param("d", torch.tensor(delays, dtype=torch.float32))
        out = g.add(ops.Delay(name="dl", inputs=("s",), steps=max(delays), delays=d))
    g.add(ops.Output(name="out", inputs=(out,)))
    return verify(g)


def reference(g: Graph, x: torch.Tensor, delays=None) -> torch.Tensor:
    """LIF (decay_input, hard reset to 0, v >= 0.8) with W x[t] + W_rec s[t-1], then y[t, j] = s[t - d_j, j]."""
    w, wr = g.params["w"], g.params["wr"]
    v = torch.zeros(x.shape[1], NOUT)
    s = torch.zeros(x.shape[1], NOUT)
    out = []
    for t in range(x.shape[0]):
        z = x[t] @ w.T + s @ wr.T
        h = v + (z - v) / 2.0
        s = (h >= 0.8).float()
        v = h * (1 - s)
        out.append(s)
    y = torch.stack(out)
    if delays is None:
        return y
    shifted = torch.zeros_like(y)
    for j, d in enumerate(delays):
        shifted[d:, :, j] = y[: y.shape[0] - d, :, j]
    return shifted


def _input(seed=3):
    return (torch.rand(T, N, NIN, generator=torch.Generator().manual_seed(seed)) < 0.5).float() * 1.5


def test_recurrent_lif_layer_matches_the_torch_reference():
    g = recurrent_lif()
    x = _input()
    y = Interpreter(g).run({"x": x})["out"]
    assert y.sum() > 0
    assert torch.equal(y, reference(g, x))


def test_a_recurrent_weight_changes_the_output():
    x = _input()
    with_rec = Interpreter(recurrent_lif(1.0)).run({"x": x})["out"]
    without = Interpreter(recurrent_lif(0.0)).run({"x": x})["out"]
    assert not torch.equal(with_rec, without)


def test_per_feature_delays_match_the_reference_and_change_the_output():
    delays = [0, 1, 3, 2, 5]
    g = recurrent_lif(delays=delays)
    x = _input(4)
    y = Interpreter(g).run({"x": x})["out"]
    assert torch.equal(y, reference(g, x, delays))
    assert not torch.equal(y, reference(g, x))


@pytest.mark.parametrize("delays", [None, [0, 1, 3, 2, 5]])
def test_run_equals_step_equals_chunked(delays):
    g = recurrent_lif(delays=delays)
    x = _input(5)
    s = Session(g)
    full = s.run(x)
    chunked = s.run(x, chunk=4)
    s.reset()
    steps = torch.stack([s.step(x[t]) for t in range(T)])
    assert torch.equal(full, chunked) and torch.equal(full, steps)
    snap_at = 6
    s.reset()
    for t in range(snap_at):
        s.step(x[t])
    snap = s.snapshot()
    rest = torch.stack([s.step(x[t]) for t in range(snap_at, T)])
    s.restore(snap)
    assert torch.equal(torch.stack([s.step(x[t]) for t in range(snap_at, T)]), rest)


def delay_line(steps: int) -> Graph:
    g = Graph("line")
    g.add(ops.Input(name="x", type=_seq(3)))
    g.add(ops.Delay(name="d", inputs=("x",), steps=steps))
    g.add(ops.IF(name="s", inputs=("d",), v_threshold=1.0))
    g.add(ops.Output(name="out", inputs=("s",)))
    return verify(g)


def test_a_delay_line_shifts_a_sequence_in_any_window():
    x = torch.rand(11, 2, 3, generator=torch.Generator().manual_seed(1))
    ref_v, ref = torch.zeros(2, 3), []
    for t in range(11):  # IF on x[t - 3]
        h = ref_v + (x[t - 3] if t >= 3 else 0.0)
        s = (h >= 1.0).float()
        ref_v = h * (1 - s)
        ref.append(s)
    s = Session(delay_line(3))
    for chunk in (None, 1, 2, 5):
        assert torch.equal(s.run(x, chunk=chunk), torch.stack(ref)), chunk
    assert not torch.equal(Session(delay_line(0)).run(x), torch.stack(ref))


def test_a_delay_of_a_constant_input_starts_empty():
    s = Session(delay_line(2))
    y = s.run(torch.full((2, 3), 0.6), T=6)
    assert y[:3].sum() == 0 and y[3].sum() == 6  # 0.6 arrives from t = 2: 1.2 >= 1 at t = 3


def test_a_cycle_without_a_one_step_delay_is_refused_naming_its_nodes():
    g = Graph("loop")
    g.add(ops.Input(name="x", type=_seq(3)))
    g.add(ops.Add(name="a", inputs=("x", "s")))
    g.add(ops.LIF(name="s", inputs=("a",)))
    g.add(ops.Output(name="out", inputs=("s",)))
    with pytest.raises(VerifyError, match=r"cycle without a one-step delay: %a -> %s -> %a"):
        verify(g)


def test_a_recur_must_declare_its_sources_type():
    g = Graph("bad")
    g.add(ops.Input(name="x", type=_seq(3)))
    g.add(ops.Recur(name="p", inputs=("s",), type=_seq(4)))
    g.add(ops.Add(name="a", inputs=("x", "x")))
    g.add(ops.LIF(name="s", inputs=("a",)))
    g.add(ops.Output(name="out", inputs=("s",)))
    with pytest.raises(VerifyError, match=r"%p \(recur\) declares .* but its source %s is"):
        verify(g)


def test_recurrent_and_delayed_graphs_print_sort_and_round_trip(tmp_path):
    g = recurrent_lif(delays=[0, 1, 3, 2, 5])
    text = str(g)
    assert "%prev: spike[T,N,5] TNX = recur(%s)\n" in text
    assert "= delay(%s, @d) {steps=5}" in text
    g.sort()
    assert list(g.nodes).index("prev") < list(g.nodes).index("rec")
    save(g, tmp_path / "r.snnir")
    back = load(tmp_path / "r.snnir")
    assert str(back) == text and [back[n] == g[n] for n in g.nodes]
    x = _input(6)
    assert torch.equal(Interpreter(back).run({"x": x})["out"], Interpreter(g).run({"x": x})["out"])


def test_out_of_range_per_feature_delays_are_refused_by_name():
    g = recurrent_lif(delays=[0, 1, 3, 2, 5])
    g.params["d"] = torch.tensor([0.0, 1, 9, 2, 5])
    with pytest.raises(LoweringError, match=r"%dl \(delay\): per-feature delays @d must be whole steps in 0..5"):
        Interpreter(g).run({"x": _input()})


def test_the_triton_and_lynxi_targets_refuse_delays_and_recurrence_by_name():
    from snnc.backends import triton
    from snnc.backends.lynxi.legalize import op_problems

    g = recurrent_lif(delays=[0, 1, 3, 2, 5])
    with pytest.raises(LoweringError, match=r"triton target cannot run %prev \(recur\); %dl \(delay\)"):
        triton.legalize(g)
    problems = op_problems(g)
    assert any("%prev (recur)" in p for p in problems) and any("%dl (delay)" in p for p in problems)
