"""Harness of the `lava`-marked tests: they run under the Lava environment's Python (make test-lava).

Outside that environment every test here skips. In the light environment (no
torch, see scripts/lava_env.sh) `lava.lib.dl.netx` still imports torch in two
places that a CUBA network never executes: `sequential_modules` (annotations
and an `is_tensor` check) and the RF-neuron helper `slayer.neuron.rf`. Only
when `import torch` fails, this file puts minimal stand-ins for exactly those
into sys.modules; an RF network would fail loudly through the stand-in.
Everything netx and Lava compute stays real.

The snnc side (compiling, emulating) runs in snnc's own environment, found as
$SNNC_PYTHON or .venv/bin/python, through tests/lava/snnc_side.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _install_torch_free_shim() -> None:
    try:
        import torch  # noqa: F401
        return
    except ImportError:
        pass
    torch = types.ModuleType("torch")
    torch.__doc__ = "stand-in for lava.lib.dl.netx's optional torch imports (tests/lava/conftest.py)"
    torch.tensor = type("tensor", (), {})
    torch.is_tensor = lambda x: False
    sys.modules["torch"] = torch

    def rf_params(*args, **kwargs):
        raise RuntimeError("RF neurons need lava-dl's slayer (scripts/lava_env.sh --full)")

    for name in ("lava.lib.dl.slayer", "lava.lib.dl.slayer.neuron", "lava.lib.dl.slayer.neuron.rf"):
        mod = types.ModuleType(name)
        mod.neuron_params = rf_params
        sys.modules[name] = mod


def lava_or_skip():
    """Import lava's netx (with the shim in the light environment) or skip."""
    pytest.importorskip("lava.magma", reason="needs the Lava environment: make test-lava")
    _install_torch_free_shim()
    return pytest.importorskip("lava.lib.dl.netx")


def slayer_or_skip():
    lava_or_skip()
    try:
        import torch

        if not hasattr(torch, "nn"):
            raise ImportError
        from lava.lib.dl import slayer
    except ImportError:
        pytest.skip("needs lava-dl's slayer with torch: scripts/lava_env.sh --full")
    return slayer


@pytest.fixture(scope="session")
def snnc_python() -> str:
    py = os.environ.get("SNNC_PYTHON") or str(ROOT / ".venv" / "bin" / "python")
    if not Path(py).is_file():
        pytest.skip(f"snnc's Python {py} not found (run make setup or set SNNC_PYTHON)")
    return py


@pytest.fixture(scope="session")
def snnc_side(snnc_python):
    """snnc_side(command, *args): run tests/lava/snnc_side.py in snnc's environment."""

    def call(*args: str) -> str:
        r = subprocess.run([snnc_python, str(Path(__file__).with_name("snnc_side.py")), *map(str, args)],
                           capture_output=True, text=True, timeout=600, cwd=ROOT)
        assert r.returncode == 0, f"snnc side failed:\n{r.stdout}\n{r.stderr}"
        return r.stdout

    return call
