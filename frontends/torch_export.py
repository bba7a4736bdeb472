"""torch.export frontend: read an ExportedProgram (`.pt2`) of ATen ops into an IR graph.

No Python class is needed: the program's graph holds ATen calls, its state
dict the weights. Both the pre-dispatch form (`aten.conv2d`, `aten.linear`,
`aten.batch_norm`) and the core-ATen form after `run_decompositions()`
(`aten.convolution`, `aten.addmm` with a permuted weight,
`aten._native_batch_norm_legit_no_training`) are read: calls whose tensor
arguments are all constants (weights) are folded first, so a permuted weight
is just another constant. The lowerings themselves are in
`snnc.frontends.aten_ops`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
import torch.fx as fx
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind, OutputKind

from snnc.core.errors import MalformedFileError, SnncError, UnsupportedAttributeError, UnsupportedOpError
from snnc.frontends import aten_ops  # noqa: F401 - registers the ATen lowerings
from snnc.frontends import source_lines
from snnc.frontends import aten_tensor_ops  # noqa: F401 - and the tensor/layout ops (extending some)
from snnc.frontends.attention import check_attention, emit_self_attention
from snnc.frontends.export_lowering import ATEN_LOWERINGS, _Const, _Ctx, _op_name, _packet, _Sym, _Tuple, supported_ops
from snnc.frontends.pt2_archive import check_archive
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.ops import SourceLoc
from snnc.ir.types import Layout, TensorType
from snnc.ir.verify import verify


def load_pt2(path: str | os.PathLike, *, name: str | None = None) -> Graph:
    """Read a `.pt2` file written by torch.export.save."""
    p = Path(path)
    check_archive(p)  # no pickled objects, native code or oversized claims: before torch reads anything
    log = logging.getLogger("torch.export")  # it logs a traceback per failed attempt; we raise one error
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        ep = torch.export.load(p)
    except Exception as e:  # noqa: BLE001 - zip, json and pickle errors of a damaged archive
        first = (str(e).splitlines() or [""])[0][:300]
        raise MalformedFileError(f"{p}: not a readable torch.export (.pt2) archive: {type(e).__name__}: {first}",
                                 hint="write it with torch.export.save(torch.export.export(model, args), path)") from None
    finally:
        log.setLevel(level)
    return from_exported_program(ep, name=name or p.stem, source=str(p))


def node_loc(node: fx.Node) -> SourceLoc:
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return SourceLoc()
    path, typ = list(stack.values())[-1]
    typ = typ if isinstance(typ, str) else f"{typ.__module__}.{typ.__qualname__}"
    if typ.startswith("torch.nn.modules."):
        typ = "torch.nn." + typ.rsplit(".", 1)[-1]
    return SourceLoc(module_path=str(path), module_type=typ)


def from_exported_program(ep: ExportedProgram, *, name: str = "main", source: str = "exported program") -> Graph:
    """Lower an ExportedProgram (an ANN) into an IR graph with a symbolic batch dim."""
    graph = Graph(name)
    ctx = _Ctx(graph)
    consts = constants(ep, source)
    user_outputs = [i for i, s in enumerate(ep.graph_signature.output_specs) if s.kind is OutputKind.USER_OUTPUT]
    done: set[fx.Node] = set()  # the nodes of a module lowered whole (nn.MultiheadAttention)
    for node in ep.graph.nodes:
        if node in done:
            continue
        try:
            if node.op == "placeholder":
                ctx.values[node] = consts[node.name] if node.name in consts else _input(ctx, node, source)
            elif node.op == "call_function" and (path := _attention_path(node)) is not None:
                done |= _attention(ctx, ep.graph, path, node_loc(node))
            elif node.op == "call_function":
                ctx.values[node] = call(ctx, node)
            elif node.op == "output":
                emit_outputs(ctx, node, user_outputs, source)
            else:
                raise UnsupportedOpError(f"{source}: graph node '{node.name}' ({node.op}) is not supported",
                                         hint="export without higher-order ops (control flow, submodules)")
        except SnncError as e:
            raise e.at_source(source_lines.from_stack_trace(node.meta.get("stack_trace"))) from None
    graph.drop_unused_params()
    return verify(graph)


_MHA = "torch.nn.modules.activation.MultiheadAttention"
_SDPA = {torch.ops.aten.scaled_dot_product_attention, torch.ops.aten._scaled_dot_product_flash_attention_for_cpu,
         torch.ops.aten._scaled_dot_product_attention_math}


def _attention_path(node: fx.Node) -> str | None:
    """The module path of the innermost nn.MultiheadAttention the node was exported from, or None."""
    stack = node.meta.get("nn_module_stack") or {}
    for path, typ in reversed(list(stack.values())):
        name = typ if isinstance(typ, str) else f"{typ.__module__}.{typ.__qualname__}"
        if name == _MHA:
            return str(path)
    return None


def _attention(ctx: _Ctx, graph: fx.Graph, path: str, loc: SourceLoc) -> set[fx.Node]:
    """Lower the nodes of one nn.MultiheadAttention call whole (torch folds the batch into the heads, which
    no IR op does): its one input, weights and heads in, the IR ops of snnc.frontends.attention out."""
    where = f"torch.nn.MultiheadAttention at '{path}'"
    region = [n for n in graph.nodes if n.op == "call_function" and _attention_path(n) == path]
    inside = set(region)
    outer = {a for n in region for a in n.all_input_nodes if a not in inside}
    values = [a for a in outer if isinstance(ctx.values.get(a), str)]
    outs = [n for n in region if any(u not in inside for u in n.users)
            and isinstance(n.meta.get("val"), torch.Tensor)]  # not the size arithmetic other nodes share
    sdpa = [n for n in region if n.target in _SDPA or _packet(n.target) in _SDPA]

    def refuse(why: str) -> UnsupportedOpError:
        return UnsupportedOpError(f"{where}: {why}", hint="snnc reads eval-mode self-attention (one input, "
                                  "batch_first=True, no masks, need_weights=False) exported by torch.export")

    if len(values) != 1 or len(outs) != 1:
        raise refuse(f"{len(values)} inputs and {len(outs)} used outputs (self-attention has one of each)")
    for n in sdpa:  # pre-dispatch: the call itself (core ATen spells it out in bmm and softmax)
        extra = list(n.args[3:]) + [v for k, v in n.kwargs.items() if k != "scale"]
        if any(v not in (None, False, 0.0) for v in extra) or n.kwargs.get("scale") is not None:
            raise refuse("its attention has a mask, dropout, a causal mask or a custom scale")
    suffixes = ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")
    by_suffix = {}
    for c in (ctx.values[a] for a in outer if isinstance(ctx.values.get(a), _Const)):
        suffix = next((s for s in suffixes if c.name.endswith(s)), None)
        if suffix is None:  # an attention mask or bias_k/bias_v
            raise refuse(f"it reads the constant '{c.name}', which is none of its projections (a mask?)")
        by_suffix[suffix] = c.tensor
    if "in_proj_weight" not in by_suffix or "out_proj.weight" not in by_suffix:
        raise refuse("its in_proj_weight / out_proj.weight are not among the program's weights "
                     "(separate q, k, v projections are not supported)")
    x = ctx.values[values[0]]
    feats = tuple(ctx.type_of(x).features)
    dim = int(by_suffix["in_proj_weight"].shape[1])
    # the heads: the per-head view [N, H, L, hd] of q, k and v (H * hd = E, L the tokens)
    heads_seen = {int(s[1]) for n in region if isinstance(n.meta.get("val"), torch.Tensor)
                  and len(s := n.meta["val"].shape) == 4 and not isinstance(s[0], int)
                  and all(isinstance(d, int) for d in s[1:]) and s[1] * s[3] == dim and len(feats) == 2
                  and s[2] == feats[0]}
    if len(heads_seen) != 1:
        raise refuse("its number of heads cannot be read from its per-head views")
    heads = heads_seen.pop()
    in_shape, out_shape = values[0].meta["val"].shape, outs[0].meta["val"].shape
    if isinstance(in_shape[0], int) or isinstance(out_shape[0], int) or tuple(out_shape[1:]) != feats:
        raise refuse(f"its input {list(in_shape)} or output {list(out_shape)} does not keep the batch first "
                     "(batch_first=False?)")
    if why := check_attention(heads, by_suffix["in_proj_weight"].shape[1], feats, where):
        raise refuse(why)
    loc = SourceLoc(module_path=path, module_type="torch.nn.MultiheadAttention")
    name = path.replace(".", "_")

    def param(suffix: str, t: torch.Tensor) -> str:
        return ctx.param_once((path, suffix), f"{path}.{suffix}", lambda: t)

    ctx.values[outs[0]] = emit_self_attention(ctx.emit, ctx.graph.fresh_name, param, x, feats, heads,
                                              by_suffix["in_proj_weight"], by_suffix.get("in_proj_bias"),
                                              by_suffix["out_proj.weight"], by_suffix.get("out_proj.bias"), loc, name)
    return inside


def constants(ep: ExportedProgram, source: str) -> dict[str, _Const]:
    """The program's weights, buffers and constant tensors by placeholder name."""
    consts: dict[str, _Const] = {}
    for spec in ep.graph_signature.input_specs:
        if spec.kind is InputKind.USER_INPUT:
            continue
        if spec.kind not in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
            raise UnsupportedOpError(f"{source}: input '{spec.arg.name}' of kind {spec.kind.name} is not supported",
                                     hint="export a plain nn.Module with tensor inputs")
        t = ep.state_dict.get(spec.target) if spec.target in ep.state_dict else ep.constants.get(spec.target)
        if not isinstance(t, torch.Tensor):
            raise MalformedFileError(f"{source}: tensor '{spec.target}' (input '{spec.arg.name}') is missing from "
                                     "the program's state dict")
        consts[spec.arg.name] = _Const(t, spec.target)
    return consts


