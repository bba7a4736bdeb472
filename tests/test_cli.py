"""The snnc command line, run as a subprocess like a user would."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from snnc.frontends import trace
from snnc.ir import save

SNNC = [sys.executable, "-m", "snnc.cli"]


def snnc(*args, check=True):
    r = subprocess.run([*SNNC, *map(str, args)], capture_output=True, text=True, timeout=300)
    if check:
        assert r.returncode == 0, r.stderr
    return r


@pytest.fixture
def ann_file(tmp_path, small_cnn):
    save(trace(small_cnn, (1, 8, 8), name="small"), tmp_path / "ann.snnir")
    np.save(tmp_path / "calib.npy", np.random.rand(32, 1, 8, 8).astype(np.float32))
    np.savez(tmp_path / "inputs.npz", x=np.random.rand(3, 1, 8, 8).astype(np.float32))
    return tmp_path / "ann.snnir"


def test_compile_run_inspect(tmp_path, ann_file):
    r = snnc("compile", ann_file, "--target", "cpu", "--calib", tmp_path / "calib.npy", "-T", "8",
             "-o", tmp_path / "out", "--json")
    summary = json.loads(r.stdout)
    assert summary["target"] == "cpu" and summary["outputs"][0]["type"] == "f32[T,N,10] TNX"
    snnc("run", tmp_path / "out", "-i", tmp_path / "inputs.npz", "-o", tmp_path / "outputs.npz")
    out = np.load(tmp_path / "outputs.npz")
    assert out["out"].shape == (8, 3, 10)
    snnc("run", tmp_path / "out", "-i", tmp_path / "inputs.npz", "-o", tmp_path / "exact.npz", "--eager-exact")
    from snnc.runtime import Session

    x = torch.from_numpy(np.load(tmp_path / "inputs.npz")["x"])
    fast, exact = Session(tmp_path / "out"), Session(tmp_path / "out", channels_last=False, event_conv=False)
    assert fast.run(x, 8).numpy().tobytes() == out["out"].tobytes()
    assert exact.run(x, 8).numpy().tobytes() == np.load(tmp_path / "exact.npz")["out"].tobytes()
    r = snnc("inspect", tmp_path / "out")
    assert r.stdout.startswith("graph small(") and "= if(" in r.stdout


def test_convert_then_compile_snn(tmp_path, ann_file):
    snnc("convert", ann_file, "--calib", tmp_path / "calib.npy", "--mode", "max", "-o", tmp_path / "snn.snnir")
    r = snnc("compile", tmp_path / "snn.snnir", "-o", tmp_path / "o2", "--print-after", "fuse-bn")
    assert "// after fuse-bn" in r.stdout


def test_signed_flag_converts_to_signed_neurons_and_refuses_bias_correction(tmp_path, ann_file):
    """--signed: signed_if neurons, an SNN that compile takes as one; with --bias-correction one error line
    naming both flags (the targets' refusals: tests/passes/test_signed_conversion.py)."""
    snnc("convert", ann_file, "--calib", tmp_path / "calib.npy", "--signed", "-o", tmp_path / "s.snnir")
    snnc("compile", tmp_path / "s.snnir", "-o", tmp_path / "o")  # an SNN: no --calib needed
    assert "= signed_if(" in snnc("inspect", tmp_path / "o").stdout
    r = snnc("convert", ann_file, "--calib", tmp_path / "calib.npy", "--signed", "--bias-correction", "-T", "8",
             "-o", tmp_path / "b.snnir", check=False)
    assert r.returncode == 7 and r.stderr.startswith("error: --bias-correction") and "--signed" in r.stderr
    assert not (tmp_path / "b.snnir").exists()


def test_ann_without_calib_is_an_input_error(tmp_path, ann_file):
    r = snnc("compile", ann_file, "-o", tmp_path / "x", check=False)
    assert r.returncode == 7 and r.stderr.startswith("error:") and "--calib" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "x").exists()


def test_bad_mode_and_missing_file_exit_codes(tmp_path, ann_file):
    r = snnc("convert", ann_file, "--calib", tmp_path / "calib.npy", "--mode", "120%", "-o", tmp_path / "s", check=False)
    assert r.returncode == 7 and "'120%'" in r.stderr
    r = snnc("inspect", tmp_path / "nope.snnir", check=False)
    assert r.returncode == 3 and "no such file" in r.stderr
    r = snnc("compile", check=False)
    assert r.returncode == 2


def test_unknown_pass_lists_known_ones(tmp_path, ann_file):
    r = snnc("compile", ann_file, "--calib", tmp_path / "calib.npy", "-o", tmp_path / "o", "--passes", "fuse-bn,bogus",
             check=False)
    assert r.returncode == 5 and "bogus" in r.stderr and "fuse-bn" in r.stderr


def test_passes_lists_pipelines():
    r = snnc("passes")
    assert "fuse-bn" in r.stdout and "pipeline cpu:" in r.stdout


