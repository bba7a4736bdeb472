"""Multi-head self-attention (torch.nn.MultiheadAttention) as IR ops, shared by the fx, .pt2 and ONNX frontends.

torch computes attention with the batch folded into the heads ([L, N*H, hd] views,
scaled_dot_product_attention); the IR keeps the batch in place, so each frontend
recognizes the module whole and emits the same ops here, per sample [L, E]:

    q, k, v = x Wq^T + bq, x Wk^T + bk, x Wv^T + bv        three Linears (in_proj split)
    qh, kh, vh = per head [H, L, hd] (Reshape, Permute); kh^T [H, hd, L]
    a = softmax((qh @ kh^T) / sqrt(hd), dim=-1)            MatMul, Scale, Softmax
    y = concat_heads(a @ vh) Wo^T + bo                      MatMul, Permute, Reshape, Linear

Eval mode only (dropout off), no masks, batch_first. The scores multiply two values computed
from x: on rate-coded values a product of rates is no rate of the product, so conversion
refuses it by name unless --analog matmul decodes both (passes/analog.py); the softmax is an
analog op (--analog softmax). ViT has no ReLU: its attention runs on exact values.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from snnc.ir import ops
from snnc.ir.ops import SourceLoc


def emit_self_attention(emit: Callable[[ops.OpBase], str], fresh: Callable[[str], str],
                        param: Callable[[str, torch.Tensor], str], x: str, features: tuple[int, ...], heads: int,
                        in_w: torch.Tensor, in_b: torch.Tensor | None, out_w: torch.Tensor, out_b: torch.Tensor | None,
                        loc: SourceLoc, name: str) -> str:
    """Self-attention of x (features [L, E]) with `heads` heads; `param(suffix, tensor)` adds a parameter."""
    seq, dim = features
    hd = dim // heads

    def op(cls, suffix: str, inputs: tuple[str, ...], **kw) -> str:
        return emit(cls(name=fresh(f"{name}_{suffix}"), inputs=inputs, loc=loc, **kw))

    per_head = []
    for i, part in enumerate("qkv"):
        w = in_w[i * dim:(i + 1) * dim].detach().contiguous().clone()
        b = None if in_b is None else in_b[i * dim:(i + 1) * dim].detach().contiguous().clone()
        y = op(ops.Linear, part, (x,), weight=param(f"{part}_weight", w),
               bias=None if b is None else param(f"{part}_bias", b))
        y = op(ops.Reshape, f"{part}_heads", (y,), shape=(seq, heads, hd))
        per_head.append(op(ops.Permute, f"{part}_t", (y,), perm=(1, 2, 0) if part == "k" else (1, 0, 2)))
    q, kt, v = per_head
    scores = op(ops.MatMul, "scores", (q, kt))
    scores = op(ops.Scale, "scaled", (scores,), factor=1.0 / math.sqrt(hd))
    attn = op(ops.Softmax, "softmax", (scores,), dim=2)
    y = op(ops.MatMul, "mix", (attn, v))
    y = op(ops.Permute, "mix_t", (y,), perm=(1, 0, 2))
    y = op(ops.Flatten, "concat", (y,), start_dim=1, end_dim=2)
    return op(ops.Linear, "out", (y,), weight=param("out_weight", out_w.detach().contiguous().clone()),
              bias=None if out_b is None else param("out_bias", out_b.detach().contiguous().clone()))


def check_attention(m_heads: int, dim: int, features: tuple[int, ...], where: str) -> str | None:
    """Why this self-attention has no IR form (None: it has one)."""
    if len(features) != 2 or features[1] != dim:
        return f"{where} attends over features {list(features)}; snnc needs per-sample tokens [L, {dim}]"
    if dim % m_heads:
        return f"{where} splits {dim} features into {m_heads} heads unevenly"
    return None
