"""ONNX frontend: read an `.onnx` model (an ANN) into an IR graph.

Supported operators: Conv (1-D and 2-D), Gemm, MatMul (+ Add of a bias, or of
two values), BatchNormalization, LayerNormalization, Relu, Clip, Softmax,
AveragePool (1-D and 2-D), MaxPool, GlobalAveragePool, ReduceMean, Flatten,
Reshape, Transpose, Squeeze, Unsqueeze, Add, Sub, Mul, Div, Neg, Concat,
Identity, Dropout and Constant (docs/ops.md). Nodes over constants only (a transposed
weight) are evaluated at import with onnx's reference evaluator; the shape
arithmetic of `x.view(x.size(0), -1)` (Shape -> Gather -> Unsqueeze -> Concat)
(with Slice and the size arithmetic Div/Mul/Add/Sub) is followed symbolically, other run-time Reshape targets come from onnx
shape inference. The operator handlers are in `snnc.frontends.onnx_ops`.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from snnc.core.errors import MalformedFileError, UnsupportedAttributeError, UnsupportedOpError, one_line
from snnc.core.limits import check_tensor
from snnc.frontends import onnx_ops  # noqa: F401 - registers the operator handlers
from snnc.frontends import onnx_tensor_ops  # noqa: F401 - and the tensor/layout operators (extending some)
from snnc.frontends import onnx_tensors
from snnc.frontends.attention import check_attention, emit_self_attention
from snnc.frontends.onnx_lowering import HANDLERS, SHAPE_OPS, _Const, _Ctx, _Opaque, _Refused, _ShapeVec, supported_ops
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.ops import SourceLoc
from snnc.ir.types import Layout, TensorType
from snnc.ir.verify import verify


def load_onnx(path: str | os.PathLike, *, name: str | None = None) -> Graph:
    """Read an `.onnx` file (with its external data, if any)."""
    p = Path(path)
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf DecodeError and friends
        raise MalformedFileError(f"{p}: not a readable ONNX model (truncated or not protobuf): "
                                 f"{type(e).__name__}: {str(e)[:200]}") from None
    if not model.graph.node and not model.graph.output:
        raise MalformedFileError(f"{p}: the ONNX model has an empty graph (wrong file, or truncated)")
    onnx_tensors.validate(model, str(p))  # claimed sizes, before reading any external data
    onnx_tensors.load_external_data(model, p.parent, str(p))  # only files inside the model's folder
    return from_onnx_model(model, name=name or p.stem, source=str(p))


def _inferred_shapes(model: onnx.ModelProto) -> dict[str, list]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # noqa: BLE001 - shape inference is a help, not a requirement
        return {}
    out = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        tt = vi.type.tensor_type
        if tt.HasField("shape"):
            out[vi.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim]
    return out


def from_onnx_model(model: onnx.ModelProto, *, name: str = "main", source: str = "ONNX model") -> Graph:
    """Lower an ONNX ModelProto into an IR graph with a symbolic batch dim."""
    g = model.graph
    onnx_tensors.validate(model, source)
    external = [w for w, t in onnx_tensors.all_tensors(model) if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise MalformedFileError(f"{source}: {external[0]} still refers to external data",
                                 hint="read the model with snnc.frontends.onnx.load_onnx(path), which loads its "
                                      "external data from the model's folder")
    graph = Graph(name)
    ctx = _Ctx(graph, source, _inferred_shapes(model))
    for init in g.initializer:
        try:
            ctx.values[init.name] = _Const(numpy_helper.to_array(init), init.name)
        except Exception as e:  # noqa: BLE001 - raw data of the wrong size, unknown dtype
            raise MalformedFileError(f"{source}: initializer '{init.name}' cannot be read: {e}") from None
    for vi in g.input:
        if vi.name not in ctx.values:
            ctx.values[vi.name] = _input(ctx, vi)
    done: set[int] = set()  # the nodes of a module lowered whole (nn.MultiheadAttention), by index
    paths = [_attention_path(node) for node in g.node]
    for i, node in enumerate(g.node):
        if i in done:
            continue
        if paths[i] is None:
            _lower(ctx, node)
        else:
            done |= _attention(ctx, g, paths, paths[i])
    outs = list(g.output)
    if not outs:
        raise MalformedFileError(f"{source}: the graph has no outputs")
    for i, vi in enumerate(outs):
        if vi.name not in ctx.values:
            raise MalformedFileError(f"{source}: graph output '{vi.name}' is not produced by any node")
        v = ctx.values[vi.name]
        if isinstance(v, _Refused):
            raise UnsupportedOpError(f"{source}: graph output '{vi.name}' is {v.what}, which snnc does not represent")
        if not isinstance(v, str):
            raise UnsupportedOpError(f"{source}: graph output '{vi.name}' is a constant or a shape, not a value "
                                     "computed from the inputs")
        graph.add(ops.Output(name=graph.fresh_name("out" if len(outs) == 1 else vi.name), inputs=(v,)))
    onnx_tensor_ops.fuse_silu(graph)
    graph.drop_unused_params()
    return verify(graph)


_MHA = "torch.nn.modules.activation.MultiheadAttention"
# what the dynamo exporter writes for eval-mode self-attention without masks (plus its shape arithmetic)
_ATTENTION_OPS = {"Add", "Concat", "Gather", "Gemm", "MatMul", "Mul", "Reshape", "Shape", "Slice", "Softmax", "Squeeze",
                  "Transpose", "Unsqueeze", "Cast"}


def _attention_path(node: onnx.NodeProto) -> str | None:
    """The module path of the innermost nn.MultiheadAttention a dynamo-exported node came from (the exporter's
    'pkg.torch.onnx.class_hierarchy' and 'name_scopes' metadata), or None."""
    meta = {p.key: p.value for p in node.metadata_props}
    if _MHA not in meta.get("pkg.torch.onnx.class_hierarchy", ""):
        return None
    try:
        classes = ast.literal_eval(meta["pkg.torch.onnx.class_hierarchy"])
        scopes = ast.literal_eval(meta["pkg.torch.onnx.name_scopes"])
    except (KeyError, ValueError, SyntaxError):
        return None
    hits = [i for i, c in enumerate(classes) if c == _MHA and i < len(scopes)]
    return str(scopes[hits[-1]]) if hits else None


def _attention(ctx: _Ctx, g: onnx.GraphProto, paths: list[str | None], path: str) -> set[int]:
    """Lower the nodes of one nn.MultiheadAttention whole (the exporter folds the batch into the heads, which
    no IR op does): its input, weights and heads in, the IR ops of snnc.frontends.attention out."""
    where = f"torch.nn.MultiheadAttention at '{path}' in {ctx.source}"
    idx = [i for i, p in enumerate(paths) if p == path]
    region = [g.node[i] for i in idx]
    made = {o for n in region for o in n.output}
    read = [v for n in region for v in n.input if v and v not in made]
    values = sorted({v for v in read if isinstance(ctx.values.get(v), str)})
    used_outside = {v for n, p in zip(g.node, paths) if p != path for v in n.input} | {o.name for o in g.output}
    outs = [o for o in made if o in used_outside]

    def refuse(why: str) -> UnsupportedOpError:
        return UnsupportedOpError(f"{where}: {why}", hint="snnc reads eval-mode self-attention (one input, "
                                  "batch_first=True, no masks, need_weights=False) as torch.onnx.export writes it")

    if len(values) != 1 or len(outs) != 1:
        raise refuse(f"{len(values)} inputs and {len(outs)} used outputs (self-attention has one of each)")
    x = values[0]
    feats = tuple(ctx.type_of(ctx.values[x]).features)
    if len(feats) != 2:
        raise refuse(f"it attends over features {list(feats)}; snnc needs tokens [L, E]")
    dim = feats[1]
    in_w = in_b = out_w = out_b = None
    softmax = [n for n in region if n.op_type == "Softmax"]
    for n in region:
        consts = [ctx.values.get(v) for v in n.input]
        if n.op_type == "MatMul" and isinstance(consts[1], _Const) and consts[1].array.shape == (dim, 3 * dim):
            in_w = np.ascontiguousarray(consts[1].array.T)
        elif n.op_type == "Add" and any(isinstance(c, _Const) and c.array.shape == (3 * dim,) for c in consts):
            in_b = next(c.array for c in consts if isinstance(c, _Const))
        elif n.op_type in ("Gemm", "MatMul") and isinstance(consts[1], _Const) and consts[1].array.shape == (dim, dim):
            trans = n.op_type == "Gemm" and any(a.name == "transB" and a.i for a in n.attribute)
            out_w = consts[1].array if trans else np.ascontiguousarray(consts[1].array.T)
            out_b = consts[2].array if len(consts) > 2 and isinstance(consts[2], _Const) else None
    if in_w is None or out_w is None or len(softmax) != 1:
        raise refuse("its packed in-projection, out-projection or one softmax is not where the exporter writes them")
    scores = ctx.shapes.get(softmax[0].input[0]) or []
    heads = scores[1] if len(scores) == 4 and isinstance(scores[1], int) else None
    if heads is None:
        raise refuse("the number of heads cannot be read from the softmax's inferred shape")
    # nothing else may change the result: no mask (an Add or Where), no custom scale, no dropout
    other = sorted({n.op_type for n in region} - _ATTENTION_OPS)
    if other:
        raise refuse(f"it holds {', '.join(other)} (a mask or dropout?), which plain self-attention does not")
    known = [a for a in (in_w.T, in_b, out_w, out_b) if a is not None]
    for n in region:
        for v in n.input:
            c = ctx.values.get(v)
            if not isinstance(c, _Const) or not np.issubdtype(c.array.dtype, np.floating):
                continue
            scale = c.array.size == 1 and n.op_type == "Mul" and \
                abs(float(c.array.reshape(-1)[0]) - (dim // heads) ** -0.25) < 1e-6
            if not scale and not any(c.array.shape == a.shape and np.array_equal(c.array, a) for a in known):
                raise refuse(f"node '{n.name}' ({n.op_type}) reads the constant '{c.name}' "
                             f"{list(c.array.shape)}, which is none of its projections (a mask or a custom scale?)")
        if n.op_type == "Add" and not any(isinstance(ctx.values.get(v), _Const) for v in n.input):
            raise refuse(f"node '{n.name}' (Add) adds two computed values (a mask?)")
    if why := check_attention(heads, dim, feats, where):
        raise refuse(why)
    loc = SourceLoc(module_path=path, module_type="torch.nn.MultiheadAttention")

    def tensor(a):
        return None if a is None else torch.from_numpy(np.array(a, dtype=np.float32, copy=True))

    def param(suffix: str, t: torch.Tensor) -> str:
        return ctx.param_once((path, suffix), f"{path}.{suffix}", lambda: t)

    ctx.values[outs[0]] = emit_self_attention(ctx.emit, ctx.graph.fresh_name, param, ctx.values[x], feats, heads,
                                              tensor(in_w), tensor(in_b), tensor(out_w), tensor(out_b), loc,
                                              path.replace(".", "_"))
    return set(idx)


def _input(ctx: _Ctx, vi: onnx.ValueInfoProto) -> str:
    tt = vi.type.tensor_type
    if tt.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE):
        raise UnsupportedAttributeError(f"{ctx.source}: input '{vi.name}' has element type "
                                        f"{onnx.TensorProto.DataType.Name(tt.elem_type)}; snnc reads float inputs")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
    if len(dims) < 2 or any(d is None for d in dims[1:]):
        raise UnsupportedAttributeError(f"{ctx.source}: input '{vi.name}' has shape {dims}; snnc needs "
                                        "[batch, *static feature dims]")
    return ctx.emit(ops.Input(name=ctx.graph.fresh_name(vi.name), type=TensorType(shape=("N", *dims[1:]),
                                                                                 layout=Layout.NX)))


def _loc(node: onnx.NodeProto) -> SourceLoc:
    """The module path the exporter encoded in the node name ('/stem/stem.0/Conv' -> 'stem.0'), best effort."""
    parts = [p for p in node.name.split("/") if p]
    return SourceLoc(module_path=parts[-2] if len(parts) >= 2 else "", module_type=f"onnx.{node.op_type}")


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif a.type == onnx.AttributeProto.FLOAT:
            v = float(str(np.float32(v)))  # ONNX floats are float32: 1e-5 is stored as 9.9999997e-06
        out[a.name] = v
    return out


def _lower(ctx: _Ctx, node: onnx.NodeProto) -> None:
    ins = []
    for name in node.input:
        if name == "":
            ins.append(None)  # an omitted optional input
        elif name not in ctx.values:
            raise MalformedFileError(f"{ctx.where(node)} reads tensor '{name}', which is neither a graph input, "
                                     "an initializer nor the output of an earlier node (missing tensor, or the "
                                     "nodes are not in topological order)")
        else:
            ins.append(ctx.values[name])
    if node.domain not in ("", "ai.onnx"):
        raise UnsupportedOpError(f"{ctx.where(node)} is from operator domain '{node.domain}'",
                                 hint=f"supported operators (default domain): {supported_ops()}")
    attrs = _attrs(node)
    present = [v for v in ins if v is not None]
    if node.op_type == "Constant":
        outs = [_constant(ctx, node, attrs)]
    elif present and all(isinstance(v, _Const) for v in present):
        outs = _fold(ctx, node, ins)
    elif node.op_type == "Shape" or node.op_type in SHAPE_OPS and \
            any(isinstance(v, (_Opaque, _ShapeVec)) for v in present) and \
            not (node.op_type == "Slice" and isinstance(ins[0], str)):  # a Slice of a value, bounds from shapes
        outs = [_shape_op(ctx, node, ins, attrs)]
    else:
        handler = HANDLERS.get(node.op_type)
        if handler is None:
            raise UnsupportedOpError(f"{ctx.where(node)} is not supported",
                                     hint=f"supported operators: {supported_ops()}")
        try:
            outs = handler(ctx, node, ins, attrs, _loc(node))
        except (IndexError, KeyError, TypeError, ValueError) as e:  # too few inputs, bad attribute types
            raise MalformedFileError(f"{ctx.where(node)} is malformed: {type(e).__name__}: {one_line(e)}") from None
    for name, v in zip(node.output, outs):
        if name:
            ctx.values[name] = v


def _shape_op(ctx: _Ctx, node: onnx.NodeProto, ins: list, attrs: dict) -> Any:
    """Follow the shape arithmetic of `x.view(x.size(0), -1)` (Shape -> Gather -> Unsqueeze -> Concat)."""
    op = node.op_type

    def vec(v):
        if isinstance(v, _ShapeVec):
            return v
        if isinstance(v, _Const) and v.array.dtype.kind in "iu" and v.array.ndim <= 1:
            return _ShapeVec(tuple(int(d) for d in v.array.reshape(-1)), v.array.ndim == 0)
        return None

    if op == "Shape" and isinstance(ins[0], str):
        dims = ("N", *ctx.type_of(ins[0]).features)
        return _ShapeVec(dims[attrs.get("start", 0):attrs.get("end", len(dims))])
    args = [vec(v) for v in ins if v is not None]
    if any(a is None for a in args):
        return _Opaque()
    if op == "Gather" and attrs.get("axis", 0) == 0 and not args[0].scalar:
        idx = args[1]
        picked = tuple(args[0].dims[i] for i in idx.dims)
        return _ShapeVec(picked, idx.scalar)
    if op == "Unsqueeze" and args[0].scalar:
        return _ShapeVec(args[0].dims)
    if op == "Squeeze" and len(args[0].dims) == 1:
        return _ShapeVec(args[0].dims, True)
    if op == "Concat" and attrs.get("axis", 0) == 0 and not any(a.scalar for a in args):
        return _ShapeVec(tuple(d for a in args for d in a.dims))
    if op == "Cast":
        return args[0]
    if op == "Slice" and len(ins) >= 3 and not args[0].scalar:  # x.shape[1:2] (opset >= 10: inputs)
        parts = [vec(v) if v is not None else None for v in ins[1:5]]
        starts, ends = parts[0].dims, parts[1].dims
        axes = parts[2].dims if len(parts) > 2 and parts[2] is not None else (0,)
        steps = parts[3].dims if len(parts) > 3 and parts[3] is not None else (1,)
        if len(starts) == len(ends) == 1 and tuple(axes) == (0,) and steps[0] != 0:
            big = 2**62  # INT64_MAX ("to the end") and friends, as Python's slice takes them
            return _ShapeVec(args[0].dims[slice(max(min(starts[0], big), -big), max(min(ends[0], big), -big),
                                                steps[0])])
    if op in _SIZE_ARITH and len(args) == 2 and all(isinstance(d, int) for a in args for d in a.dims) \
            and (len(args[0].dims) == len(args[1].dims) or 1 in (len(args[0].dims), len(args[1].dims))):
        a, b = args  # sizes computed from feature sizes (channels // groups); the batch "N" stays opaque
        n = max(len(a.dims), len(b.dims))
        pick = (lambda v, i: v.dims[0] if len(v.dims) == 1 else v.dims[i])
        return _ShapeVec(tuple(_SIZE_ARITH[op](pick(a, i), pick(b, i)) for i in range(n)), a.scalar and b.scalar)
    return _Opaque()


_SIZE_ARITH = {"Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "Mul": lambda a, b: a * b,
               "Div": lambda a, b: int(a / b) if b else 0}  # ONNX integer division truncates


def _constant(ctx: _Ctx, node: onnx.NodeProto, attrs: dict) -> _Const:
    if "value" in attrs:
        return _Const(numpy_helper.to_array(attrs["value"]), node.output[0])
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                       ("value_ints", np.int64)):
        if key in attrs:
            return _Const(np.array(attrs[key], dtype=dtype), node.output[0])
    raise UnsupportedAttributeError(f"{ctx.where(node)} has no supported value attribute")


def _fold(ctx: _Ctx, node: onnx.NodeProto, ins: list) -> list:
    """Evaluate a node over constants with onnx's reference evaluator."""
    from onnx.reference import ReferenceEvaluator

    feeds = {n: v.array for n, v in zip(node.input, ins) if n}
    _check_fold_size(ctx, node, ins)
    try:
        results = ReferenceEvaluator(node).run(None, feeds)
    except Exception as e:  # noqa: BLE001
        raise UnsupportedOpError(f"{ctx.where(node)} over constants cannot be evaluated: {e}") from None
    # an Identity names a weight (PyTorch shares equal initializers that way); otherwise keep the source's name
    first = node.output[0] if node.op_type == "Identity" else next(v.name for v in ins if isinstance(v, _Const))
    return [_Const(np.asarray(r), first) for r in results]


def _check_fold_size(ctx: _Ctx, node: onnx.NodeProto, ins: list) -> None:
    """Refuse to fold a node whose result would exceed the tensor limit (ConstantOfShape([10**6, 10**6]))."""
    label = f"node '{node.name or node.output[0]}' ({node.op_type})"
    for out in node.output:
        dims = ctx.shapes.get(out)
        if dims and all(isinstance(d, int) for d in dims):
            check_tensor(f"the result '{out}' of {label}", dims, 4, ctx.source)
    if node.op_type == "ConstantOfShape" and ins and isinstance(ins[0], _Const):
        check_tensor(f"the result '{node.output[0]}' of {label}", ins[0].array.reshape(-1), 4,
                     ctx.source)