def test_bench_targets_and_json_schema(tmp_path, ann_file):
    r = snnc("compile", ann_file, "--calib", tmp_path / "calib.npy", "-T", "4", "-o", tmp_path / "out", "--json")
    summary = json.loads(r.stdout)
    assert set(summary) >= {"artifact", "target", "format_version", "inputs", "outputs", "files", "passes", "pass_ms"}
    assert summary["format_version"] == 2 and "graph.snnir" in summary["files"]
    assert len(summary["passes"]) == len(summary["pass_ms"])
    r = snnc("bench", tmp_path / "out", "-T", "4", "--batch", "8", "--repeat", "2", "--json")
    figures = json.loads(r.stdout)
    assert figures["batch"] == 8 and figures["samples_per_s"] > 0 and figures["runs"] == 2
    r = snnc("run", tmp_path / "out", "-i", tmp_path / "inputs.npz", "--print-time", "--stats")
    assert re.search(r"run: [0-9.]+ ms", r.stdout)
    r = snnc("targets")
    assert all(t in r.stdout for t in ("cpu", "triton", "lynxi", "lava", "nir"))


def test_backend_options_are_validated(tmp_path, ann_file):
    r = snnc("compile", ann_file, "--calib", tmp_path / "calib.npy", "--target", "lynxi", "-o", tmp_path / "x",
             "-O", "bogus=1", check=False)
    assert r.returncode == 7 and "bogus" in r.stderr and "batch_size" in r.stderr
    r = snnc("compile", ann_file, "--calib", tmp_path / "calib.npy", "--target", "lynxi", "-o", tmp_path / "x",
             "-T", "0", check=False)
    assert r.returncode == 7 and not (tmp_path / "x").exists()


def test_dump_dir_and_quiet(tmp_path, ann_file):
    r = snnc("-q", "compile", ann_file, "--calib", tmp_path / "calib.npy", "-o", tmp_path / "o", "--dump-dir",
             tmp_path / "d")
    assert r.stdout == ""
    dumps = sorted(p.name for p in (tmp_path / "d").iterdir())
    assert dumps[0] == "00-input.txt" and len(dumps) >= 2 and dumps[1].startswith("01-")


def test_inspect_prints_the_op_table(tmp_path, ann_file):
    from snnc.ir import load

    r = snnc("inspect", ann_file)
    lines = r.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("op ") and "MACs" in line)
    total = lines[-1].split()
    g = load(ann_file)
    assert total[0] == "total" and int(total[1]) == sum(p.numel() for p in g.params.values())
    conv1 = next(line for line in lines[header:] if line.startswith("%conv1 "))
    assert conv1.split()[-1] == str(4 * 8 * 8 * 1 * 3 * 3)  # out features x (in/groups x kH x kW)


def test_analog_flag_converts_a_gated_network_and_prints_the_analog_share(tmp_path):
    """Without --analog the sigmoid is refused in one line that names it and the flag; with it, compile and
    convert print the analog share and the artifact runs."""
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.Sigmoid(),
                              torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3)).eval()
    save(trace(net, (6,), name="gated"), tmp_path / "ann.snnir")
    np.save(tmp_path / "calib.npy", np.random.rand(32, 6).astype(np.float32))
    np.save(tmp_path / "x.npy", np.random.rand(2, 6).astype(np.float32))
    r = snnc("compile", tmp_path / "ann.snnir", "--calib", tmp_path / "calib.npy", "-o", tmp_path / "a", check=False)
    assert r.returncode != 0 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
    first = r.stderr.splitlines()[0]
    assert "'3' (torch.nn.Sigmoid)" in first and "--analog sigmoid" in first
    r = snnc("compile", tmp_path / "ann.snnir", "--calib", tmp_path / "calib.npy", "-o", tmp_path / "a",
             "--analog", "Sigmoid", "--print-after", "rate-decode")
    assert "// after rate-decode" in r.stdout and "= rate_decode(%" in r.stdout
    # the decoded sigmoid feeds the third Linear (8*4 of 6*8 + 8*8 + 8*4 + 4*3 MACs)
    assert "analog share: 20.5% of 156 MACs/sample run on decoded rates (ops on decoded rates: sigmoid x1)" in r.stdout
    snnc("run", tmp_path / "a", "-i", tmp_path / "x.npy", "-T", "8")
    r = snnc("convert", tmp_path / "ann.snnir", "--calib", tmp_path / "calib.npy", "-o", tmp_path / "s.snnir",
             "--analog", "all")
    assert "analog share: 20.5%" in r.stdout and (tmp_path / "s.snnir").exists()
    r = snnc("convert", tmp_path / "ann.snnir", "--calib", tmp_path / "calib.npy", "-o", tmp_path / "t.snnir",
             "--analog", "swish", check=False)
    assert r.returncode != 0 and "unknown analog op 'swish'" in r.stderr
    y = np.arange(24) % 3
    np.savez(tmp_path / "d.npz", x=np.random.rand(24, 6).astype(np.float32), y=y)
    r = snnc("eval", tmp_path / "ann.snnir", "--calib", tmp_path / "calib.npy", "--data", tmp_path / "d.npz",
             "-T", "4", check=False)
    assert r.returncode != 0 and "--analog sigmoid" in r.stderr.splitlines()[0]
    r = snnc("eval", tmp_path / "ann.snnir", "--calib", tmp_path / "calib.npy", "--data", tmp_path / "d.npz",
             "-T", "4,8", "--analog", "sigmoid", "--json")
    assert json.loads(r.stdout)["n"] == 24
