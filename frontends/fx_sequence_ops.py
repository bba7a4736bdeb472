"""torch.fx lowerings of the ops of sequence models and transformers (issues 18, 19; docs/ops.md).

Conv1d and AvgPool1d (module and functional), softmax (function, method and
nn.Softmax), LayerNorm (nn.LayerNorm and F.layer_norm) and eval-mode
nn.MultiheadAttention self-attention, read whole into the ops of
snnc.frontends.attention. Dims in user code count the leading batch/time dims
(ctx.lead) as in snnc.frontends.fx_tensor_ops, whose helpers these use; any use
of a batch/time dim is refused by name.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from snnc.core.errors import UnsupportedAttributeError, UnsupportedOpError
from snnc.frontends.attention import check_attention, emit_self_attention
from snnc.frontends.fx_lowering import Attr, _Ctx, lowers_function, lowers_method, lowers_module
from snnc.frontends.fx_ops import _arg
from snnc.frontends.fx_tensor_ops import _const_param, _feature_dim, _method, _operand
from snnc.ir import ops
from snnc.ir.ops import SourceLoc


def _softmax(ctx: _Ctx, x: str, dim: Any, name: str, loc: SourceLoc) -> str:
    if dim is None:
        raise UnsupportedAttributeError(f"softmax without a dim in {loc.describe()}", hint="pass dim=")
    return ctx.emit(ops.Softmax(name=ctx.fresh(name), inputs=(x,), loc=loc,
                                dim=_feature_dim(ctx, x, int(dim), loc, "softmax")))


@lowers_function(F.softmax, torch.softmax)
def _f_softmax(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    if _arg(node, 3 if node.target is F.softmax else 2, "dtype") is not None:
        raise UnsupportedAttributeError(f"softmax with a dtype in {loc.describe()} is not supported")
    return _softmax(ctx, ctx.value(node.args[0], node, loc), _arg(node, 1, "dim"), node.name, loc)


@lowers_module(nn.Softmax)
def _softmax_module(ctx: _Ctx, m: nn.Softmax, node: fx.Node, loc: SourceLoc) -> str:
    return _softmax(ctx, ctx.value(node.args[0], node, loc), m.dim, node.name, loc)


@lowers_module(nn.Conv1d)
def _conv1d(ctx: _Ctx, m: nn.Conv1d, node: fx.Node, loc: SourceLoc) -> str:
    if m.padding_mode != "zeros" or isinstance(m.padding, str) and m.padding != "valid":
        raise UnsupportedAttributeError(f"Conv1d at '{loc.module_path}' uses padding={m.padding!r}, "
                                        f"padding_mode={m.padding_mode!r}",
                                        hint="only explicit zero padding is supported")
    x = ctx.value(node.args[0], node, loc)
    p = loc.module_path
    return ctx.emit(ops.Conv1d(name=ctx.fresh(node.name), inputs=(x,), loc=loc, weight=ctx.param(m, "weight", p),
                               bias=ctx.param(m, "bias", p), stride=int(m.stride[0]),
                               padding=0 if isinstance(m.padding, str) else int(m.padding[0]),
                               dilation=int(m.dilation[0]), groups=m.groups))


def _avg_pool1d(ctx: _Ctx, x: str, kernel: Any, stride: Any, padding: Any, ceil_mode: Any, include_pad: Any,
                name: str, loc: SourceLoc) -> str:
    def one(v):
        return int(v[0]) if isinstance(v, (tuple, list)) else int(v)
    k = one(kernel)
    return ctx.emit(ops.AvgPool1d(name=ctx.fresh(name), inputs=(x,), loc=loc, kernel_size=k,
                                  stride=k if stride in (None, ()) else one(stride), padding=one(padding),
                                  ceil_mode=bool(ceil_mode), count_include_pad=bool(include_pad)))


@lowers_module(nn.AvgPool1d)
def _avg_pool1d_module(ctx: _Ctx, m: nn.AvgPool1d, node: fx.Node, loc: SourceLoc) -> str:
    return _avg_pool1d(ctx, ctx.value(node.args[0], node, loc), m.kernel_size, m.stride, m.padding, m.ceil_mode,
                       m.count_include_pad, node.name, loc)


@lowers_function(F.avg_pool1d)
def _f_avg_pool1d(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    return _avg_pool1d(ctx, ctx.value(node.args[0], node, loc), _arg(node, 1, "kernel_size"),
                       _arg(node, 2, "stride", None), _arg(node, 3, "padding", 0), _arg(node, 4, "ceil_mode", False),
                       _arg(node, 5, "count_include_pad", True), node.name, loc)


@lowers_function(F.layer_norm)
def _f_layer_norm(ctx: _Ctx, node: fx.Node, loc: SourceLoc) -> str:
    """F.layer_norm(x, shape, weight, bias, eps) (ConvNeXt's LayerNorm2d: permute, layer_norm, permute back)."""
    x = ctx.value(node.args[0], node, loc)
    shape = _arg(node, 1, "normalized_shape")
    shape = tuple(int(d) for d in (shape if isinstance(shape, (tuple, list)) else [shape]))

    def weight(i: int, key: str) -> str | None:
        w = _operand(ctx, _arg(node, i, key))
        if w is None:
            return None
        if not isinstance(w, Attr) or not isinstance(w.tensor, torch.Tensor):
            raise UnsupportedAttributeError(f"F.layer_norm in {loc.describe()} takes a {key} that is no weight of "
                                            "the model", hint="pass the module's parameters (self.weight)")
        return _const_param(ctx, w, "ln")(w.tensor.detach().clone())
    return ctx.emit(ops.LayerNorm(name=ctx.fresh(node.name), inputs=(x,), loc=loc, normalized_shape=shape,
                                  weight=weight(2, "weight"), bias=weight(3, "bias"),
                                  eps=float(_arg(node, 4, "eps", 1e-5))))


@lowers_module(nn.LayerNorm)
def _layer_norm(ctx: _Ctx, m: nn.LayerNorm, node: fx.Node, loc: SourceLoc) -> str:
    x = ctx.value(node.args[0], node, loc)
    p = loc.module_path
    return ctx.emit(ops.LayerNorm(name=ctx.fresh(node.name), inputs=(x,), loc=loc,
                                  normalized_shape=tuple(int(d) for d in m.normalized_shape),
                                  weight=ctx.param(m, "weight", p), bias=ctx.param(m, "bias", p), eps=float(m.eps)))


lowers_method("softmax")(_method(_f_softmax))


class _NotComputed:
    """An output snnc does not compute (nn.MultiheadAttention's attention weights): refused where it is used."""

    def __init__(self, what: str):
        self.what = what

    def __repr__(self) -> str:
        return self.what


@lowers_module(nn.MultiheadAttention)
def _multihead_attention(ctx: _Ctx, m: nn.MultiheadAttention, node: fx.Node, loc: SourceLoc) -> tuple:
    """Self-attention (query, key and value one value; batch_first; no masks; eval mode): the IR ops of
    snnc.frontends.attention. Its second output (the attention weights) is not computed."""
    where = f"torch.nn.MultiheadAttention at '{loc.module_path}'"
    args = list(node.args[:3]) + [node.kwargs.get(k) for k in ("query", "key", "value")[len(node.args):]]
    if len(set(args[:3])) != 1:
        raise UnsupportedOpError(f"{where} attends with different query, key and value",
                                 hint="only self-attention, m(x, x, x), is supported")
    for key, default in (("key_padding_mask", None), ("attn_mask", None), ("is_causal", False)):
        if _arg(node, {"key_padding_mask": 3, "attn_mask": 5, "is_causal": 7}[key], key, default) not in (None, False):
            raise UnsupportedAttributeError(f"{where} is called with {key}", hint="masks are not supported")
    if not m.batch_first or m.training or m.bias_k is not None or m.add_zero_attn or not m._qkv_same_embed_dim:
        raise UnsupportedAttributeError(
            f"{where} has batch_first={m.batch_first}, training={m.training}, add_bias_kv="
            f"{m.bias_k is not None}, add_zero_attn={m.add_zero_attn}, kdim/vdim={m.kdim}/{m.vdim}",
            hint="snnc reads eval-mode self-attention with batch_first=True, no bias_kv, no zero attention and "
                 "equal kdim, vdim and embed_dim")
    x = ctx.value(args[0], node, loc)
    feats = tuple(ctx.type_of(x).features)
    if ctx.lead(x) != 1 or (why := check_attention(m.num_heads, m.embed_dim, feats, where)):
        raise UnsupportedAttributeError(why or f"{where} runs on a value with time steps",
                                        hint="tokens [N, L, E] per call")

    def param(suffix: str, t: torch.Tensor) -> str:
        key = (id(m), suffix)
        if key not in ctx.param_cache:
            ctx.param_cache[key] = ctx.graph.add_param(f"{loc.module_path}.{suffix}", t)
        return ctx.param_cache[key]

    y = emit_self_attention(ctx.emit, ctx.fresh, param, x, feats, m.num_heads, m.in_proj_weight, m.in_proj_bias,
                            m.out_proj.weight, m.out_proj.bias, loc, node.name)
    return (y, _NotComputed(f"the attention weights of {where} (snnc computes its output only)"))
