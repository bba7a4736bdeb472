"""A new user's first steps: installing snnc from a clone named `snnc`, and the README's figures.

The install tests copy this working tree into <tmp>/snnc, the folder name that `git clone` gives, and
install it into a new venv with pip (no index, no build isolation; the venv borrows this interpreter's
packages through a .pth file). A script that runs in the clone's parent folder puts <tmp> on sys.path,
so the clone is also the namespace package `snnc`. Python's path search finds that namespace package
before setuptools' default editable finder, which left snnc empty
(`module 'snnc' has no attribute 'convert'`).
"""

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = ("snnc", "ir", "frontends", "passes", "backends", "runtime")

# Run in the clone's parent folder (sys.path[0]), which holds the clone `snnc/`, a bare folder.
PROBE = r"""
import json, sys
from pathlib import Path
assert (Path(sys.path[0] or ".") / "snnc").is_dir(), sys.path[0]  # the folder that used to shadow snnc
import snnc
from snnc.core import datasets
import snnc.ir, snnc.backends.cpu, snnc.cli
mods = {m: sys.modules[m].__file__ for m in ("snnc", "snnc.ir", "snnc.backends.cpu", "snnc.cli")}
extra = {}
for name in sys.argv[1:]:
    extra[name] = __import__(name, fromlist=["x"]).__file__
print(json.dumps({"convert": callable(snnc.convert), "datasets": datasets.__name__, "files": mods,
                  "extra": extra}))
"""


def _clone(parent: Path) -> Path:
    """This working tree's package files, copied to parent/snnc as a clone would have them."""
    clone = parent / "snnc"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for d in PACKAGE_DIRS:
        shutil.copytree(ROOT / d, clone / d, ignore=ignore)
    for f in ("pyproject.toml", "setup.cfg", "README.md"):
        shutil.copy2(ROOT / f, clone / f)
    return clone


def _venv(path: Path) -> Path:
    """A venv that sees this interpreter's packages (torch, pip, setuptools, ...) but not its snnc."""
    venv.EnvBuilder(with_pip=False).create(path)
    py = path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    # Named to sort after setuptools' __editable__ file: its paths come first on sys.path.
    (site / "zz_borrowed.pth").write_text("\n".join(sorted(ours)) + "\n")
    return py


def _pip_install(py: Path, *args: str) -> None:
    # --ignore-installed: never touch the snnc this interpreter has (pip would see it through the .pth)
    r = subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation",
                        "--ignore-installed", *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def _probe(py: Path, cwd: Path, *extra: str) -> dict:
    script = cwd / "probe_snnc.py"
    script.write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([py, script.name, *extra], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)
    script.unlink()
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _within(path: str, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())


def test_setup_cfg_selects_the_strict_editable_mode():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg.get("editable_wheel", "mode") == "strict"
    assert "setup.cfg" in (ROOT / "Makefile").read_text().split("$(VENV)/.installed:", 1)[1].splitlines()[0]


@pytest.mark.timeout(240)
def test_editable_install_from_a_clone_named_snnc(tmp_path):
    clone = _clone(tmp_path)
    py = _venv(tmp_path / "venv")
    _pip_install(py, "-e", str(clone))
    # a module added after the install is found: snnc reads every module from the checkout
    (clone / "ir" / "added_after_install.py").write_text("VALUE = 1\n")
    out = _probe(py, tmp_path, "snnc.ir.added_after_install")
    assert out["convert"] and out["datasets"] == "snnc.core.datasets"
    for name, file in {**out["files"], **out["extra"]}.items():
        assert _within(file, clone), (name, file)
    # the subpackages are read from the checkout's folders, not from the link tree in build/
    assert Path(out["files"]["snnc.ir"]) == clone / "ir" / "__init__.py"
    assert Path(out["extra"]["snnc.ir.added_after_install"]) == clone / "ir" / "added_after_install.py"
    # from the clone's root, where `snnc/` is the package folder itself
    inside = _probe(py, clone)
    assert inside["convert"] and all(_within(f, clone) for f in inside["files"].values())


@pytest.mark.timeout(240)
def test_regular_install_beside_a_clone_named_snnc(tmp_path):
    clone = _clone(tmp_path)
    py = _venv(tmp_path / "venv")
    _pip_install(py, str(clone))
    site = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    out = _probe(py, tmp_path)  # from the parent: the installed copy
    assert out["convert"] and all(_within(f, site / "snnc") for f in out["files"].values()), out["files"]
    inside = _probe(py, clone)  # from the clone's root: the checkout, subpackages included
    assert inside["convert"] and all(_within(f, clone) for f in inside["files"].values()), inside["files"]
    assert not _within(inside["files"]["snnc.ir"], clone / "snnc")  # ir/ beside snnc/, as in the repository


# -- the README's figures come from scripts/readme_figures.py ------------------------------------------
def _figures():
    return load_script("scripts/readme_figures.py")


