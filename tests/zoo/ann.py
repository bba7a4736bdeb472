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
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_CLASSES = 10
INPUT_SHAPE = (3, 32, 32)


def _div(c: float, divisor: int = 8, min_value: int | None = None) -> int:
    """torchvision's `_make_divisible`: the nearest multiple of `divisor`, never below 90% of `c`."""
    min_value = min_value or divisor
    new = max(min_value, int(c + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * c else new


def _cap(n: int, blocks: int | None) -> int:
    """How many of a stage's `n` blocks to build: all (blocks=None) or at most `blocks`."""
    return n if blocks is None else max(1, min(n, blocks))


def _conv_bn_act(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1,
                 act: Callable[..., nn.Module] | None = nn.ReLU, norm: Callable[..., nn.Module] = nn.BatchNorm2d,
                 ) -> nn.Sequential:
    """torchvision's Conv2dNormActivation: conv (no bias), norm, activation (None: no activation)."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), norm(cout)]
    if act is not None:
        layers.append(act(inplace=True) if act in (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish) else act())
    return nn.Sequential(*layers)


# -- ResNet ------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    def __init__(self, layers: tuple[int, ...], num_classes: int = NUM_CLASSES, width: float = 1.0,
                 blocks: int | None = None):
        super().__init__()
        widths = [_div(c * width) for c in (64, 128, 256, 512)]
        layers = tuple(_cap(n, blocks) for n in layers)
        self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = widths[0]
        for i, (n, c) in enumerate(zip(layers, widths)):
            blocks = [BasicBlock(cin, c, 1 if i == 0 else 2)] + [BasicBlock(c, c) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            cin = c
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(num_classes: int = NUM_CLASSES, width: float = 1.0, blocks: int | None = None) -> nn.Module:
    return ResNet((2, 2, 2, 2), num_classes, width, blocks)


def resnet34(num_classes: int = NUM_CLASSES, width: float = 1.0, blocks: int | None = None) -> nn.Module:
    return ResNet((3, 4, 6, 3), num_classes, width, blocks)


# -- VGG ---------------------------------------------------------------------------------
VGG_CFGS = {"A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
            "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]}


class VGG(nn.Module):
    def __init__(self, cfg: str, num_classes: int = NUM_CLASSES, width: float = 1.0, blocks: int | None = None):
        super().__init__()
        layers: list[nn.Module] = []
        cin, in_stage = 3, 0
        for v in VGG_CFGS[cfg]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                in_stage = 0
            elif in_stage < _cap(99, blocks):
                in_stage += 1
                c = _div(v * width)
                layers += [nn.Conv2d(cin, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
                cin = c
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))  # from 1x1 at 32x32 input: each value copied 49 times
        hidden = _div(4096 * width)
        self.classifier = nn.Sequential(nn.Linear(cin * 49, hidden), nn.ReLU(True), nn.Dropout(),
                                        nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(),
                                        nn.Linear(hidden, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def vgg11_bn(num_classes: int = NUM_CLASSES, width: float = 1.0, blocks: int | None = None) -> nn.Module:
    return VGG("A", num_classes, width, blocks)


def vgg16_bn(num_classes: int = NUM_CLASSES, width: float = 1.0, blocks: int | None = None) -> nn.Module:
    return VGG("D", num_classes, width, blocks)


# -- SqueezeNet 1.1 ----------------------------------------------------------------------
class Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, e1: int, e3: int):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, e1, 1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, e3, 3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], 1)


class SqueezeNet(nn.Module):
    """SqueezeNet 1.1 (no BatchNorm)."""

    # the Fire modules (squeeze, expand) between the max pools
    STAGES = (((16, 64), (16, 64)), ((32, 128), (32, 128)), ((48, 192), (48, 192), (64, 256), (64, 256)))

    def __init__(self, num_classes: int = NUM_CLASSES, width: float = 1.0, blocks: int | None = None):
        super().__init__()

        def c(v: int) -> int:
            return _div(v * width)

        layers: list[nn.Module] = [nn.Conv2d(3, c(64), 3, stride=2), nn.ReLU(inplace=True)]
        cin = c(64)
        for fires in self.STAGES:
            layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
            for sq, e in fires[:_cap(len(fires), blocks)]:
                layers.append(Fire(cin, c(sq), c(e), c(e)))
                cin = 2 * c(e)
        self.features = nn.Sequential(*layers)
        final_conv = nn.Conv2d(cin, num_classes, 1)
        self.classifier = nn.Sequential(nn.Dropout(0.5), final_conv, nn.ReLU(inplace=True),
                                        nn.AdaptiveAvgPool2d((1, 1)))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, 0.0, 0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


def squeezenet1_1(num_classes: int = NUM_CLASSES, width: float = 1.0, blocks: int | None = None) -> nn.Module:
    return SqueezeNet(num_classes, width, blocks)


# -- GoogLeNet ---------------------------------------------------------------------------
class BasicConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    def __init__(self, cin: int, ch1: int, ch3red: int, ch3: int, ch5red: int, ch5: int, pool_proj: int):
        super().__init__()
        self.branch1 = BasicConv2d(cin, ch1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(cin, ch3red, kernel_size=1),
                                     BasicConv2d(ch3red, ch3, kernel_size=3, padding=1))
        # torchvision uses a 3x3 (not 5x5) here, a known quirk kept for compatibility
        self.branch3 = nn.Sequential(BasicConv2d(cin, ch5red, kernel_size=1),
                                     BasicConv2d(ch5red, ch5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), BasicConv2d(cin, pool_proj, kernel_size=1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class GoogLeNet(nn.Module):
    """GoogLeNet without the auxiliary classifiers (torchvision's eval-mode graph)."""

    # name -> (1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool projection), one group between max pools each
    STAGES = ({"inception3a": (64, 96, 128, 16, 32, 32), "inception3b": (128, 128, 192, 32, 96, 64)},
              {"inception4a": (192, 96, 208, 16, 48, 64), "inception4b": (160, 112, 224, 24, 64, 64),
               "inception4c": (128, 128, 256, 24, 64, 64), "inception4d": (112, 144, 288, 32, 64, 64),
               "inception4e": (256, 160, 320, 32, 128, 128)},
              {"inception5a": (256, 160, 320, 32, 128, 128), "inception5b": (384, 192, 384, 48, 128, 128)})

    def __init__(self, num_classes: int = NUM_CLASSES, width: float = 1.0, blocks: int | None = None):
        super().__init__()
        c64, c = _div(64 * width), _div(192 * width)
        self.conv1 = BasicConv2d(3, c64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(c64, c64, kernel_size=1)
        self.conv3 = BasicConv2d(c64, c, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.stages: list[list[str]] = []
        for i, stage in enumerate(self.STAGES):
            kept = list(stage)[:_cap(len(stage), blocks)]
            for name in kept:
                cs = [_div(v * width) for v in stage[name]]
                setattr(self, name, Inception(c, *cs))
                c = cs[0] + cs[2] + cs[4] + cs[5]
            self.stages.append(kept)
            if i < len(self.STAGES) - 1:
                setattr(self, f"maxpool{i + 3}", nn.MaxPool2d(3 - i, stride=2, ceil_mode=True))  # 3x3, then 2x2
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=0.2)
        self.fc = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)

    def forward(self, x):
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        for i, stage in enumerate(self.stages):
            for name in stage:
                x = getattr(self, name)(x)
            if i < len(self.stages) - 1:
                x = getattr(self, f"maxpool{i + 3}")(x)
        return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))


def googlenet(num_classes: int = NUM_CLASSES, width: float = 1.0, blocks: int | None = None) -> nn.Module:
    return GoogLeNet(num_classes, width, blocks)


# -- DenseNet-121 ------------------------------------------------------------------------
class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int, bn_size: int):
        super().__init__()
        self.norm1, self.relu1 = nn.BatchNorm2d(cin), nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, bn_size * growth, 1, bias=False)
        self.norm2, self.relu2 = nn.BatchNorm2d(bn_size * growth), nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(features, 1)
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class DenseBlock(nn.ModuleDict):
    def __init__(self, n: int, cin: int, growth: int, bn_size: int):
        super().__init__({f"denselayer{i + 1}": DenseLayer(cin + i * growth, growth, bn_size) for i in range(n)})

    def forward(self, x):
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm, self.relu = nn.BatchNorm2d(cin), nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.pool = nn.AvgPool2d(2, 2)


