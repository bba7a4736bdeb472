"""Import SpikingJelly's torchvision-style zoo modules where torchvision is not installed (a test helper).

`spikingjelly.activation_based.model.spiking_resnet`, `sew_resnet` and `spiking_vgg` begin with

    try:
        from torchvision.models.utils import load_state_dict_from_url
    except ImportError:
        from torchvision._internally_replaced_utils import load_state_dict_from_url

and use torchvision nowhere else (only `load_state_dict_from_url`, for `pretrained=True`). torchvision's
wheels cannot be installed beside the CPU torch of this repository, so these modules do not import here.
`import_sj_model` imports such a module with stand-in `torchvision`, `torchvision.models`,
`torchvision.models.utils` and `torchvision._internally_replaced_utils` modules in `sys.modules` whose
`load_state_dict_from_url` is `torch.hub.load_state_dict_from_url` (the function torchvision's own
name is), so SJ's real model code runs unchanged.

Scope: the stand-ins are in `sys.modules` only while that one import runs; they are removed (and
anything they replaced restored) before `import_sj_model` returns, so `import torchvision` fails again
everywhere else. The imported SJ module stays imported and keeps working (it holds the function itself).
Where torchvision is importable, or the module imports without it, nothing is stubbed. Only tests use
this; snnc itself never imports torchvision.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager

import torch

STUB_MODULES = ("torchvision", "torchvision.models", "torchvision.models.utils",
                "torchvision._internally_replaced_utils")


def torchvision_importable() -> bool:
    try:
        importlib.import_module("torchvision")
    except ImportError:
        return False
    return True


@contextmanager
def torchvision_stub() -> Iterator[None]:
    """Stand-in torchvision modules in sys.modules for the duration of the block (then removed, and any
    module they replaced put back)."""
    saved = {name: sys.modules[name] for name in STUB_MODULES if name in sys.modules}
    stubs = {}
    for name in STUB_MODULES:
        stub = types.ModuleType(name, "a test stand-in (tests/zoo/torchvision_stub.py): "
                                      "load_state_dict_from_url only")
        stub.__spec__ = importlib.machinery.ModuleSpec(name, None)
        stub.load_state_dict_from_url = torch.hub.load_state_dict_from_url
        stubs[name] = stub
    stubs["torchvision"].__path__ = []  # a package, so that its submodules are found in sys.modules
    stubs["torchvision"].models = stubs["torchvision.models"]
    stubs["torchvision"].models.__path__ = []
    stubs["torchvision.models"].utils = stubs["torchvision.models.utils"]
    stubs["torchvision"]._internally_replaced_utils = stubs["torchvision._internally_replaced_utils"]
    try:
        sys.modules.update(stubs)
        yield
    finally:
        for name in STUB_MODULES:
            if sys.modules.get(name) is stubs[name]:
                del sys.modules[name]
        sys.modules.update(saved)


def import_sj_model(qualname: str) -> types.ModuleType:
    """importlib.import_module(qualname), with the torchvision stand-ins while it runs when the module's
    import fails for want of torchvision alone."""
    try:
        return importlib.import_module(qualname)
    except ImportError as e:
        name = e.name or ""
        if not (name == "torchvision" or name.startswith("torchvision.")) or torchvision_importable():
            raise
    # the first try imported everything the module needs up to its torchvision line; only the rest runs
    # with the stand-ins in place
    with torchvision_stub():
        return importlib.import_module(qualname)