def test_the_readme_demo_block_is_the_scripts_output():
    fig = _figures()
    readme = (ROOT / "README.md").read_text()
    block = fig.read_block(readme, "demo")
    # it names the machine and the date
    head = " ".join(block.split("```", 1)[0].split())
    assert re.search(r"on a \d+-core .+\(.+\), torch \d+\.\d+\S*", head) and re.search(r"\d{4}-\d{2}-\d{2}", head)
    output = block.split("```\n", 1)[1].split("\n```", 1)[0]
    rows = fig.loihi_rows(output)
    assert len(rows) == 4
    # the prose says what the rows say
    assert block.rstrip().endswith(fig.loihi_prose(rows, fig.n_test_images(output)))
    # the table is the demo's: a row per normalization mode, ANN and every T
    from snnc.demo import MODES, T_VALUES

    header = next(line for line in output.splitlines() if "ANN" in line and "T=" in line)
    assert re.findall(r"T=(\d+)", header) == [str(t) for t in T_VALUES]
    for mode in MODES:
        row = next(line for line in output.splitlines() if re.match(rf"│ {re.escape(mode)}\s", line))
        assert len(re.findall(r"\d+\.\d\d", row)) == 1 + len(T_VALUES)


def test_the_loihi_prose_counts_whole_test_images_and_says_gain_or_cost():
    fig = _figures()
    text = " ".join(fig.loihi_prose({"soft": 99.56, "hard": 99.56, "calibrated": 99.78, "emulation": 99.33},
                                    450).split())
    assert "does) costs nothing with" in text and "gains 0.22 points (1 test image) after" in text
    assert text.endswith("then cost 0.44 points (2 test images).")  # 99.78 - 99.33 rounds to 2 of 450 images


def test_the_speed_block_is_marked_and_rendered_from_benchmark_rows():
    fig = _figures()
    readme = (ROOT / "README.md").read_text()
    assert "| network | snnc |" in fig.read_block(readme, "speed")
    rows = [{"net": net, "method": method, "T": T, "batch": batch, "samples_per_s": sps, "vs_snnc": vs}
            for net, T, batch in (("digits", 32, 256), ("vgg11", 16, 32))
            for method, sps, vs in (("snnc", 1200.0, 1.0), ("snnc-exact", 600.0, 2.0), ("eager", 95.5, 12.57))]
    m = fig.machine()
    table = fig.speed_block(m, rows, 5, None)
    flat = " ".join(table.split())
    assert fig.describe(m) in flat and "median of 5 rounds" in flat
    assert "| digits CNN, T=32, batch 256 | 1200 | 600.0 (2.0x) | 95.5 (12.6x) | n/a | n/a | n/a |" in table
    assert "| VGG-11 (CIFAR shape), T=16, batch 32 |" in table
    # SpikingJelly in its own process is compared with snnc in its own process, not with the shared one
    own = rows + [{"net": "vgg11", "method": "snnc (own process)", "samples_per_s": 1500.0, "vs_snnc": 0.8},
                  {"net": "vgg11", "method": "spikingjelly (own process)", "samples_per_s": 250.0, "vs_snnc": 4.8,
                   "vs_snnc_own": 6.0}]
    assert "| 1500 | 250.0 (6.0x) |" in fig.speed_block(m, own, 5, None)
    own[-1]["vs_snnc_own"] = None  # snnc's own process failed: no ratio rather than one against the shared process
    assert "| 250.0 |" in fig.speed_block(m, own, 5, None) and "(4.8x)" not in fig.speed_block(m, own, 5, None)
    # --write replaces exactly the marked part
    new = fig.replace_block(readme, "speed", table)
    assert fig.read_block(new, "speed") == table
    assert new.replace(table, "") == readme.replace(fig.read_block(readme, "speed"), "")
    with pytest.raises(SystemExit, match="figures:nothing"):
        fig.replace_block(readme, "nothing", table)


def test_machine_names_this_machine():
    import torch

    m = _figures().machine()
    assert m["cpu"] and m["cores"] == os.cpu_count() and m["torch"] == torch.__version__
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", m["date"])


# -- the demo says what it is doing ---------------------------------------------------------------
def _small_digits():
    from snnc.core import datasets

    d = datasets.digits()
    return datasets.Split(d.x_train[:64], d.y_train[:64], d.x_test[:32], d.y_test[:32])


def test_the_demo_shows_progress_for_training_and_the_accuracy_sweep(monkeypatch):
    from snnc import demo

    calls = []

    def spy(items, description, total=None, *, show=None):
        calls.append((description, total, show))
        yield from items

    monkeypatch.setattr(demo, "track", spy)
    small = _small_digits()
    demo.train_digits_cnn(small, epochs=2, progress=True)
    assert calls == [("training the digits CNN (2 epochs)", 2, True)]
    monkeypatch.setattr(demo, "_load_or_train", lambda data, verbose: (demo.DigitsCNN().eval(), 1.5))
    monkeypatch.setattr(demo.datasets, "digits", lambda: small)
    result = demo.run_demo(loihi=False)
    assert calls[1][1] == len(demo.MODES) * len(demo.T_VALUES) and "accuracy" in calls[1][0]
    assert {mode: set(accs) for mode, accs in result["snn"].items()} == {m: set(demo.T_VALUES) for m in demo.MODES}
    assert result["train_s"] == 1.5


def test_the_first_demo_run_says_it_trains_and_how_long_it_took(monkeypatch, tmp_path, capsys):
    from snnc import demo

    monkeypatch.setenv("SNNC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(demo, "train_digits_cnn", lambda data, progress=None: demo.DigitsCNN().eval())
    model, seconds = demo._load_or_train(_small_digits(), verbose=True)
    out = capsys.readouterr().out
    assert "training the digits CNN once: 30 epochs" in out and re.search(r"trained in \d+\.\d s", out)
    assert seconds is not None and len(list(tmp_path.glob("digits_cnn-*.pt"))) == 1
    assert demo._load_or_train(_small_digits(), verbose=True)[1] is None  # cached: no training, no message
    assert "training" not in capsys.readouterr().out