class DenseNet(nn.Module):
    def __init__(self, block_config: tuple[int, ...] = (6, 12, 24, 16), num_classes: int = NUM_CLASSES,
                 width: float = 1.0, blocks: int | None = None, growth: int = 32, init_features: int = 64,
                 bn_size: int = 4):
        super().__init__()
        block_config = tuple(_cap(n, blocks) for n in block_config)
        growth, c = max(2, round(growth * width)), _div(init_features * width)
        self.features = nn.Sequential()
        self.features.add_module("conv0", nn.Conv2d(3, c, 7, 2, 3, bias=False))
        self.features.add_module("norm0", nn.BatchNorm2d(c))
        self.features.add_module("relu0", nn.ReLU(inplace=True))
        self.features.add_module("pool0", nn.MaxPool2d(3, 2, 1))
        for i, n in enumerate(block_config):
            self.features.add_module(f"denseblock{i + 1}", DenseBlock(n, c, growth, bn_size))
            c += n * growth
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}", Transition(c, c // 2))
                c //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(c))
        self.classifier = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x):
        out = F.relu(self.features(x), inplace=True)
        out = torch.flatten(F.adaptive_avg_pool2d(out, (1, 1)), 1)
        return self.classifier(out)


def densenet121(num_classes: int = NUM_CLASSES, width: float = 1.0, blocks: int | None = None) -> nn.Module:
    return DenseNet((6, 12, 24, 16), num_classes, width, blocks)


