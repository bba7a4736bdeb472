"""Ops the converted zoo networks need on the lynxi target (issue 19).

The conversion's converging max pool (RunningMaxPool2d), unrolled over T with its sums as state, gives the
reference's outputs bit for bit (the sums of spikes are integers), in one run and streamed as two chunks of
T/2 with state inputs and outputs. Adaptive pooling to a multiple of the input size (VGG's 1x1 -> 7x7 at
32x32 inputs) is a copy of each element, also bit for bit."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import snnc
from snnc.backends.lynxi import Runner
from snnc.ir import IF, AdaptiveAvgPool2d, Graph, Input, Layout, Output, RunningMaxPool2d, TensorType
from snnc.runtime import Session

T, N = 6, 2


def _graph() -> Graph:
    g = Graph("rmp")
    g.add(Input(name="x", type=TensorType(shape=("T", N, 2, 5, 5), layout=Layout.TNX)))
    g.add(IF(name="s", inputs=("x",)))
    g.add(RunningMaxPool2d(name="p", inputs=("s",), kernel_size=(3, 3), stride=(2, 2), padding=(1, 1),
                           ceil_mode=True))
    g.add(Output(name="out", inputs=("p",)))
    return g


@pytest.mark.parametrize("engine", ["onnx", "torch"])
def test_running_max_pool_equals_the_reference_in_one_run_and_in_chunks(engine, tmp_path):
    g = _graph()
    x = torch.rand(T, N, 2, 5, 5, generator=torch.Generator().manual_seed(0))
    session = Session(g)
    ref = session.run(x, T)
    spikes = Session(_spikes_graph()).run(x, T)  # the IF alone
    plain = F.max_pool2d(spikes.flatten(0, 1), 3, 2, 1, ceil_mode=True).reshape(ref.shape)
    assert not torch.equal(ref, plain)  # the running pool is not the max of each step's spikes
    one = snnc.compile(g, "lynxi", tmp_path / "one", time_steps=T, batch_size=N, input_kind="sequence")
    (got,) = Runner(one, engine).run(x.reshape(T * N, 2, 5, 5)).values()
    assert torch.equal(got.reshape(ref.shape), ref)
    half = snnc.compile(g, "lynxi", tmp_path / "half", time_steps=T // 2, batch_size=N, input_kind="sequence",
                        state_io=True)
    assert {st["node"] for st in half.manifest["state"]} == {"s", "p"}
    r = Runner(half, engine)
    first, second = (r.run(x[i * T // 2:(i + 1) * T // 2].reshape(T // 2 * N, 2, 5, 5))["out"] for i in (0, 1))
    assert torch.equal(torch.cat([first, second]).reshape(ref.shape), ref)


@pytest.mark.parametrize("hw,size", [((1, 1), (7, 7)), ((2, 3), (4, 6))])
def test_adaptive_pool_to_a_multiple_of_the_input_copies_exactly(hw, size, tmp_path):
    g = Graph("up")
    g.add(Input(name="x", type=TensorType(shape=(N, 3, *hw), layout=Layout.NX)))
    g.add(AdaptiveAvgPool2d(name="p", inputs=("x",), output_size=size))
    g.add(Output(name="out", inputs=("p",)))
    x = torch.randn(N, 3, *hw, generator=torch.Generator().manual_seed(1))
    want = Session(g).run(x)
    assert torch.equal(want, F.adaptive_avg_pool2d(x, size))
    art = snnc.compile(g, "lynxi", tmp_path / "up", batch_size=N)
    for engine in ("onnx", "torch"):
        (got,) = Runner(art, engine).run(x).values()
        assert torch.equal(got, want), engine


def _spikes_graph() -> Graph:
    g = Graph("spikes")
    g.add(Input(name="x", type=TensorType(shape=("T", N, 2, 5, 5), layout=Layout.TNX)))
    g.add(IF(name="s", inputs=("x",)))
    g.add(Output(name="out", inputs=("s",)))
    return g
