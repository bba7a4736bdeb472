"""The README's command-line tour runs as written (a new user compiles the digits model for every target)."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def tour_commands() -> list[str]:
    text = README.read_text()
    block = text.split("### Command line", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip().startswith("snnc ")]


def test_the_tour_lists_every_target():
    cmds = " ".join(tour_commands())
    for target in ("lynxi", "lava", "nir", "triton"):
        assert f"--target {target}" in cmds
    assert "snnc report" in cmds and "snnc run" in cmds and "snnc inspect" in cmds


@pytest.mark.timeout(900)
def test_every_tour_command_succeeds(tmp_path):
    py = [sys.executable, "-m", "snnc.cli"]
    r = subprocess.run([*py, "demo", "--out", "out/demo", "--no-loihi"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    for cmd in tour_commands():
        args = shlex.split(cmd)[1:]
        r = subprocess.run([*py, *args], cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"{cmd}\n{r.stdout}\n{r.stderr}"
        if args[0] == "compile":
            out = Path(tmp_path, args[args.index("-o") + 1])
            assert (out / "manifest.json").is_file(), cmd
    assert re.search(r"report\.html", " ".join(tour_commands())) is None  # the folder is what users give
    assert (tmp_path / "out/report/report.html").is_file() and (tmp_path / "out/outputs.npz").is_file()
