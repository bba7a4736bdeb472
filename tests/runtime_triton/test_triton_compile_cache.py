"""Kernels are compiled once and reused: Triton's cache key does not change with T or pointer values.

The interpreter never compiles, so this binds each recorded launch with
Triton's own binder for a stub sm_90 target (tests/runtime_triton/jit_keys.py,
in a subprocess without TRITON_INTERPRET) and counts the distinct cache keys.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton", reason="triton is not installed (Linux wheels only); the Triton kernels cannot be tested")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def keys() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    proc = subprocess.run([sys.executable, "-m", "tests.runtime_triton.jit_keys"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    if proc.returncode != 0 and "create_function_from_signature" in proc.stderr:
        pytest.skip(f"this triton's binder API differs: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_one_compiled_kernel_for_every_T_and_pointer(keys):
    """T = 2, 3, 16, 17, 33 with fresh tensors each launch: one cache key per kernel."""
    assert keys["launches"] == {"forward": 5, "chain": 5, "linear": 5}
    assert keys["over_T"] == {"forward": 1, "chain": 1, "linear": 1}


def test_session_runs_reuse_their_kernels(keys):
    """Five runs of a two-neuron-layer network at different T compile only the first run's two kernels."""
    assert keys["session"]["launches"] == 10
    assert keys["session"]["after_first_run"] == keys["session"]["after_all_runs"] == 2
