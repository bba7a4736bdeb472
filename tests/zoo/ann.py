"""The standard image-classification architectures, written here as torchvision defines them.

torchvision's wheels do not import on our CPU torch, so each architecture is our own
`torch.nn` code with torchvision's structure (layer order, kernel sizes, strides,
paddings, `ceil_mode`, in-place ReLUs, the functional calls in `forward`): what a
user's model looks like to a tracer, an exporter and a converter. Every builder takes
`num_classes` (10), `width`, a channel multiplier, and `blocks`, the most blocks
one stage repeats (each stage keeps its first block, so every kind of block and
every op stays). `width=1.0, blocks=None` is the real network; a small width and
`blocks=2` give a tiny one with the same op mix, for tests. The input is 3x32x32
(so global pools see 1x1 or 2x2 maps, as for CIFAR-sized images).

`build(name, width)` makes one with a fixed seed and realistic BatchNorm statistics
(`calibrate_bn` over `images()`), so that every ReLU fires for part of its inputs;
the weights are random (`torch.nn.init` as torchvision does it), never trained.

Deviations from torchvision, each so that random weights give a meaningful network:
ConvNeXt's layer scale starts at 0.1 (torchvision: 1e-6, which turns every block into
the identity until trained), and ViT's head is random (torchvision: zeros, so every
logit would be 0). Auxiliary classifiers (GoogLeNet) and stochastic depth / dropout
(identities in eval mode) are left out.

The architectures are written by family: `ann_classic.py` (ResNet, VGG, SqueezeNet,
GoogLeNet, DenseNet), `ann_mobile.py` (MobileNetV2/V3, ShuffleNetV2, EfficientNet,
RegNet) and `ann_transformers.py` (ConvNeXt, ViT), on the helpers of `ann_common.py`.
This module is the registry the tests and benchmarks import.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from tests.zoo.ann_classic import densenet121, googlenet, resnet18, resnet34, squeezenet1_1, vgg11_bn, vgg16_bn
from tests.zoo.ann_common import INPUT_SHAPE, NUM_CLASSES
from tests.zoo.ann_mobile import efficientnet_b0, mobilenet_v2, mobilenet_v3_small, regnet_y_400mf, shufflenet_v2_x1_0
from tests.zoo.ann_transformers import convnext_tiny, vit_b_16

__all__ = ["ARCHITECTURES", "INPUT_SHAPE", "NUM_CLASSES", "build", "calibrate_bn", "images"]


# -- the registry, data and BatchNorm calibration -----------------------------------------
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    f.__name__: f for f in (resnet18, resnet34, vgg11_bn, vgg16_bn, squeezenet1_1, googlenet, densenet121,
                            mobilenet_v2, shufflenet_v2_x1_0, efficientnet_b0, regnet_y_400mf, mobilenet_v3_small,
                            convnext_tiny, vit_b_16)}


def images(n: int, seed: int = 0, size: int = 32) -> torch.Tensor:
    """`n` smooth random RGB images in [0, 1] ([n, 3, size, size]): 8x8 random pixels upsampled bilinearly,
    so that neighbouring pixels correlate as in photographs. Integer RNG: the same images on every CPU."""
    gen = torch.Generator().manual_seed(seed)
    low = torch.randint(0, 256, (n, 3, 8, 8), generator=gen).float() / 255
    return F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)


def calibrate_bn(model: nn.Module, data: torch.Tensor, batch_size: int = 64) -> nn.Module:
    """Set each BatchNorm's running mean and variance to their average over the batches of `data`
    (a forward pass with only the BatchNorms in train mode), then put the model in eval mode."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    model.eval()
    momenta = []
    for bn in bns:
        momenta.append(bn.momentum)
        bn.reset_running_stats()
        bn.momentum = None  # a cumulative average over the batches
        bn.train()
    with torch.no_grad():
        for batch in data.split(batch_size):
            model(batch)
    for bn, m in zip(bns, momenta):
        bn.momentum = m
    return model.eval()


def build(name: str, width: float = 1.0, blocks: int | None = None, seed: int = 0,
          calib_images: int = 256) -> nn.Module:
    """The architecture `name` with seeded random weights and BatchNorm statistics from `images()`, in eval mode."""
    if name not in ARCHITECTURES:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    torch.manual_seed(seed)
    model = ARCHITECTURES[name](num_classes=NUM_CLASSES, width=width, blocks=blocks)
    return calibrate_bn(model, images(calib_images, seed=seed + 1))