# -- MobileNetV2 -------------------------------------------------------------------------
class InvertedResidualV2(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = int(round(cin * expand))
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn_act(cin, hidden, 1, act=nn.ReLU6))
        layers += [_conv_bn_act(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    # expand ratio, channels, repeats, stride of the first
    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))

    def __init__(self, num_classes: int = NUM_CLASSES, width: float = 1.0, blocks: int | None = None):
        super().__init__()
        cin, last = _div(32 * width), _div(1280 * max(1.0, width))
        features: list[nn.Module] = [_conv_bn_act(3, cin, 3, 2, act=nn.ReLU6)]
        for t, c, n, s in self.SETTINGS:
            cout = _div(c * width)
            for i in range(_cap(n, blocks)):
                features.append(InvertedResidualV2(cin, cout, s if i == 0 else 1, t))
                cin = cout
        features.append(_conv_bn_act(cin, last, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


def mobilenet_v2(num_classes: int = NUM_CLASSES, width: float = 1.0, blocks: int | None = None) -> nn.Module:
    return MobileNetV2(num_classes, width, blocks)


# -- ShuffleNetV2 ------------------------------------------------------------------------
def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    batchsize, num_channels, height, width = x.size()
    channels_per_group = num_channels // groups
    x = x.view(batchsize, groups, channels_per_group, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batchsize, num_channels, height, width)


class ShuffleUnit(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride = stride
        bf = cout // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
                nn.Conv2d(cin, bf, 1, bias=False), nn.BatchNorm2d(bf), nn.ReLU(inplace=True))
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            nn.Conv2d(cin if stride > 1 else bf, bf, 1, bias=False), nn.BatchNorm2d(bf), nn.ReLU(inplace=True),
            nn.Conv2d(bf, bf, 3, stride, 1, groups=bf, bias=False), nn.BatchNorm2d(bf),
            nn.Conv2d(bf, bf, 1, bias=False), nn.BatchNorm2d(bf), nn.ReLU(inplace=True))

    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, repeats: tuple[int, ...] = (4, 8, 4), channels: tuple[int, ...] = (24, 116, 232, 464, 1024),
                 num_classes: int = NUM_CLASSES, width: float = 1.0, blocks: int | None = None):
        super().__init__()
        repeats = tuple(_cap(n, blocks) for n in repeats)
        ch = [max(4, 2 * round(c * width / 2)) for c in channels]  # even: each unit splits the channels in two
        self.conv1 = nn.Sequential(nn.Conv2d(3, ch[0], 3, 2, 1, bias=False), nn.BatchNorm2d(ch[0]),
                                   nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = ch[0]
        for i, (n, cout) in enumerate(zip(repeats, ch[1:])):
            units = [ShuffleUnit(cin, cout, 2)] + [ShuffleUnit(cout, cout, 1) for _ in range(n - 1)]
            setattr(self, f"stage{i + 2}", nn.Sequential(*units))
            cin = cout
        self.conv5 = nn.Sequential(nn.Conv2d(cin, ch[-1], 1, bias=False), nn.BatchNorm2d(ch[-1]), nn.ReLU(inplace=True))
        self.fc = nn.Linear(ch[-1], num_classes)

    def forward(self, x):
        x = self.maxpool(self.conv1(x))
        x = self.conv5(self.stage4(self.stage3(self.stage2(x))))
        return self.fc(x.mean([2, 3]))


def shufflenet_v2_x1_0(num_classes: int = NUM_CLASSES, width: float = 1.0, blocks: int | None = None) -> nn.Module:
    return ShuffleNetV2(num_classes=num_classes, width=width, blocks=blocks)


# -- squeeze-and-excitation, EfficientNet-B0, RegNetY-400MF, MobileNetV3-small ------------
class SqueezeExcitation(nn.Module):
    """scale = gate(fc2(act(fc1(avgpool(x))))); return scale * x (torchvision.ops.SqueezeExcitation)."""

    def __init__(self, cin: int, squeeze: int, activation: Callable[..., nn.Module] = nn.ReLU,
                 scale_activation: Callable[..., nn.Module] = nn.Sigmoid):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.fc2 = nn.Conv2d(cin, squeeze, 1), nn.Conv2d(squeeze, cin, 1)
        self.activation, self.scale_activation = activation(), scale_activation()

    def forward(self, x):
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


class MBConv(nn.Module):
    def __init__(self, expand: int, k: int, stride: int, cin: int, cout: int):
        super().__init__()
        self.use_res_connect = stride == 1 and cin == cout
        hidden = _div(cin * expand)
        layers: list[nn.Module] = []
        if hidden != cin:
            layers.append(_conv_bn_act(cin, hidden, 1, act=nn.SiLU))
        layers += [_conv_bn_act(hidden, hidden, k, stride, groups=hidden, act=nn.SiLU),
                   SqueezeExcitation(hidden, max(1, cin // 4), activation=partial(nn.SiLU, inplace=True)),
                   _conv_bn_act(hidden, cout, 1, act=None)]
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        result = self.block(x)
        return result + x if self.use_res_connect else result  # stochastic depth: the identity in eval mode


class EfficientNet(nn.Module):
    # expand ratio, kernel, stride, in, out, layers (EfficientNet-B0)
    SETTINGS = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
                (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1))

    def __init__(self, num_classes: int = NUM_CLASSES, width: float = 1.0, blocks: int | None = None):
        super().__init__()
        stem = _div(32 * width)
        layers: list[nn.Module] = [_conv_bn_act(3, stem, 3, 2, act=nn.SiLU)]
        cin = stem
        for e, k, s, _, c, n in self.SETTINGS:
            cout = _div(c * width)
            layers.append(nn.Sequential(*[MBConv(e, k, s if i == 0 else 1, cin if i == 0 else cout, cout)
                                          for i in range(_cap(n, blocks))]))
            cin = cout
        last = 4 * cin
        layers.append(_conv_bn_act(cin, last, 1, act=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2, inplace=True), nn.Linear(last, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                r = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -r, r)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def efficientnet_b0(num_classes: int = NUM_CLASSES, width: float = 1.0, blocks: int | None = None) -> nn.Module:
    return EfficientNet(num_classes, width, blocks)


class ResBottleneckBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, group_width: int, se_ratio: float = 0.25):
        super().__init__()
        self.proj = None
        if cin != cout or stride != 1:
            self.proj = _conv_bn_act(cin, cout, 1, stride, act=None)
        self.f = nn.Sequential()
        self.f.add_module("a", _conv_bn_act(cin, cout, 1))
        self.f.add_module("b", _conv_bn_act(cout, cout, 3, stride, groups=cout // min(group_width, cout)))
        self.f.add_module("se", SqueezeExcitation(cout, max(1, int(round(se_ratio * cin)))))
        self.f.add_module("c", _conv_bn_act(cout, cout, 1, act=None))
        self.activation = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.proj(x) + self.f(x) if self.proj is not None else x + self.f(x)
        return self.activation(x)


class RegNet(nn.Module):
    """RegNetY-400MF: torchvision's BlockParams.from_init_params(depth=16, w_0=48, w_a=27.89, w_m=2.09,
    group_width=8, se_ratio=0.25) gives these stage widths and depths."""

    WIDTHS, DEPTHS, GROUP_WIDTH = (48, 104, 208, 440), (1, 3, 6, 6), 8

    def __init__(self, num_classes: int = NUM_CLASSES, width: float = 1.0, blocks: int | None = None):
        super().__init__()
        g = self.GROUP_WIDTH
        self.stem = _conv_bn_act(3, 32, 3, 2)
        cin, stages = 32, []
        for i, (w, d) in enumerate(zip(self.WIDTHS, self.DEPTHS)):
            cout = max(g, round(w * width / g) * g)  # a multiple of the group width
            stages.append((f"block{i + 1}", nn.Sequential(*[ResBottleneckBlock(cin if j == 0 else cout, cout,
                                                                               2 if j == 0 else 1, g)
                                                           for j in range(_cap(d, blocks))])))
            cin = cout
        self.trunk_output = nn.Sequential()
        for name, stage in stages:
            self.trunk_output.add_module(name, stage)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, mean=0.0, std=math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, mean=0.0, std=0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.trunk_output(self.stem(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def regnet_y_400mf(num_classes: int = NUM_CLASSES, width: float = 1.0, blocks: int | None = None) -> nn.Module:
    return RegNet(num_classes, width, blocks)


_BN_V3 = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)


class InvertedResidualV3(nn.Module):
    def __init__(self, cin: int, k: int, expanded: int, cout: int, se: bool, act: type[nn.Module], stride: int):
        super().__init__()
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expanded != cin:
            layers.append(_conv_bn_act(cin, expanded, 1, act=act, norm=_BN_V3))
        layers.append(_conv_bn_act(expanded, expanded, k, stride, groups=expanded, act=act, norm=_BN_V3))
        if se:
            layers.append(SqueezeExcitation(expanded, _div(expanded // 4), scale_activation=nn.Hardsigmoid))
        layers.append(_conv_bn_act(expanded, cout, 1, act=None, norm=_BN_V3))
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        result = self.block(x)
        return result + x if self.use_res_connect else result


class MobileNetV3Small(nn.Module):
    RE, HS = nn.ReLU, nn.Hardswish
    # input, kernel, expanded, output, squeeze-excitation, activation, stride
    SETTINGS = ((16, 3, 16, 16, True, RE, 2), (16, 3, 72, 24, False, RE, 2), (24, 3, 88, 24, False, RE, 1),
                (24, 5, 96, 40, True, HS, 2), (40, 5, 240, 40, True, HS, 1), (40, 5, 240, 40, True, HS, 1),
                (40, 5, 120, 48, True, HS, 1), (48, 5, 144, 48, True, HS, 1), (48, 5, 288, 96, True, HS, 2),
                (96, 5, 576, 96, True, HS, 1), (96, 5, 576, 96, True, HS, 1))

    def __init__(self, num_classes: int = NUM_CLASSES, width: float = 1.0, blocks: int | None = None):
        super().__init__()

        def c(v: int) -> int:
            return _div(v * width)

        layers: list[nn.Module] = [_conv_bn_act(3, c(16), 3, 2, act=nn.Hardswish, norm=_BN_V3)]
        repeats = 0  # residual blocks since the last block that changed the shape: a stage's repeats
        for cin, k, e, cout, se, act, s in self.SETTINGS:
            repeats = repeats + 1 if s == 1 and cin == cout else 0
            if repeats >= _cap(99, blocks):
                continue
            layers.append(InvertedResidualV3(c(cin), k, c(e), c(cout), se, act, s))
        last_in = c(96)
        layers.append(_conv_bn_act(last_in, 6 * last_in, 1, act=nn.Hardswish, norm=_BN_V3))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        last = c(1024)
        self.classifier = nn.Sequential(nn.Linear(6 * last_in, last), nn.Hardswish(inplace=True),
                                        nn.Dropout(0.2, inplace=True), nn.Linear(last, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def mobilenet_v3_small(num_classes: int = NUM_CLASSES, width: float = 1.0, blocks: int | None = None) -> nn.Module:
    return MobileNetV3Small(num_classes, width, blocks)


# -- ConvNeXt-T --------------------------------------------------------------------------
class Permute(nn.Module):
    def __init__(self, dims: list[int]):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return torch.permute(x, self.dims)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor."""

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
