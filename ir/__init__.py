"""The typed SNN intermediate representation."""

from snnc.ir.graph import Graph
from snnc.ir.ops import *  # noqa: F401,F403
from snnc.ir.ops import __all__ as _ops_all
from snnc.ir.printer import print_graph
from snnc.ir.serialize import SNNIR_FORMAT_VERSION, load, save
from snnc.ir.types import DType, Layout, TensorType
from snnc.ir.verify import verify

__all__ = ["Graph", "DType", "Layout", "TensorType", "verify", "print_graph", "save", "load",
           "SNNIR_FORMAT_VERSION", *_ops_all]
