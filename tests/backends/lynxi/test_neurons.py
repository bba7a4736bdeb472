"""Every neuron variant the IR has (IF/LIF, hard/soft/no reset, ge/gt, decay_input, v_init) lowers to
standard ops that reproduce the reference's floats, streamed or not."""

from __future__ import annotations

import pytest
import torch

import snnc
from snnc.backends.lynxi import Runner
from snnc.core.dynamics import FireCompare
from snnc.ir import IF, LIF, Graph, HardReset, Input, Layout, Linear, NoReset, Output, SoftReset, TensorType
from snnc.runtime import Session
from tests.backends.lynxi.conftest import with_spike_outputs
from tests.nets import on_grid

T, N = 6, 5


@pytest.fixture(scope="module")
def neurons_graph():
    g = Graph("neurons")
    gen = torch.Generator().manual_seed(0)
    g.add(Input(name="x", type=TensorType(shape=("T", "N", 12), layout=Layout.TNX)))
    # dyadic weights and inputs (tests/nets.py): the linear layers' sums are exact in any order, so only the
    # neurons' elementwise arithmetic, which the lowering spells as the reference does, makes the floats
    g.params["w1"] = on_grid((16, 12), -16, 16, 5, gen)
    g.params["w2"] = on_grid((8, 16), -16, 16, 3, gen)
    g.params["w3"] = on_grid((8, 8), -16, 16, 3, gen)
    g.add(Linear(name="fc1", inputs=("x",), weight="w1"))
    g.add(LIF(name="lif_hard", inputs=("fc1",), tau=2.5, decay_input=False, reset=HardReset(v_reset=-0.2),
              fire=FireCompare.GT, v_init=0.1))
    g.add(Linear(name="fc2", inputs=("lif_hard",), weight="w2"))
    g.add(LIF(name="lif_soft", inputs=("fc2",), tau=3.0, reset=SoftReset(), v_threshold=0.8))
    g.add(Linear(name="fc3", inputs=("lif_soft",), weight="w3"))
    g.add(IF(name="if_none", inputs=("fc3",), reset=NoReset(), v_threshold=2.0))
    g.add(Output(name="out", inputs=("if_none",)))
    x = on_grid((T, N, 12), -32, 32, 4, gen)
    return with_spike_outputs(g), x


@pytest.mark.parametrize("engine", ["onnx", "torch"])
def test_neuron_variants_match_exactly_in_one_run_and_in_chunks(neurons_graph, tmp_path, engine):
    g, x = neurons_graph
    session = Session(g)
    ref = session.run(x)
    for k, want in ref.items():
        assert 0 < float(want.mean()) < 1, f"{k} never or always fires"
    one = snnc.compile(g, "lynxi", tmp_path / "one", time_steps=T, batch_size=N, input_kind="sequence")
    got = Runner(one, engine).run(x.flatten(0, 1))
    chunked = snnc.compile(g, "lynxi", tmp_path / "chunks", time_steps=T // 3, batch_size=N,
                           input_kind="sequence", state_io=True)
    r = Runner(chunked, engine)
    parts = [r.run(x[i:i + T // 3].flatten(0, 1)) for i in range(0, T, T // 3)]
    for k, want in ref.items():
        assert torch.equal(got[k].reshape(want.shape), want), k
        assert torch.equal(torch.cat([p[k] for p in parts]).reshape(want.shape), want), k
    init = {st["node"]: st["init"] for st in chunked.manifest["state"]}
    assert init == {"lif_hard": 0.1, "lif_soft": 0.0, "if_none": 0.0}
    for node, v in session.state.items():
        torch.testing.assert_close(r.state[node], v, rtol=0, atol=0 if engine == "torch" else 1e-6)
