"""ConvNeXt's and ViT's patterns (issue 19) through torch.fx, .pt2 and dynamo ONNX against torch itself.

Each case is a small module written as torchvision writes the pattern: a layer scale
(a product by a weight [C, 1, 1]), LayerNorm over the channels between two permutes,
a position embedding (a sum with a weight), a class token (a weight expanded over the
batch and concatenated in front of the tokens), x[:, 0], and nn.MultiheadAttention.
The IR must compute what torch computes on every path, hold the op it is read as, and
give another output when that op is taken out (so dropping it silently would fail).
"""

from __future__ import annotations

import importlib.util
import warnings

import pytest
import torch
import torch.nn as nn

from snnc.core.errors import SnncError
from snnc.frontends import load, trace
from snnc.frontends.torch_export import from_exported_program
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.runtime import Session
from tests.zoo.ann_transformers import LayerNorm2d

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning")
PATHS = ["fx", "pt2", "pt2-core-aten", "onnx"]
# core ATen writes a Linear of a [N, L, E] value as an expand of its weight and a bmm, which snnc does not read
CORE_ATEN_REFUSED = {"tokens"}


class LayerScale(nn.Module):
    """ConvNeXt's block tail: gamma * f(x) + x, gamma [C, 1, 1] (per channel), and a per-element weight."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.gamma = nn.Parameter(torch.linspace(0.5, 2.0, 4).reshape(4, 1, 1))
        self.mask = nn.Parameter(torch.rand(4, 5, 5) + 0.5)

    def forward(self, x):
        return self.gamma * self.conv(x) + x * self.mask


class ChannelNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 2, 2)
        self.norm = LayerNorm2d(6, eps=1e-6)
        with torch.no_grad():
            self.norm.weight.copy_(torch.linspace(0.5, 1.5, 6))
            self.norm.bias.copy_(torch.linspace(-0.2, 0.3, 6))

    def forward(self, x):
        return self.norm(self.conv(x))


class Tokens(nn.Module):
    """ViT's front and back: patches, class token in front, position embedding, x[:, 0]."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(3, 8, 4, 4)
        self.class_token = nn.Parameter(torch.randn(1, 1, 8))
        self.pos_embedding = nn.Parameter(torch.randn(1, 5, 8))
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        n = x.shape[0]
        x = self.proj(x).reshape(n, 8, -1).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1)
        x = x + self.pos_embedding
        return self.head(x[:, 0]) + self.head(x[:, 1:]).mean(1)


class Attention(nn.Module):
    """ViT's encoder block: LayerNorm, self-attention (batch_first, need_weights=False), residual."""

    def __init__(self, heads: int = 2):
        super().__init__()
        self.ln = nn.LayerNorm(8)
        self.attn = nn.MultiheadAttention(8, heads, batch_first=True)
        with torch.no_grad():
            self.attn.in_proj_bias.copy_(torch.randn(24) * 0.1)
            self.attn.out_proj.bias.copy_(torch.randn(8) * 0.1)

    def forward(self, x):
        y = self.ln(x)
        y, _ = self.attn(y, y, y, need_weights=False)
        return x + y


# name -> (model class, input shape, the op kinds it must hold)
CASES = {
    "layer_scale": (LayerScale, (4, 5, 5), {"scale"}),
    "channel_norm": (ChannelNorm, (3, 4, 4), {"permute", "layer_norm"}),
    "tokens": (Tokens, (3, 8, 8), {"constant", "concat", "add_const", "slice"}),
    "attention": (Attention, (5, 8), {"linear", "matmul", "softmax"}),
}


def _model(name: str) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    cls, shape, _ = CASES[name]
    return cls().eval(), torch.randn(3, *shape)


def _read(path: str, model: nn.Module, x: torch.Tensor, tmp_path) -> Graph:
    if path == "fx":
        return trace(model, tuple(x.shape[1:]))
    ep = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("N")},))
    if path.startswith("pt2"):
        return from_exported_program(ep.run_decompositions() if path == "pt2-core-aten" else ep)
    if importlib.util.find_spec("onnxscript") is None:
        pytest.skip("torch's dynamo ONNX exporter needs onnxscript")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(ep, (x,), str(tmp_path / "m.onnx"), dynamic_shapes=({0: torch.export.Dim("N")},))
    return load(tmp_path / "m.onnx")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", list(CASES))
