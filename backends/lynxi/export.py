"""Write the lowered network as a torch.export program and an ONNX file, and check both.

The checks are the chip's rules applied to what was written, so a violation
is a compile-time LoweringError: every tensor at most 4-D with static dims,
no in-place ops, and a valid ONNX model.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from snnc.backends.lynxi.f16_rounding import spell_float16_rounding
from snnc.backends.lynxi.legalize import MAX_RANK
from snnc.core.errors import LoweringError


def export_program(net: nn.Module, example: tuple[torch.Tensor, ...], path: Path) -> torch.export.ExportedProgram:
    """torch.export the network (what Lynxi's compiler consumes) and save it to `path` (.pt2)."""
    with torch.no_grad():
        try:
            ep = torch.export.export(net, example, strict=False)
        except Exception as e:  # noqa: BLE001 - a lowering bug must still name the target
            raise LoweringError(f"torch.export failed on the lowered network: {type(e).__name__}: {e}") from e
    check_program(ep)
    torch.export.save(ep, path)
    return ep


def export_onnx(net: nn.Module, example: tuple[torch.Tensor, ...], path: Path, input_names: list[str],
                output_names: list[str], opset: int) -> None:
    """Export the same network to ONNX with static shapes, spell out its float16 rounding, check the file."""
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # the TorchScript exporter is deprecated, but the dynamo one needs onnxscript (not a dependency)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            torch.onnx.export(net, example, str(path), dynamo=False, input_names=input_names,
                              output_names=output_names, opset_version=opset, do_constant_folding=True,
                              # PRESERVE (the module is in eval mode) skips the exporter's Conv+BatchNorm
                              # fusion: the file keeps the lowered graph's ops and their rounding
                              training=torch.onnx.TrainingMode.PRESERVE)
    except Exception as e:  # noqa: BLE001
        raise LoweringError(f"ONNX export of the lowered network failed: {type(e).__name__}: {e}",
                            hint="the legacy exporter may be gone from this torch; install onnxscript") from e
    import onnx

    onnx.save(spell_float16_rounding(onnx.load(str(path))), str(path))
    check_onnx(path)


def check_program(ep: torch.export.ExportedProgram) -> None:
    """Every value of the exported graph is a <= 4-D tensor of static shape, and nothing is mutated in place."""
    problems: list[str] = []
    sig = ep.graph_signature
    if getattr(sig, "buffers_to_mutate", None) or getattr(sig, "user_inputs_to_mutate", None):
        problems.append("the program mutates its buffers or inputs")
    for node in ep.graph.nodes:
        if node.op == "call_function" and getattr(node.target, "_schema", None) is not None \
                and node.target._schema.is_mutable:
            problems.append(f"{node.name}: in-place op {node.target}")
        vals = node.meta.get("val")
        for v in vals if isinstance(vals, (tuple, list)) else (vals,):
            if isinstance(v, torch.Tensor):
                if v.dim() > MAX_RANK:
                    problems.append(f"{node.name}: a {v.dim()}-D tensor {list(v.shape)}")
                if not all(isinstance(d, int) for d in v.shape):
                    problems.append(f"{node.name}: dynamic shape {list(v.shape)}")
    if problems:
        raise LoweringError("the exported program breaks the chip's rules:\n  " + "\n  ".join(problems[:20]))


def onnx_value_shapes(model) -> dict[str, list]:
    """name -> dims (ints, or strings for symbolic/unknown dims) of every tensor value, after shape inference."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    g = inferred.graph
    shapes: dict[str, list] = {}
    for vi in [*g.input, *g.value_info, *g.output]:
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            shapes[vi.name] = ["?unknown-rank"]
            continue
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim]
    for init in g.initializer:
        shapes.setdefault(init.name, list(init.dims))
    return shapes


def check_onnx(path: Path) -> None:
    """onnx.checker passes, and every value is at most 4-D with static dims."""
    import onnx

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        shapes = onnx_value_shapes(model)
    except Exception as e:  # noqa: BLE001 - onnx raises its own ValidationError/InferenceError types
        raise LoweringError(f"the written ONNX model is invalid: {type(e).__name__}: {e}") from e
    produced = {o for n in model.graph.node for o in n.output} | {i.name for i in model.graph.input}
    problems = [f"{name}: {dims}" for name, dims in shapes.items()
                if len(dims) > MAX_RANK or not all(isinstance(d, int) and d > 0 for d in dims)]
    problems += [f"{name}: no inferred shape" for name in sorted(produced - set(shapes)) if name]
    if problems:
        raise LoweringError("the ONNX model has values the chip cannot hold (rank > 4 or not static):\n  "
                            + "\n  ".join(problems[:20]))
