"""NIR recurrent edges and Delay nodes (issue 17): a hand-built recurrent LIF graph against a forward-Euler
reference written here, and IR -> NIR -> IR keeping a recurrent, delayed graph's outputs identical."""

import warnings

import nir
import numpy as np
import pytest
import torch

import snnc
from snnc.core.errors import UnsupportedAttributeError
from snnc.frontends.nir import from_nir, load_nir
from snnc.runtime.interpreter import Interpreter
from tests.runtime.test_recurrence_delay import recurrent_lif

DELAYS = [0, 1, 3, 2, 5]


def rnn(delay: bool, w_rec_scale: float = 1.0) -> tuple[nir.NIRGraph, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    w, wr = rng.normal(size=(5, 4)).astype(np.float32), w_rec_scale * rng.normal(size=(5, 5)).astype(np.float32)
    nodes = {"in": nir.Input(input_type={"input": np.array([4])}), "fc": nir.Linear(weight=w),
             "lif": nir.LIF(tau=np.full(5, 2.0), r=np.ones(5), v_leak=np.zeros(5), v_threshold=np.full(5, 0.8)),
             "rec": nir.Linear(weight=wr), "out": nir.Output(output_type={"output": np.array([5])})}
    edges = [("in", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif")]
    if delay:
        nodes["dl"] = nir.Delay(delay=np.array(DELAYS, dtype=np.float32))  # seconds; dt = 1 s below
        edges += [("lif", "dl"), ("dl", "out")]
    else:
        edges += [("lif", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges), w, wr


def euler(x: torch.Tensor, w, wr, delays=None) -> torch.Tensor:
    """NIR's LIF, tau dv/dt = (v_leak - v) + R I, forward Euler at dt = 1 (tau = 2 steps), fires on v > 0.8,
    resets to 0; the recurrent edge brings last step's spikes; then y[t, j] = s[t - d_j, j]."""
    w, wr = torch.from_numpy(w), torch.from_numpy(wr)
    v = torch.zeros(x.shape[1], 5)
    s = torch.zeros(x.shape[1], 5)
    out = []
    for t in range(x.shape[0]):
        i = x[t] @ w.T + s @ wr.T
        v = v + (0.0 - v + i) / 2.0
        s = (v > 0.8).float()
        v = v * (1 - s)
        out.append(s)
    y = torch.stack(out)
    if delays is not None:
        y2 = torch.zeros_like(y)
        for j, d in enumerate(delays):
            y2[d:, :, j] = y[: y.shape[0] - d, :, j]
        y = y2
    return y


def _x(seed=2):
    return (torch.rand(16, 3, 4, generator=torch.Generator().manual_seed(seed)) < 0.5).float() * 1.5


@pytest.mark.parametrize("delay", [False, True])
def test_a_recurrent_nir_graph_matches_forward_euler(delay):
    graph, w, wr = rnn(delay)
    g = from_nir(graph, dt=1.0)
    assert [op.kind for op in g if op.back_edge] == ["recur"]
    x = _x()
    y = Interpreter(g).run({g.inputs[0].name: x})[g.outputs[0].name]
    assert y.sum() > 0
    assert torch.equal(y, euler(x, w, wr, DELAYS if delay else None))
    if delay:
        assert not torch.equal(y, euler(x, w, wr))


def test_the_recurrent_edge_changes_the_output():
    x = _x(3)
    outs = []
    for scale in (1.0, 0.0):
        g = from_nir(rnn(False, scale)[0], dt=1.0)
        outs.append(Interpreter(g).run({g.inputs[0].name: x})[g.outputs[0].name])
    assert not torch.equal(*outs)


def test_a_delay_that_is_not_whole_steps_is_refused_by_name():
    graph, _, _ = rnn(True)
    with pytest.raises(UnsupportedAttributeError, match=r"NIR node 'dl' \(Delay\).*not whole steps of dt=0.3"):
        from_nir(graph, dt=0.3)


def test_ir_to_nir_to_ir_keeps_a_recurrent_delayed_graph(tmp_path):
    g = recurrent_lif(delays=DELAYS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LIF fires on >=, which NIR writes as the next float above
        art = snnc.compile(g, target="nir", output=tmp_path / "nir", dt=1.0)
    raw = nir.read(art.path / "model.nir")
    assert ("s", "rec") in raw.edges and type(raw.nodes["dl"]).__name__ == "Delay"
    back = load_nir(art.path / "model.nir")
    assert [op.kind for op in back if op.back_edge] == ["recur"]
    x = _x(4)
    want = Interpreter(g).run({"x": x})["out"]
    got = Interpreter(back).run({back.inputs[0].name: x})[back.outputs[0].name]
    assert torch.equal(got, want)


def _generated(name: str):
    from tests.backends.lava.test_netx_recurrence_delay import external

    ext = external()
    if ext is None:
        pytest.skip("../shared/external (NIR's tests_generated files) is not present")
    return ext / "NIR" / "tests_generated" / name


def test_nir_generated_delay_and_self_loop_files_match_their_equations():
    x = torch.randn(9, 2, 3, generator=torch.Generator().manual_seed(8))
    g = load_nir(_generated("readwrite__delay.nir"), dt=1.0)  # delays [1, 2, 3] s: steps at dt = 1 s
    y = Interpreter(g).run({g.inputs[0].name: x})[g.outputs[0].name]
    want = torch.zeros_like(x)
    for j, d in enumerate((1, 2, 3)):
        want[d:, :, j] = x[:-d, :, j]
    assert torch.equal(y, want)

    raw = nir.read(_generated("readwrite__simple.nir"))  # an Affine feeding itself: y[t] = W (x[t] + y[t-1]) + b
    g = load_nir(_generated("readwrite__simple.nir"), dt=1.0)
    w, b = (torch.from_numpy(np.asarray(v, dtype=np.float32)) for v in (raw.nodes["a"].weight, raw.nodes["a"].bias))
    x = torch.randn(7, 2, 2, generator=torch.Generator().manual_seed(9))
    y = Interpreter(g).run({g.inputs[0].name: x})[g.outputs[0].name]
    prev, want = torch.zeros(2, 2), []
    for t in range(7):
        prev = (x[t] + prev) @ w.T + b
        want.append(prev)
    assert torch.allclose(y, torch.stack(want), rtol=1e-6, atol=1e-6)
