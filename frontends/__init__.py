"""Frontends: each turns one kind of model into an `snnc.ir.Graph`.

`trace` reads a PyTorch module with torch.fx; `load` reads anything snnc
knows (a module, a torch.export program, an ONNX model, a NIR graph, or a
file of any of these, recognised by its content).
"""

from snnc.frontends.loader import KNOWN_KINDS, load, load_model
from snnc.frontends.torch_fx import trace

__all__ = ["trace", "load", "load_model", "KNOWN_KINDS"]
