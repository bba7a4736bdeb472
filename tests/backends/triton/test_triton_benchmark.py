"""benchmarks/triton_gpu.py --dry-run: every part of the GPU benchmark runs (tiny sizes, CPU interpreter)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

ROOT = Path(__file__).resolve().parents[3]


def test_benchmark_dry_run_writes_every_table(tmp_path):
    md = tmp_path / "results.md"
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "triton_gpu.py"), "--dry-run", "--training",
                           "--markdown", str(md)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = md.read_text()
    for heading in ("### Triton neuron kernels", "(2) converted VGG-11 inference", "(2b) linear + IF",
                    "(3) LIF CSNN training step"):
        assert heading in text, f"{heading!r} missing from:\n{text}"
    for row in ("| lif-forward |", "| lif-backward |", "| snnc triton |", "| torch eager |", "| K=32 fused |",
                "| snnc.nn triton |", "| snnc.nn torch |"):
        assert row in text, f"{row!r} missing"
    # the triton session and eager torch run the same converted network: same predictions
    eager = next(line for line in text.splitlines() if line.startswith("| torch eager |"))
    assert "same argmax as snnc: 100.0%" in eager
