"""The README's tour runs as written, from a folder outside the clone, as a new user would run it.

The command-line block runs line by line in bash, with the `snnc` of this interpreter's venv on the PATH,
after the Makefile's `make demo` command (`snnc demo --out out/demo`). Each ```python block runs on its own
in a new interpreter. Both run in a temporary folder, so neither can lean on the clone's files.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent


def tour_block() -> list[str]:
    """The lines of the tour's shell block, as written."""
    text = README.read_text()
    block = text.split("### Command line", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def tour_commands() -> list[str]:
    return [line.split("#", 1)[0].strip() for line in tour_block()]


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", README.read_text(), re.S | re.M)


def demo_command() -> str:
    """What `make demo` runs, with the venv's bin folder left to the PATH."""
    recipe = (ROOT / "Makefile").read_text().split("\ndemo:", 1)[1].split("\n\t", 1)[1].split("\n", 1)[0]
    return recipe.replace("$(VENV)/bin/", "")


def _outside_the_clone(path: Path) -> Path:
    assert not path.resolve().is_relative_to(ROOT.resolve()), path
    return path


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_the_tour_lists_every_target():
    cmds = " ".join(tour_commands())
    for target in ("lynxi", "lava", "nir", "triton"):
        assert f"--target {target}" in cmds
    assert "snnc report" in cmds and "snnc run" in cmds and "snnc inspect" in cmds
    assert all(cmd.startswith("snnc ") for cmd in tour_commands())
    assert re.search(r"report\.html", " ".join(tour_commands())) is None  # the folder is what users give


def test_make_demo_writes_what_the_tour_reads():
    cmd = shlex.split(demo_command())
    assert cmd[:2] == ["snnc", "demo"] and cmd[cmd.index("--out") + 1] == "out/demo"
    assert "out/demo/" in " ".join(tour_commands())


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_tour_runs_verbatim_outside_the_clone(tmp_path):
    assert (BIN / "snnc").is_file(), f"no snnc script beside {sys.executable}: is snnc installed?"
    bash = shutil.which("bash")
    cwd = _outside_the_clone(tmp_path)
    env = _env()
    for line in [demo_command(), *tour_block()]:
        r = subprocess.run([bash, "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"{line}\n{r.stdout}\n{r.stderr}"
        args = shlex.split(line.split("#", 1)[0])
        if args[1] == "compile":
            assert (cwd / args[args.index("-o") + 1] / "manifest.json").is_file(), line
    assert (cwd / "out/report/report.html").is_file() and (cwd / "out/outputs.npz").is_file()


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("block", python_blocks(), ids=[f"block{i + 1}" for i in range(len(python_blocks()))])
def test_each_python_snippet_runs_as_written(tmp_path, block):
    cwd = _outside_the_clone(tmp_path)
    r = subprocess.run([sys.executable, "-c", block], cwd=cwd, env=_env(), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, f"{block}\n{r.stdout}\n{r.stderr}"
    if "print(graph)" in block:
        assert r.stdout.startswith("graph "), r.stdout[:200]


def test_the_readme_has_python_snippets():
    assert len(python_blocks()) >= 2 and all("import snnc" in b for b in python_blocks())
