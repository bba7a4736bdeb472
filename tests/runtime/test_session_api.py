"""Session API: memory-bounded windows, dtypes, devices, the CLI's --stats, progress."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import snnc
from snnc.core.errors import InputError
from snnc.runtime import Session
from snnc.runtime.session import _LazyBar


def test_memory_budget_picks_the_window_and_keeps_results(tiny_vgg_graph):
    x = torch.rand(4, 2, 8, 8)
    big = Session(tiny_vgg_graph, progress=False)
    full = big.execute(x, 12)
    assert full.window == 12
    small = Session(tiny_vgg_graph, progress=False, memory_budget=1)
    res = small.execute(x, 12)
    assert res.window == 1 and torch.equal(res.outputs["out"], full.outputs["out"])
    plan = small._interp.plan(frozenset({"x"}), frozenset({"out"}))
    per_step = plan.bytes_per_step(4, 4)
    small.memory_budget = 3 * per_step
    assert small.execute(x, 12).window == 3
    # conv1 is hoisted and IF1 + pooling fused, so the largest value per step is conv2's
    # output, 4 x 16x4x4 floats; the estimate adds the largest value again as scratch
    assert 2 * 4 * 16 * 4 * 4 * 4 <= per_step < 8 * 4 * 16 * 4 * 4 * 4
    with pytest.raises(InputError):
        small.memory_budget = 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_runs_close_to_float32(tiny_vgg_graph, dtype):
    x = torch.rand(8, 2, 8, 8)
    ref = Session(tiny_vgg_graph, progress=False).run(x, 16).mean(0)
    s = Session(tiny_vgg_graph, dtype=dtype, progress=False)
    out = s.run(x, 16)
    assert out.dtype == dtype and s.dtype == dtype
    assert (out.float().mean(0) - ref).abs().max() < 0.35 * ref.abs().max()
    s.reset()
    assert torch.equal(torch.stack([s.step(x) for _ in range(4)]), s.run(x, 4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_the_cpu_rates(tiny_vgg_graph):
    x = torch.rand(8, 2, 8, 8)
    cpu = Session(tiny_vgg_graph, progress=False).run(x, 16).mean(0)
    gpu = Session(tiny_vgg_graph, device="cuda", progress=False).run(x, 16)
    assert gpu.device.type == "cuda" and (gpu.mean(0).cpu() - cpu).abs().max() < 0.1 * cpu.abs().max()


def test_bad_dtype_is_an_input_error(tiny_vgg_graph):
    with pytest.raises(InputError, match="dtype"):
        Session(tiny_vgg_graph, dtype=torch.int32)


def test_cli_run_stats(tmp_path, small_cnn_graph):
    from snnc.cli import app

    snnc.compile(small_cnn_graph, target="cpu", output=tmp_path / "a", time_steps=6, passes="")
    np.savez(tmp_path / "in.npz", x=np.random.rand(3, 1, 8, 8).astype(np.float32))
    r = CliRunner().invoke(app, ["run", str(tmp_path / "a"), "-i", str(tmp_path / "in.npz"), "--stats",
                                 "--encoder", "poisson", "--seed", "1", "-o", str(tmp_path / "o.npz")])
    assert r.exit_code == 0, r.output
    assert "SOPs" in r.output and "energy/sample" in r.output and "Horowitz" in r.output
    out = np.load(tmp_path / "o.npz")["out"]
    want = Session(small_cnn_graph, progress=False).run(torch.from_numpy(np.load(tmp_path / "in.npz")["x"]), 6,
                                                        encoder="poisson", seed=1)
    assert np.array_equal(out, want.numpy())


def test_progress_bar_appears_only_for_long_runs(monkeypatch):
    clock = iter([0.0, 0.1, 0.2, 0.3])  # fast: 0.1 s per unit of 4
    monkeypatch.setattr("snnc.runtime.session.time.perf_counter", lambda: next(clock))
    bar = _LazyBar(3)
    for _ in range(3):
        bar()
    assert bar.bar is None
    clock2 = iter([0.0, 1.0, 2.0, 3.0, 4.0])  # slow: projected 10 s
    monkeypatch.setattr("snnc.runtime.session.time.perf_counter", lambda: next(clock2))
    bar = _LazyBar(10)
    bar()
    bar()
    assert bar.bar is not None
    bar.bar.stop()