def test_every_path_computes_torch_and_keeps_the_op(name, path, tmp_path):
    model, x = _model(name)
    if path == "pt2-core-aten" and name in CORE_ATEN_REFUSED:
        with pytest.raises(SnncError, match=r"aten\.expand .*weight") as info:
            _read(path, model, x, tmp_path)
        assert "\n" not in info.value.message
        return
    g = _read(path, model, x, tmp_path)
    kinds = {op.kind for op in g}
    assert CASES[name][2] <= kinds, f"missing {CASES[name][2] - kinds} in {sorted(kinds)}"
    with torch.no_grad():
        torch.testing.assert_close(Session(g).run(x), model(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("path", ["pt2", "onnx"])
@pytest.mark.parametrize("name", list(CASES))
def test_every_path_reads_the_same_graph_as_fx(name, path, tmp_path):
    """Same ops in the same order, same parameters: the very same outputs."""
    model, x = _model(name)
    fx_graph, other = trace(model, tuple(x.shape[1:])), _read(path, model, x, tmp_path)
    assert [op.kind for op in other] == [op.kind for op in fx_graph]
    assert torch.equal(Session(other).run(x), Session(fx_graph).run(x))


def _without(g: Graph, pick) -> Graph:
    """g with the first op `pick` accepts replaced by the identity of its first input."""
    op = next(op for op in g if pick(op))
    h = g.copy()
    h.replace_uses(op.name, op.inputs[0])
    h.remove(op.name)
    return h


def test_layer_scale_is_a_scale_per_channel_and_per_element():
    model, x = _model("layer_scale")
    g = trace(model, (4, 5, 5))
    scales = [op for op in g if isinstance(op, ops.Scale)]
    shapes = sorted(tuple(g.params[op.weight].shape) for op in scales)
    assert shapes == [(4,), (4, 5, 5)]  # gamma per channel, the mask per element
    out = Session(g).run(x)
    for s in scales:
        assert (Session(_without(g, lambda op, s=s: op.name == s.name)).run(x) - out).abs().max() > 0.1


def test_a_uniform_weight_is_a_scale_by_a_factor():
    class Uniform(nn.Module):
        def __init__(self):
            super().__init__()
            self.gamma = nn.Parameter(torch.full((3, 1, 1), 0.25))

        def forward(self, x):
            return self.gamma * x

    g = trace(Uniform().eval(), (3, 2, 2))
    (s,) = [op for op in g if isinstance(op, ops.Scale)]
    assert s.weight is None and s.factor == 0.25


def test_class_token_and_position_embedding_change_the_output():
    model, x = _model("tokens")
    g = trace(model, (3, 8, 8))
    out = Session(g).run(x)
    (const,) = [op for op in g if isinstance(op, ops.Constant)]
    assert g.type_of(const.name).features == (1, 8)
    h = g.copy()  # another class token: another output
    h.params[const.value] = h.params[const.value] + 1.0
    assert (Session(h).run(x) - out).abs().max() > 0.1
    assert (Session(_without(g, lambda op: isinstance(op, ops.AddConst))).run(x) - out).abs().max() > 0.1


def test_channel_norm_changes_the_output():
    model, x = _model("channel_norm")
    g = trace(model, (3, 4, 4))
    out = Session(g).run(x)
    assert (Session(_without(g, lambda op: isinstance(op, ops.LayerNorm))).run(x) - out).abs().max() > 0.1


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_multihead_attention_matches_torch_for_any_number_of_heads(heads):
    torch.manual_seed(heads)
    model, x = Attention(heads).eval(), torch.randn(4, 5, 8)
    g = trace(model, (5, 8))
    assert sum(isinstance(op, ops.MatMul) for op in g) == 2
    with torch.no_grad():
        torch.testing.assert_close(Session(g).run(x), model(x), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- refusals name the op and its module
class ExpandValue(nn.Module):
    def forward(self, x):  # [N, 1, 4]
        return x.expand(-1, 3, -1)


class BatchWeight(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.rand(2, 4, 1, 1))

    def forward(self, x):
        return self.w * x


class Masked(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.register_buffer("mask", torch.triu(torch.ones(5, 5, dtype=torch.bool), 1))

    def forward(self, x):
        return self.attn(x, x, x, attn_mask=self.mask, need_weights=False)[0]


class SequenceFirst(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2)

    def forward(self, x):
        return self.attn(x, x, x, need_weights=False)[0]


@pytest.mark.parametrize("model,shape,match", [
    (ExpandValue(), (1, 4), r"\.expand\(\) of a value"),
    (BatchWeight(), (4, 3, 3), r"multiplies by the weight 'w' \[2, 4, 1, 1\]"),
    (Masked(), (5, 8), r"MultiheadAttention at 'attn' .*attn_mask"),
    (SequenceFirst(), (5, 8), r"MultiheadAttention at 'attn' has batch_first=False"),
], ids=["expand-value", "weight-over-batch", "attention-mask", "sequence-first"])
def test_what_has_no_ir_form_is_refused_by_name(model, shape, match):
    with pytest.raises(SnncError, match=match) as info:
        trace(model.eval(), shape)
    assert "\n" not in info.value.message


@pytest.mark.parametrize("path", ["pt2", "onnx"])
def test_attention_with_a_mask_is_refused_naming_the_module(path, tmp_path):
    """A mask changes the result: never dropped silently, on .pt2 (a constant the module reads) and ONNX (an
    additive mask initializer)."""
    torch.manual_seed(0)
    model, x = Masked().eval(), torch.randn(2, 5, 8)
    with pytest.raises(SnncError, match=r"MultiheadAttention at 'attn'.*(mask|none of its projections)") as info:
        _read(path, model, x, tmp_path)
    assert "\n" not in info.value.message