def emit_outputs(ctx: _Ctx, node: fx.Node, user_outputs: list[int], source: str) -> None:
    results = list(node.args[0])
    picked = [results[i] for i in user_outputs]
    for i, r in enumerate(picked):
        v = ctx.values.get(r) if isinstance(r, fx.Node) else None
        if not isinstance(v, str):
            raise UnsupportedOpError(f"{source}: output {i} is not a tensor computed from the inputs")
        ctx.emit(ops.Output(name=ctx.graph.fresh_name("out" if len(picked) == 1 else f"out{i}"), inputs=(v,)))


def _input(ctx: _Ctx, node: fx.Node, source: str) -> str:
    val = node.meta.get("val")
    shape = getattr(val, "shape", None)
    if shape is None or len(shape) < 2:
        raise UnsupportedAttributeError(f"{source}: input '{node.name}' has shape {shape}; snnc needs a batched "
                                        "tensor [N, *features]")
    feats = []
    for d in shape[1:]:
        try:
            feats.append(int(d))
        except (TypeError, ValueError):
            raise UnsupportedAttributeError(f"{source}: input '{node.name}' has a dynamic feature dim ({d}); only "
                                            "the batch dim may be dynamic") from None
    return ctx.emit(ops.Input(name=ctx.graph.fresh_name(node.name),
                              type=TensorType(shape=("N", *feats), layout=Layout.NX)))


