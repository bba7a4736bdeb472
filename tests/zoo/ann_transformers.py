"""The ANN zoo's transformer-era networks, as torchvision defines them (tests/zoo/ann.py): ConvNeXt-T
(layer scale starting at 0.1) and ViT-B/16 at image size 32 (a random head)."""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from tests.zoo.ann_common import NUM_CLASSES, _cap, _div


# -- ConvNeXt-T --------------------------------------------------------------------------
class Permute(nn.Module):
    def __init__(self, dims: list[int]):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return torch.permute(x, self.dims)


class LayerNorm2d(nn.LayerNorm):
    """torchvision's LayerNorm over the channels of NCHW: permute, F.layer_norm, permute back (also used by
    tests/frontends/test_transformer_ops.py)."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class CNBlock(nn.Module):
    def __init__(self, dim: int, layer_scale: float):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(dim, dim, 7, padding=3, groups=dim), Permute([0, 2, 3, 1]),
                                   nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, 4 * dim), nn.GELU(),
                                   nn.Linear(4 * dim, dim), Permute([0, 3, 1, 2]))
        self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1) * layer_scale)

    def forward(self, x):
        return self.layer_scale * self.block(x) + x  # stochastic depth: the identity in eval mode


class ConvNeXt(nn.Module):
    def __init__(self, dims: tuple[int, ...] = (96, 192, 384, 768), depths: tuple[int, ...] = (3, 3, 9, 3),
                 num_classes: int = NUM_CLASSES, width: float = 1.0, blocks: int | None = None,
                 layer_scale: float = 0.1):
        super().__init__()
        depths = tuple(_cap(n, blocks) for n in depths)
        dims = tuple(_div(d * width) for d in dims)
        norm = partial(LayerNorm2d, eps=1e-6)
        layers: list[nn.Module] = [nn.Sequential(nn.Conv2d(3, dims[0], 4, 4), norm(dims[0]))]
        for i, (d, n) in enumerate(zip(dims, depths)):
            layers.append(nn.Sequential(*[CNBlock(d, layer_scale) for _ in range(n)]))
            if i + 1 < len(dims):
                layers.append(nn.Sequential(norm(d), nn.Conv2d(d, dims[i + 1], 2, 2)))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(norm(dims[-1]), nn.Flatten(1), nn.Linear(dims[-1], num_classes))
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)))


def convnext_tiny(num_classes: int = NUM_CLASSES, width: float = 1.0, blocks: int | None = None) -> nn.Module:
    return ConvNeXt(num_classes=num_classes, width=width, blocks=blocks)


# -- ViT-B/16 ----------------------------------------------------------------------------
class EncoderBlock(nn.Module):
    def __init__(self, heads: int, hidden: int, mlp: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(hidden, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(hidden, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(hidden, mlp), nn.GELU(), nn.Dropout(0.0), nn.Linear(mlp, hidden),
                                 nn.Dropout(0.0))
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.normal_(m.bias, std=1e-6)

    def forward(self, x):
        y = self.ln_1(x)
        y, _ = self.self_attention(y, y, y, need_weights=False)
        x = y + x
        return x + self.mlp(self.ln_2(x))


class VisionTransformer(nn.Module):
    """ViT-B/16 at image size 32: 2x2 patches of 16x16 plus the class token (5 tokens)."""

    def __init__(self, num_classes: int = NUM_CLASSES, width: float = 1.0, blocks: int | None = None, patch: int = 16,
                 layers: int = 12, heads: int = 12, image_size: int = 32):
        super().__init__()
        layers = _cap(layers, blocks)
        hidden = heads * max(1, round(64 * width))  # 64 per head at width 1: 768
        self.patch_size, self.hidden_dim = patch, hidden
        self.conv_proj = nn.Conv2d(3, hidden, patch, patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, hidden))
        seq = (image_size // patch) ** 2 + 1
        self.pos_embedding = nn.Parameter(torch.empty(1, seq, hidden).normal_(std=0.02))
        self.layers = nn.Sequential(*[EncoderBlock(heads, hidden, 4 * hidden) for _ in range(layers)])
        self.ln = nn.LayerNorm(hidden, eps=1e-6)
        self.head = nn.Linear(hidden, num_classes)
        fan_in = 3 * patch * patch
        nn.init.trunc_normal_(self.conv_proj.weight, std=math.sqrt(1 / fan_in))
        nn.init.zeros_(self.conv_proj.bias)

    def forward(self, x):
        n = x.shape[0]
        x = self.conv_proj(x)
        x = x.reshape(n, self.hidden_dim, -1).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1)
        x = self.ln(self.layers(x + self.pos_embedding))
        return self.head(x[:, 0])


def vit_b_16(num_classes: int = NUM_CLASSES, width: float = 1.0, blocks: int | None = None) -> nn.Module:
    return VisionTransformer(num_classes, width, blocks)
