"""The installed package layout matches the folders (ARCHITECTURE.md)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAPPING = {"snnc": "snnc", "snnc.ir": "ir", "snnc.frontends": "frontends", "snnc.passes": "passes",
           "snnc.backends": "backends", "snnc.runtime": "runtime"}


def test_every_package_folder_is_listed_in_pyproject():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(cfg["tool"]["setuptools"]["packages"])
    found = set()
    for pkg, folder in MAPPING.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([pkg, *rel.parts]) if rel.parts else pkg)
    assert found == listed, f"missing from pyproject: {found - listed}; listed but absent: {listed - found}"


def test_subpackages_import_under_snnc():
    import snnc.backends.cpu
    import snnc.frontends
    import snnc.ir
    import snnc.passes
    import snnc.runtime

    assert snnc.ir.__name__ == "snnc.ir" and snnc.runtime.__file__.endswith("runtime/__init__.py")


def test_the_wheel_holds_every_module_and_the_c_sources(tmp_path):
    """The C kernels are package data (pyproject's package-data): a wheel without them has no native runtime."""
    import shutil
    import subprocess
    import sys
    import zipfile

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.cfg", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in set(MAPPING.values()):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("snnc-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for pkg, folder in MAPPING.items():
        for f in (ROOT / folder).rglob("*"):
            if f.suffix in (".py", ".c") and "__pycache__" not in f.parts:
                expected.add("/".join([*pkg.split("."), *f.relative_to(ROOT / folder).parts]))
    assert {"snnc/runtime/native.c", "snnc/runtime/event_conv.c"} <= expected
    assert expected - names == set()
