"""Graph-to-graph passes, the pass registry and named pipelines.

The functions other parts build on:

    assign_layout(graph, Layout.TN)   every timed tensor in one layout, LayoutCasts inserted/cancelled
    cancel_casts(graph)               drop no-op casts, compose chains of casts
    fold_scales(graph)                fold Scale ops into weights, biases and thresholds
    fuse(graph)                       record fusion groups in graph.meta["fusion_groups"/"fusion_kinds"]
    hoist_constant_input(graph)       constant input: stateless prefix in NX, computed once
    convert_graph(graph, context)     PIPELINES["convert"]: calibrate, normalize, relu-to-if, ... as passes
    reorder_maxpool / running_maxpool max pooling that converges after conversion (passes/maxpool.py)
"""

from snnc.passes import dce as _dce  # noqa: F401 - registers 'dce'
from snnc.passes import fuse_bn as _fuse_bn  # noqa: F401 - registers 'fuse-bn'
from snnc.passes.bias_correction import correct_biases
from snnc.passes.calibrate import ActivationStats, ChannelSketch, QuantileSketch, calibrate
from snnc.passes.context import ConversionContext, ConversionOptions, conversion_context
from snnc.passes.convert import convert_graph, normalize, relu_to_if, to_time_layout
from snnc.passes.norm_modes import FixedScale, MaxNorm, MinError, NormMode, Percentile, parse_norm_mode
from snnc.passes.cleanup import fold_constants, remove_identities
from snnc.passes.dce import dce
from snnc.passes.distributed import all_reduce_stats, calibrate_distributed
from snnc.passes.fold_scales import fold_scales
from snnc.passes.fuse import fuse
from snnc.passes.fuse_bn import fuse_bn, fuse_bn_weights
from snnc.passes.hoist import hoist_constant_input
from snnc.passes.maxpool import reorder_maxpool, running_maxpool
from snnc.passes.layout import TARGET_LAYOUTS, assign_layout, cancel_casts
from snnc.passes.manager import (PASSES, PIPELINES, PassManager, PassSpec, conversion_pipeline, parse_pipeline,
                                 register_pass)

__all__ = ["ActivationStats", "ChannelSketch", "QuantileSketch", "calibrate", "correct_biases",
           "ConversionContext", "ConversionOptions", "conversion_context", "convert_graph", "normalize",
           "FixedScale", "MaxNorm", "MinError", "NormMode", "Percentile",
           "parse_norm_mode", "relu_to_if", "to_time_layout", "dce", "fuse_bn", "fuse_bn_weights",
           "fold_scales", "assign_layout", "cancel_casts", "TARGET_LAYOUTS", "fold_constants", "remove_identities",
           "all_reduce_stats", "calibrate_distributed", "fuse",
           "hoist_constant_input", "reorder_maxpool", "running_maxpool",
           "PASSES", "PIPELINES", "PassManager", "PassSpec", "conversion_pipeline", "parse_pipeline", "register_pass"]


def _register_all() -> None:
    """Import every other pass module of this package so its passes are registered (a target's own passes
    are registered by its package, snnc.backends.register_passes); a module that fails to import is reported,
    not fatal."""
    import importlib
    import pkgutil
    import warnings

    for info in pkgutil.iter_modules(__path__):
        name = f"{__name__}.{info.name}"
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - one broken pass module must not break the others
            warnings.warn(f"pass module {name} failed to import: {type(e).__name__}: {e}", stacklevel=2)


_register_all()
