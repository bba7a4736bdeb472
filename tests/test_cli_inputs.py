"""Every bad input gets one `error:` line (and a hint), its documented exit code and no traceback;
no silent wrong results; the command line says what it takes (issue 15).

Most cases run `snnc.cli.main` in this process (the real entry point: the error printing and
exit codes included); a few run `python -m snnc.cli` as a user would.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import snnc
from snnc.core import spelling
from snnc.core.errors import FrontendError, InputError, LoweringError, UntrustedPickleError
from snnc.backends.lava.convert import convert as lava_convert
from snnc.frontends import load as load_model
from snnc.frontends import trace
from snnc.ir import load as load_ir
from snnc.ir import save

USAGE, FRONTEND, LOWERING, INPUT = 2, 3, 6, 7  # the exit codes the README documents


@dataclass
class Result:
    code: int
    out: str
    err: str


def cli(*args) -> Result:
    """`snnc ARGS` through snnc.cli.main, in this process."""
    from snnc import cli as snnc_cli

    out, err = io.StringIO(), io.StringIO()
    argv, shown = sys.argv, warnings.showwarning
    sys.argv = ["snnc", *map(str, args)]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("always")
            snnc_cli.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv, warnings.showwarning = argv, shown
    return Result(code, out.getvalue(), err.getvalue())


def run_snnc(*args) -> Result:
    """`python -m snnc.cli ARGS` in a fresh process."""
    r = subprocess.run([sys.executable, "-m", "snnc.cli", *map(str, args)], capture_output=True, text=True,
                       timeout=300, cwd=Path(__file__).resolve().parents[1])
    return Result(r.returncode, r.stdout, r.stderr)


def one_error(r: Result, code: int, *fragments: str, listing: bool = False) -> str:
    """The run failed with `code` and printed one error line (plus at most a hint line), naming `fragments`.

    listing: the error lists several problems, each on an indented line of its own (a legalizer's report).
    """
    lines = [line for line in r.err.splitlines() if not line.startswith("warning: ")]
    if listing:
        lines = [line for line in lines if not line.startswith("  ")]
    assert r.code == code, (r.code, r.err)
    assert lines and lines[0].startswith("error: "), r.err
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("hint: ")), r.err
    assert "Traceback" not in r.err and "Aborted" not in r.err
    for f in fragments:
        assert f in r.err, (f, r.err)
    return r.err


# ---------------------------------------------------------------- fixtures
MODULE = '''
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))
'''


@pytest.fixture
def files(tmp_path, small_cnn, monkeypatch):
    """An ANN file, an artifact (T=4), a Python spec with its weights, and data files."""
    save(trace(small_cnn, (1, 8, 8), name="small"), tmp_path / "ann.snnir")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "calib.npy", rng.random((32, 1, 8, 8)).astype(np.float32))
    np.savez(tmp_path / "inputs.npz", x=rng.random((3, 1, 8, 8)).astype(np.float32))
    g = snnc.convert(small_cnn, torch.rand(16, 1, 8, 8), "max")
    snnc.compile(g, "cpu", tmp_path / "art", time_steps=4)
    (tmp_path / "cli_inputs_model.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("cli_inputs_model", None)
    import cli_inputs_model

    net = cli_inputs_model.Net()
    torch.save(net.state_dict(), tmp_path / "weights.pt")
    torch.save(net, tmp_path / "whole.pt")
    return tmp_path


# ---------------------------------------------------------------- bad data files: one line each
def test_run_inputs_that_are_not_numeric_arrays(files):
    t = files
    np.savez(t / "obj.npz", x=np.array([object(), 1], dtype=object))
    one_error(cli("run", t / "art", "-i", t / "obj.npz"), INPUT, "obj.npz", "'x'", "Python objects")
    np.save(t / "str.npy", np.array(["a", "b"]))
    one_error(cli("run", t / "art", "-i", t / "str.npy"), INPUT, "str.npy", "strings")
    (t / "random.npz").write_bytes(np.random.default_rng(1).bytes(256))
    one_error(cli("run", t / "art", "-i", t / "random.npz"), INPUT, "random.npz", "not a .npy, .npz or .pt")
    np.savez(t / "shape.npz", x=np.zeros((3, 5), np.float32))
    one_error(cli("run", t / "art", "-i", t / "shape.npz"), INPUT, "shape.npz", "[3, 5]", "[N, 1, 8, 8]")
    np.savez(t / "nan.npz", x=np.full((2, 1, 8, 8), np.nan, np.float32))
    one_error(cli("run", t / "art", "-i", t / "nan.npz"), INPUT, "nan.npz", "sample 0 contains NaN")
    np.savez(t / "two.npz", x=np.zeros((2, 1, 8, 8), np.float32), y=np.zeros(2, np.float32))
    one_error(cli("run", t / "art", "-i", t / "two.npz"), INPUT, "two.npz", "'y'", "takes inputs 'x'")
    one_error(cli("run", t / "art", "-i", t / "missing.npz"), INPUT, "missing.npz", "does not exist")


def test_run_pt_files_load_tensors_only(files):
    t = files
    x = np.load(t / "inputs.npz")["x"]
    torch.save(torch.from_numpy(x), t / "x.pt")
    ok = cli("run", t / "art", "-i", t / "x.pt", "-o", t / "from_pt.npz")
    assert ok.code == 0, ok.err
    ref = cli("run", t / "art", "-i", t / "inputs.npz", "-o", t / "from_npz.npz")
    assert ref.code == 0, ref.err
    assert np.load(t / "from_pt.npz")["out"].tobytes() == np.load(t / "from_npz.npz")["out"].tobytes()
    marker = t / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"x": Evil()}, t / "evil.pt")
    one_error(cli("run", t / "art", "-i", t / "evil.pt"), INPUT, "evil.pt", "does not unpickle")
    with open(t / "plain.pkl", "wb") as f:
        pickle.dump(Evil(), f)
    one_error(cli("run", t / "art", "-i", t / "plain.pkl"), INPUT, "plain.pkl", "pickle")
    assert not marker.exists()
    torch.save([torch.zeros(1)], t / "list.pt")
    one_error(cli("run", t / "art", "-i", t / "list.pt"), INPUT, "list.pt", "holds a list")


def test_empty_inputs_file_is_one_line_not_aborted(files):
    (files / "empty.npz").write_bytes(b"")
    r = run_snnc("run", files / "art", "-i", files / "empty.npz")
    one_error(r, INPUT, "empty.npz", "empty (0 bytes)")


def test_calibration_of_strings_or_objects(files):
    t = files
    np.save(t / "str.npy", np.array([["a"] * 64] * 4))
    one_error(cli("convert", t / "ann.snnir", "--calib", t / "str.npy", "-o", t / "s.snnir"), INPUT,
              "calibration file", "str.npy", "strings")
    np.savez(t / "obj.npz", x=np.array([None] * 4, dtype=object))
    one_error(cli("compile", t / "ann.snnir", "--calib", t / "obj.npz", "-o", t / "o"), INPUT,
              "obj.npz", "Python objects")
    assert not (t / "s.snnir").exists() and not (t / "o").exists()
    with pytest.raises(InputError, match="calibration data holds strings"):
        snnc.convert(trace(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU()), (2,)),
                     np.array([["a", "b"]]), "max")


# ---------------------------------------------------------------- T <= 0
@pytest.mark.parametrize("T", ["0", "-3"])
def test_run_T_not_positive_is_refused(files, T):
    one_error(cli("run", files / "art", "-i", files / "inputs.npz", "-T", T), INPUT, "-T", T)


def test_T_not_positive_everywhere(files, small_cnn):
    t = files
    r = run_snnc("run", t / "art", "-i", t / "inputs.npz", "-T", "0", "-o", t / "o.npz")
    one_error(r, INPUT, "-T must be a positive int")
    assert not (t / "o.npz").exists()
    one_error(cli("convert", t / "ann.snnir", "--calib", t / "calib.npy", "--mode", "mse", "-T", "0",
                  "-o", t / "s.snnir"), INPUT, "-T")
    one_error(cli("bench", t / "art", "-T", "0"), INPUT, "-T")
    one_error(cli("report", t / "art", "-T", "4,0", "-o", t / "rep"), INPUT, "-T")
    g = snnc.convert(small_cnn, torch.rand(8, 1, 8, 8), "max")
    s = snnc.load(t / "art")
    x = torch.rand(2, 1, 8, 8)
    for T in (0, -1, 2.5, True):
        with pytest.raises(InputError, match="T must be a positive int"):
            s.run(x, T)
        with pytest.raises(InputError, match="T must be a positive int"):
            s.predict(x, T)
    assert s.run(x, np.int64(2)).shape[0] == 2  # any integer type
    for target in ("cpu", "triton", "lynxi", "lava", "nir"):
        with pytest.raises(InputError, match="time_steps"):
            snnc.compile(g, target, t / f"bad_{target}", time_steps=0)
        assert not (t / f"bad_{target}").exists()
    lava = snnc.load(snnc.compile(lava_convert(small_cnn, torch.rand(8, 1, 8, 8), "max", T=4),
                                  "lava", t / "lava", time_steps=4).path)
    with pytest.raises(InputError, match="T must be a positive int"):
        lava.run(x, 0)
    with pytest.raises(InputError, match="T must be a positive int"):
        lava.predict(x, -2)


# ---------------------------------------------------------------- integer data: refused unless scaled
def test_integer_calibration_needs_a_scale(files, small_cnn):
    t = files
    u8 = np.random.default_rng(2).integers(0, 256, (32, 1, 8, 8)).astype(np.uint8)
    np.save(t / "u8.npy", u8)
    err = one_error(cli("convert", t / "ann.snnir", "--calib", t / "u8.npy", "-o", t / "s.snnir"), INPUT,
                    "u8.npy", "integer dtype uint8", "0..")
    assert "--input-scale 1/255" in err
    np.save(t / "f.npy", u8.astype(np.float32) / 256)  # k/256: exact in float32, as is k * (1/256)
    assert cli("convert", t / "ann.snnir", "--calib", t / "u8.npy", "--input-scale", "1/256",
               "-o", t / "scaled.snnir").code == 0
    assert cli("convert", t / "ann.snnir", "--calib", t / "f.npy", "-o", t / "float.snnir").code == 0
    a, b = load_ir(t / "scaled.snnir"), load_ir(t / "float.snnir")
    assert str(a) == str(b) and all(torch.equal(a.params[k], b.params[k]) for k in a.params)
    one_error(cli("convert", t / "ann.snnir", "--calib", t / "u8.npy", "--input-scale", "0", "-o", t / "z.snnir"),
              INPUT, "--input-scale")
    # the Python API: a tensor, an array, batches of a DataLoader
    with pytest.raises(InputError, match=r"integer dtype uint8 with values 0\.\.255") as e:
        snnc.convert(small_cnn, torch.from_numpy(u8), "max")
    assert "x.float() / 255" in e.value.hint and "--input-scale" not in str(e.value)
    with pytest.raises(InputError, match="integer dtype int64"):
        snnc.convert(small_cnn, u8.astype(np.int64), "max")
    with pytest.raises(InputError, match="batch 1 has integer dtype int32"):
        snnc.convert(small_cnn, [torch.rand(4, 1, 8, 8), torch.full((4, 1, 8, 8), 3, dtype=torch.int32)], "max")


def test_binary_integers_and_bools_are_0_and_1(files, small_cnn):
    x = (torch.rand(3, 1, 8, 8) > 0.5)
    s = snnc.load(files / "art")
    ref = s.run(x.float(), 4)
    for same in (x, x.to(torch.uint8), x.to(torch.int64), x.numpy()):
        assert torch.equal(s.run(same, 4), ref)
    calib = (torch.rand(16, 1, 8, 8) > 0.5)
    a, b = snnc.convert(small_cnn, calib.to(torch.int8), "max"), snnc.convert(small_cnn, calib.float(), "max")
    assert str(a) == str(b)


def test_integer_inputs_need_a_scale_in_every_entry_point(files, small_cnn):
    t = files
    u8 = np.random.default_rng(3).integers(0, 256, (3, 1, 8, 8)).astype(np.uint8)
    np.savez(t / "u8.npz", x=u8)
    err = one_error(cli("run", t / "art", "-i", t / "u8.npz"), INPUT, "u8.npz", "'x'", "integer dtype uint8")
    assert "--input-scale 1/255" in err
    np.savez(t / "f.npz", x=u8.astype(np.float32) / 256)
    assert cli("run", t / "art", "-i", t / "u8.npz", "--input-scale", "1/256", "-o", t / "a.npz").code == 0
    assert cli("run", t / "art", "-i", t / "f.npz", "-o", t / "b.npz").code == 0
    assert np.load(t / "a.npz")["out"].tobytes() == np.load(t / "b.npz")["out"].tobytes()
    s = snnc.load(t / "art")
    with pytest.raises(InputError, match="input %x has integer dtype uint8") as e:
        s.run(torch.from_numpy(u8), 4)
    assert "x.float() / 255" in e.value.hint
    with pytest.raises(InputError, match="integer dtype int64"):
        s.step(torch.from_numpy(u8).long())
    np.savez(t / "eval.npz", x=u8, y=np.arange(3))
    one_error(cli("report", t / "art", "--eval", t / "eval.npz", "-T", "2", "-o", t / "rep"), INPUT,
              "evaluation file", "integer dtype uint8")
    np.savez(t / "eval_y.npz", x=u8.astype(np.float32) / 256, y=np.array([0.5, 1, 2]))
    one_error(cli("report", t / "art", "--eval", t / "eval_y.npz", "-T", "2", "-o", t / "rep"), INPUT,
              "'y'", "integer class labels")
    lava = snnc.load(snnc.compile(lava_convert(small_cnn, torch.rand(8, 1, 8, 8), "max", T=4),
                                  "lava", t / "lava", time_steps=4).path)
    with pytest.raises(InputError, match="integer dtype uint8"):
        lava.run(torch.from_numpy(u8), 4)
    np.savez(t / "u8_lava.npz", x=u8)
    one_error(cli("run", t / "lava", "-i", t / "u8_lava.npz"), INPUT, "u8_lava.npz", "--input-scale")


# ---------------------------------------------------------------- files that are not models
def test_a_non_model_file_is_named_never_echoed(files):
    secret = files / "model.onnx"
    secret.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(FrontendError) as e:
        load_model(secret)
    assert str(secret) in str(e.value) and "root" not in str(e.value).replace(str(files), "")
    err = one_error(cli("inspect", secret), FRONTEND, "model.onnx", "snnc reads")
    assert "root:x" not in err and "b'" not in err
    (files / "empty.snnir").write_bytes(b"")
    one_error(cli("inspect", files / "empty.snnir"), FRONTEND, "empty (0 bytes)")


# ---------------------------------------------------------------- the command line says what it takes
def test_version_and_help_without_value_placeholders_for_flags():
    r = cli("--version")
    assert r.code == 0 and r.out.strip() == f"snnc {snnc.__version__}"
    top = cli("--help").out
    assert re.search(r"-v, --verbose\s+More output", top) and "--version" in top
    helptext = cli("compile", "--help").out
    assert re.search(r"--json\s+Print a machine-readable", helptext)
    assert re.search(r"--trust-pickle\s+Allow", helptext)
    assert "<bool>" not in helptext + top and "<int>  More" not in top
    assert "batch first" in helptext and "x:[1,1,8,8]" in helptext
    for command in ("inspect", "report", "convert", "compile"):
        text = cli(command, "--help").out
        assert all(flag in text for flag in ("--weights", "--input-shape", "--trust-pickle")), command


def test_input_shape_hint_agrees_with_help_and_following_it_works(files):
    t = files
    err = one_error(cli("inspect", "cli_inputs_model:Net"), FRONTEND, "input shape", "batch first")
    suggested = re.search(r"--input-shape (\S+)", err).group(1)
    assert suggested == "x:[1,1,8,8]"  # the model's own input name, 1x8x8 samples, batch first
    for shape in (suggested, "x:[N,1,8,8]", "[16,1,8,8]"):
        r = cli("inspect", "cli_inputs_model:Net", "--input-shape", shape, "--no-table")
        assert r.code == 0 and r.out.startswith("graph Net(%x: f32[N,1,8,8] NX)"), (shape, r.err)
    err = one_error(cli("inspect", "cli_inputs_model:Net", "--input-shape", "y:[1,1,8,8]"), INPUT,
                    "'y'", "input(s) x")
    assert "--input-shape x:[1,1,8,8]" in err
    one_error(cli("inspect", t / "ann.snnir", "--input-shape", "nope:[1,1,8,8]"), INPUT, "'nope'", "input(s) x")
    one_error(cli("inspect", t / "ann.snnir", "--input-shape", "x:[1,1,7,7]"), INPUT, "[1, 7, 7]", "[1, 8, 8]")
    one_error(cli("inspect", "cli_inputs_model:Net", "--input-shape", "x:[1,0,8]"), INPUT, "batch first")
    with pytest.raises(FrontendError) as e:  # Python: the per-sample shape
        load_model("cli_inputs_model:Net")
    assert "input_shape=(1, 8, 8)" in e.value.hint and "--input-shape" not in str(e.value)


def test_a_python_file_spec_and_how_input_shape_was_read(files):
    t = files
    r = cli("inspect", f"{t / 'cli_inputs_model.py'}:Net", "--input-shape", "x:[1,1,8,8]", "--no-table")
    assert r.code == 0 and r.out.startswith("graph Net(%x: f32[N,1,8,8] NX)"), r.err
    one_error(cli("inspect", f"{t / 'nope.py'}:Net", "--input-shape", "x:[1,1,8,8]"), FRONTEND, "no such file",
              "nope.py")
    one_error(cli("inspect", f"{t / 'cli_inputs_model.py'}:Nope", "--input-shape", "x:[1,1,8,8]"), FRONTEND,
              "has no attribute 'Nope'")
    r = cli("inspect", "cli_inputs_model:Net", "--input-shape", "1,8,8")  # meant 1x8x8 samples; reads batch 1
    assert r.code != 0 and "Traceback" not in r.err and "conv2d needs input features [C, H, W]" in r.err
    assert r.err.rstrip().endswith("hint: --input-shape is batch first: '1,8,8' gives the model samples of "
                                   "shape [8, 8]"), r.err


def test_inspect_and_report_take_weights_and_input_shape(files):
    t = files
    r = cli("inspect", "cli_inputs_model:Net", "--input-shape", "x:[1,1,8,8]", "--weights", t / "weights.pt")
    assert r.code == 0 and "%conv" in r.out
    torch.save({"conv.weight": torch.zeros(1)}, t / "wrong.pt")
    one_error(cli("inspect", "cli_inputs_model:Net", "--input-shape", "x:[1,1,8,8]", "--weights", t / "wrong.pt"),
              FRONTEND, "wrong.pt", "do not fit")
    np.savez(t / "eval.npz", x=np.zeros((4, 1, 8, 8), np.float32), y=np.arange(4))
    r = cli("report", "cli_inputs_model:Net", "--input-shape", "x:[1,1,8,8]", "--weights", t / "weights.pt",
            "--calib", t / "calib.npy", "--eval", t / "eval.npz", "-T", "2", "-o", t / "rep")
    assert r.code == 0, r.err
    assert (t / "rep" / "report.html").is_file()
    one_error(cli("inspect", t / "ann.snnir", "--weights", t / "weights.pt"), INPUT, "--weights",
              "Python model spec")


def test_weights_with_trust_pickle_says_what_works(files):
    t = files
    err = one_error(cli("inspect", "cli_inputs_model:Net", "--input-shape", "x:[1,1,8,8]", "--weights",
                        t / "whole.pt", "--trust-pickle"), FRONTEND, "whole.pt", "not a plain state dict")
    assert "opt in with --trust-pickle" not in err and "does not apply to --weights" in err
    # what the hint says works: the whole model as the MODEL argument, with --trust-pickle
    r = cli("inspect", t / "whole.pt", "--trust-pickle", "--input-shape", "x:[1,1,8,8]", "--no-table")
    assert r.code == 0 and r.out.startswith("graph whole(%x:"), r.err
    with pytest.raises(UntrustedPickleError) as e:
        load_model("cli_inputs_model:Net", input_shape=(1, 8, 8), weights=t / "whole.pt",
                            trust_pickle=True)
    assert "trust_pickle=True" in e.value.hint and "--" not in e.value.hint


def test_lynxi_hints_name_the_flags_on_the_command_line(files, small_cnn):
    t = files
    err = one_error(cli("compile", t / "ann.snnir", "--calib", t / "calib.npy", "--target", "lynxi", "-T", "4",
                        "-o", t / "lx"), LOWERING, "--batch-size", listing=True)
    assert "batch_size=" not in err and "--batch-size 16" in err
    g = snnc.convert(small_cnn, torch.rand(8, 1, 8, 8), "max")
    with pytest.raises(LoweringError) as e:
        snnc.compile(g, "lynxi", t / "lx2", time_steps=4)
    assert "batch_size=<int>" in str(e.value) and "--batch-size" not in str(e.value)
    assert not spelling.on_command_line()  # the CLI's spelling ends with its command


def test_targets_says_how_triton_runs_here():
    r = cli("targets")
    line = next(line for line in r.out.splitlines() if line.startswith("triton"))
    if torch.cuda.is_available():
        assert "CUDA GPU" in line and "interpreter" not in line
    else:
        assert "no CUDA GPU" in line and "CPU interpreter" in line and "slow" in line


def test_run_device(files, small_cnn):
    t = files
    one_error(cli("run", t / "art", "-i", t / "inputs.npz", "--device", "tpu"), INPUT, "--device", "tpu")
    r = cli("run", t / "art", "-i", t / "inputs.npz", "--device", "cuda", "-o", t / "gpu.npz")
    if torch.cuda.is_available():
        assert r.code == 0 and np.load(t / "gpu.npz")["out"].shape == (4, 3, 10), r.err
    else:
        one_error(r, INPUT, "--device cuda", "no CUDA GPU")
    lava = lava_convert(small_cnn, torch.rand(8, 1, 8, 8), "max", T=4)
    snnc.compile(lava, "lava", t / "lava", time_steps=4)
    one_error(cli("run", t / "lava", "-i", t / "inputs.npz", "--device", "cuda"), INPUT, "--device cuda", "lava")
    assert cli("run", t / "lava", "-i", t / "inputs.npz", "--device", "cpu").code == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the run without a GPU")
def test_triton_artifact_runs_in_the_interpreter_without_a_gpu(files, small_cnn):
    t = files
    g = snnc.convert(small_cnn, torch.rand(8, 1, 8, 8), "max")
    snnc.compile(g, "triton", t / "tri", time_steps=4)
    r = run_snnc("run", t / "tri", "-i", t / "inputs.npz", "-o", t / "tri.npz")
    assert r.code == 0, r.err
    assert "warning: running the Triton kernels in Triton's CPU interpreter" in r.err
    assert np.load(t / "tri.npz")["out"].shape == (4, 3, 10)


def test_lynxi_runner_applies_the_same_dtype_policy(tmp_path, small_cnn):
    from snnc.backends.lynxi.runner import Runner

    g = snnc.convert(small_cnn, torch.rand(8, 1, 8, 8), "max")
    runner = Runner(snnc.compile(g, "lynxi", tmp_path / "lx", time_steps=2, batch_size=3).path)
    x = torch.arange(3 * 64).reshape(3, 1, 8, 8) % 3 == 0
    with pytest.raises(InputError, match="integer dtype int64 with values 0..7"):
        runner.run(x.long() * 7)
    want = runner.run(x.float())
    runner.reset()
    got = runner.run(x.to(torch.uint8))  # 0/1 integers are 0.0/1.0
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
