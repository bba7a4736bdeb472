"""Calibration sharded over 2 gloo processes (torchrun) gives the single-process normalization."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import snnc
from snnc.frontends import trace
from snnc.passes import calibrate, fuse_bn
from tests.passes.dist_worker import model_and_data, summary

WORKER = Path(__file__).with_name("dist_worker.py")
ROOT = Path(__file__).parents[2]


def test_two_gloo_processes_match_one(tmp_path):
    out = tmp_path / "rank0.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(WORKER), str(out)], capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(out.read_text())

    model, data = model_and_data()
    stats = calibrate(fuse_bn(trace(model, (1, 8, 8))), data, channelwise=True, show_progress=False)
    graph = snnc.convert(model, data, "mse", channelwise=True, time_steps=4, bias_correction=True,
                         show_progress=False, batch_size=50, distributed=False)
    want = summary(stats, graph)

    assert got["world"] == 2 and got["samples"] == want["samples"] == data.shape[0]
    assert got["n"] == want["n"]  # every value counted once across the two shards
    acc = 0.005  # the sketch's stated relative error; a value can only change bucket if the ANN's
    # output differs in the last bit between batchings, so most agree exactly
    for k in want["max"]:
        assert got["max"][k] == pytest.approx(want["max"][k], rel=1e-6)
        assert got["q999"][k] == pytest.approx(want["q999"][k], rel=acc)
        assert got["channel_q99"][k] == pytest.approx(want["channel_q99"][k], rel=acc, abs=1e-9)
        assert got["scales"][k] == pytest.approx(want["scales"][k], rel=acc)
    # bias correction averages over all shards too (sums all-reduced): same biases up to float rounding
    assert got["biases"].keys() == want["biases"].keys()
    for k in want["biases"]:
        assert got["biases"][k] == pytest.approx(want["biases"][k], rel=1e-4, abs=1e-5)


CHECK_EXIT = """
import atexit, os, sys
import torch.distributed as dist
from snnc.passes import distributed
# atexit runs its handlers last-registered first: this one runs after any that snnc registers below
atexit.register(lambda: print(f"rank {os.environ['RANK']} group alive at exit: {dist.is_initialized()}", flush=True))
assert distributed.init_from_env() and dist.get_world_size() == 2
"""


def test_the_group_snnc_starts_under_torchrun_is_destroyed_before_the_interpreter_ends(tmp_path):
    """A process group left alive at exit meets the interpreter's teardown in its transport threads
    (seen as "terminate called without an active exception" from a rank that did its work)."""
    script = tmp_path / "check_exit.py"
    script.write_text(CHECK_EXIT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(script)], capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    # the ranks share stdout, so one's newline may come after the other's line: match the words, not the lines
    said = sorted(re.findall(r"rank (\d) group alive at exit: (True|False)", r.stdout))
    assert said == [("0", "False"), ("1", "False")], r.stdout + r.stderr[-2000:]
