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
