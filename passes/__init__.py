"""Graph-to-graph passes, the pass registry and named pipelines."""

from snnc.passes import dce as _dce  # noqa: F401 - registers 'dce'
from snnc.passes import fuse_bn as _fuse_bn  # noqa: F401 - registers 'fuse-bn'
from snnc.passes.calibrate import ActivationStats, QuantileSketch, calibrate
from snnc.passes.convert import FixedScale, MaxNorm, Percentile, parse_norm_mode, relu_to_if, to_time_layout
from snnc.passes.dce import dce
from snnc.passes.fuse_bn import fuse_bn, fuse_bn_weights
from snnc.passes.manager import PASSES, PIPELINES, PassManager, parse_pipeline, register_pass

__all__ = ["ActivationStats", "QuantileSketch", "calibrate", "FixedScale", "MaxNorm", "Percentile",
           "parse_norm_mode", "relu_to_if", "to_time_layout", "dce", "fuse_bn", "fuse_bn_weights",
           "PASSES", "PIPELINES", "PassManager", "parse_pipeline", "register_pass"]
