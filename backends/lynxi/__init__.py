"""The Lynxi-style target: a flattened, static, <= 4-D graph as a torch.export program and an ONNX file.

Time is folded into the batch ([T*N, C, H, W]), neurons are unrolled over a
static T with standard ops, and shapes are fixed for one batch size and T.
See docs/lynxi.md.
"""

from snnc.backends.lynxi.build import LOWERINGS, FlatNet, build
from snnc.backends.lynxi.legalize import MAX_RANK, legalize
from snnc.backends.lynxi.lower import lower
from snnc.backends.lynxi.options import Options
from snnc.backends.lynxi.runner import Runner

__all__ = ["Options", "legalize", "lower", "LOWERINGS", "FlatNet", "build", "MAX_RANK", "Runner"]
