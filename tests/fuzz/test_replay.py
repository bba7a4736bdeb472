"""The fuzzer saves every failing case (input, target, seed, mutation) and `--replay` reruns exactly that input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from snnc.fuzz import fuzz, load_case, replay

HANG_CASE = Path(__file__).parent / "cases" / "snnir-zeroed-heap.json"


def test_failing_cases_are_saved_and_replay_reruns_them(tmp_path):
    # 1 ms per case: every case overruns its time limit, a failure the fuzzer must save
    rep = fuzz(["onnx"], cases=3, seed=7, time_limit=0.001, out=tmp_path / "a")
    assert rep.cases == 3 and len(rep.failures) == 3 and len(rep.saved) == 3
    again = fuzz(["onnx"], cases=3, seed=7, time_limit=0.001, out=tmp_path / "b")
    for saved, twin in zip(rep.saved, again.saved):
        case, data = load_case(saved)
        assert saved.name == f"onnx-s7-c{case['case']}.json" and case["seed"] == 7
        assert case["target"] == "onnx" and case["seed_file"].endswith(".onnx") and case["mutation"]
        assert "timeout" in case["outcome"] and case["time_limit"] == 0.001
        assert saved.with_suffix(".onnx").read_bytes() == data  # the raw input, to try by hand
        assert load_case(twin) == (case, data)  # the same seed makes the same cases
    status, detail = replay(rep.saved[0])  # the saved limit: fails again
    assert status == "failure" and "timeout" in detail
    status, detail = replay(rep.saved[0], time_limit=60.0)  # with time to finish: a result or an snnc error
    assert status in ("ok", "rejected"), detail


def test_failure_folder_defaults_to_the_environment(tmp_path, monkeypatch):
    from snnc.fuzz import failure_folder

    monkeypatch.setenv("SNNC_FUZZ_OUT", str(tmp_path / "env"))
    assert failure_folder() == tmp_path / "env" and failure_folder(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("SNNC_FUZZ_OUT")
    assert failure_folder() == Path("fuzz-failures")


def test_replay_command_reruns_the_issue_15_hang(tmp_path):
    """Before issue 15 this input hung HDF5 for good; now the read is stopped and reported (an snnc error)."""
    r = subprocess.run([sys.executable, "-m", "snnc.fuzz", "--replay", str(HANG_CASE)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith(f"{HANG_CASE}: rejected: MalformedFileError: ") and "did not finish" in r.stdout


def test_a_zero_conv_stride_is_rejected_not_divided_by():
    """Found by `make fuzz`: a .snnir whose conv2d has stride 0 crashed type inference (ZeroDivisionError)."""
    status, detail = replay(Path(__file__).parent / "cases" / "snnir-conv-stride-zero.json")
    assert status == "rejected" and "conv2d.stride.0: Input should be greater than or equal to 1 (got 0)" in detail
    assert "\n" not in detail.strip(), detail  # pydantic's report on one line


def test_replay_refuses_a_file_that_is_not_a_case(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a saved fuzz case"):
        load_case(bad)
    r = subprocess.run([sys.executable, "-m", "snnc.fuzz", "--replay", str(bad)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and r.stdout.startswith(f"error: {bad}: not a saved fuzz case")