def call(ctx: _Ctx, node: fx.Node) -> Any:
    import operator

    loc = node_loc(node)
    args = fx.node.map_arg((node.args, node.kwargs), lambda n: ctx.values[n])
    if node.target is operator.getitem:
        tup, i = args[0][0], args[0][1]
        if not isinstance(tup, _Tuple):
            raise UnsupportedOpError(f"indexing in {loc.describe()} is not supported")
        if tup.items[i] is None:
            raise UnsupportedOpError(f"result {i} of {tup.op} in {loc.describe()} is not supported",
                                     hint="only the first result (the output tensor) is")
        return tup.items[i]
    if _foldable(args):
        return _fold(node, args)
    lower = ATEN_LOWERINGS.get(_packet(node.target))
    if lower is None:
        advice = "" if ctx.symbolic_lead else (". An SNN does not export to ATen ops snnc can read: trace it "
                                               "with snnc.trace instead")
        raise UnsupportedOpError(f"{_op_name(node)} ('{node.name}') in {loc.describe()} is not supported",
                                 hint=f"supported ATen ops: {supported_ops()}{advice}")
    return lower(ctx, node, _bind(node, args), loc)


def _leaves(x: Any):
    if isinstance(x, (list, tuple)):
        for y in x:
            yield from _leaves(y)
    elif isinstance(x, dict):
        for y in x.values():
            yield from _leaves(y)
    else:
        yield x


def _foldable(args: Any) -> bool:
    leaves = list(_leaves(args))
    return any(isinstance(v, _Const) for v in leaves) and not any(isinstance(v, (str, _Sym, _Tuple)) for v in leaves)


def _fold(node: fx.Node, args: Any) -> Any:
    """Evaluate a call over constants only (a transposed weight, ...)."""
    first = next(v for v in _leaves(args) if isinstance(v, _Const))

    def unwrap(x):
        if isinstance(x, _Const):
            return x.tensor
        if isinstance(x, (list, tuple)):
            return type(x)(unwrap(y) for y in x)
        if isinstance(x, dict):
            return {k: unwrap(v) for k, v in x.items()}
        return x

    a, kw = unwrap(args)
    with torch.no_grad():
        out = node.target(*a, **kw)
    if isinstance(out, torch.Tensor):
        return _Const(out, first.name)
    return _Tuple(tuple(_Const(o, first.name) if isinstance(o, torch.Tensor) else o for o in out), _op_name(node))


def _bind(node: fx.Node, args: Any) -> dict[str, Any]:
    """Arguments by schema name, defaults filled in."""
    a, kw = args
    schema = getattr(node.target, "_schema", None)
    if schema is None:
        return {str(i): v for i, v in enumerate(a)} | dict(kw)
    out: dict[str, Any] = {}
    for i, arg in enumerate(schema.arguments):
        if i < len(a) and not arg.kwarg_only:
            out[arg.name] = a[i]
        elif arg.name in kw:
            out[arg.name] = kw[arg.name]
        elif arg.has_default_value():
            out[arg.name] = arg.default_value
        else:
            out[arg.name] = None
    return out
