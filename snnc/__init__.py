"""snnc: a compiler for spiking neural networks.

    graph = snnc.convert(model, calibration_data, mode="99.9%")   # ANN -> SNN IR
    artifact = snnc.compile(graph, target="cpu", output="out/")    # lower to a target
    session = snnc.load("out/")                                     # run it
    outputs = session.run(x, T=32)                                  # the last layer's values, [T, N, *]
"""

import os
import sys
from importlib.machinery import PathFinder
from pathlib import Path

from snnc.core import __version__

_API = {"convert", "compile", "load", "trace"}

# The subpackages that live in the folders beside snnc/ in a checkout (pyproject.toml's package-dir).
_CHECKOUT_SUBPACKAGES = ("ir", "frontends", "passes", "backends", "runtime")


class _CheckoutFinder:
    """Finds `snnc.ir`, `snnc.passes`, ... in the folders beside snnc/ of a source checkout."""

    def __init__(self, root: Path):
        self.root = str(root)

    def find_spec(self, fullname, path=None, target=None):
        parent, _, name = fullname.partition(".")
        if parent == __name__ and name in _CHECKOUT_SUBPACKAGES:
            return PathFinder.find_spec(fullname, [self.root])
        return None


def _use_checkout() -> None:
    # An install (`pip install .`) copies ir/, passes/, ... under snnc/. In a checkout they are
    # beside it: snnc/ is then imported from the checkout (cwd on sys.path) or through the
    # link tree of the editable install (setup.cfg), and both read every module from the
    # checkout, so a module added since the install is found too.
    here = Path(__file__).resolve().parent
    if (here / "ir").is_dir() or not (here.parent / "ir" / "__init__.py").is_file():
        return
    __path__[:] = [str(here)]
    if not any(isinstance(f, _CheckoutFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _CheckoutFinder(here.parent))


_use_checkout()


def _passive_openmp() -> None:
    # torch's OpenMP workers spin on their cores for a while after each parallel op (libgomp's
    # default wait policy). snnc's native kernels run on threads of their own (runtime/native.py)
    # right after such ops, and on a small machine they then share the cores with spinning
    # workers: VGG-11 on 2 cores ran 1.3x slower, a batch-1 Session.step 10x. libgomp reads the
    # policy once, when torch loads it, so it is set here, before snnc imports torch; a value
    # the user set is kept, and a process that imported torch first keeps torch's default
    # (docs/runtime.md).
    global OPENMP_POLICY_SET
    if "torch" not in sys.modules and "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        OPENMP_POLICY_SET = True


OPENMP_POLICY_SET = False  # whether this import set OMP_WAIT_POLICY (benchmarks time others without it)
_passive_openmp()


def __getattr__(name: str):
    # The API pulls in torch, the frontends, passes and backends: import it on first use only,
    # so importing a submodule (snnc.core for `snnc --help`) stays light.
    if name in _API:
        from snnc import api

        return getattr(api, name)
    raise AttributeError(f"module 'snnc' has no attribute {name!r}")
