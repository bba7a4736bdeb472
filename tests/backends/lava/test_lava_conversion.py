"""The lava target converts through the one pipeline: --print-after sees its passes, every conversion flag
reaches the NetX file as it reaches a cpu artifact, and the CLI and the Python API build the same network."""

import warnings

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import snnc
from snnc.ir.formats.artifact import Artifact
from snnc.backends.lava import NETX_FILE, convert as lava_convert
from snnc.cli import app
from snnc.frontends import trace
from snnc.ir import save


@pytest.fixture
def files(tmp_path, small_cnn):
    save(trace(small_cnn, (1, 8, 8), name="small"), tmp_path / "ann.snnir")
    np.save(tmp_path / "calib.npy", np.random.default_rng(0).random((32, 1, 8, 8), dtype=np.float32))
    return tmp_path / "ann.snnir", tmp_path / "calib.npy"


def _compile(files, out, target: str, *flags: str) -> str:
    ann, calib = files
    r = CliRunner().invoke(app, ["compile", str(ann), "--calib", str(calib), "--target", target, "-T", "4",
                                 "-o", str(out), *flags])
    assert r.exit_code == 0, r.output
    return r.output


def _numbers(path, target: str) -> bytes:
    """What the artifact computes with: the NetX file for lava; weights and neuron attributes for cpu."""
    if target == "lava":
        return (path / NETX_FILE).read_bytes()
    g = Artifact.open(path).graph()
    return "\n".join(line for line in str(g).splitlines() if "= if(" in line).encode() \
        + b"".join(t.numpy().tobytes() for t in g.params.values())


def test_print_after_normalize_for_lava(files, tmp_path):
    out = _compile(files, tmp_path / "lava", "lava", "--print-after", "normalize,calibrate-thresholds",
                   "--verify-each")
    normalized = out.split("// after normalize\n", 1)[1].split("// after", 1)[0]
    assert normalized.startswith("graph small(") and "= relu(" in normalized and "= scale(" in normalized
    calibrated = out.split("// after calibrate-thresholds\n", 1)[1]
    assert "= if(" in calibrated and "reset=hard(0.0)" in calibrated
    assert (tmp_path / "lava" / NETX_FILE).is_file()


@pytest.mark.parametrize("flags, changed", [
    ((), ("--mode", "max")),
    ((), ("--channelwise",)),
    ((), ("--bias-correction",)),
    (("--mode", "mse"), ("--v-init", "0.0")),  # Loihi starts at 0: v_init acts through the lambda it tunes
])
def test_each_conversion_flag_changes_lava_as_it_changes_cpu(files, tmp_path, flags, changed):
    for target in ("cpu", "lava"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _compile(files, tmp_path / f"{target}-base", target, *flags)
            _compile(files, tmp_path / f"{target}-flag", target, *flags, *changed)
        base, flag = (_numbers(tmp_path / f"{target}-{k}", target) for k in ("base", "flag"))
        assert base != flag, (target, changed)


def test_cli_and_api_build_the_same_lava_network(files, tmp_path):
    ann, calib = files
    _compile(files, tmp_path / "cli", "lava", "--channelwise")
    snn = lava_convert(snnc.ir.load(ann), torch.from_numpy(np.load(calib)), T=4, channelwise=True)
    snnc.compile(snn, target="lava", output=tmp_path / "api", time_steps=4)
    assert (tmp_path / "cli" / NETX_FILE).read_bytes() == (tmp_path / "api" / NETX_FILE).read_bytes()


def test_v_init_that_loihi_cannot_hold_warns(files, tmp_path):
    with pytest.warns(UserWarning, match="v_init=0.25: Loihi neurons start at 0"):
        _compile(files, tmp_path / "lava", "lava", "--v-init", "0.25")


def test_snnc_passes_lists_the_conversion_pipelines():
    r = CliRunner().invoke(app, ["passes"])
    assert r.exit_code == 0, r.output
    assert all(s in r.output for s in ("pipeline convert:", "pipeline convert-lava:", "calibrate-thresholds",
                                       "normalize", "relu-to-if", "bias-correction"))
