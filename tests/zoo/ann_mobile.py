"""The ANN zoo's mobile networks, as torchvision defines them (tests/zoo/ann.py): MobileNetV2,
ShuffleNetV2, EfficientNet-B0, RegNetY-400MF and MobileNetV3-small, with squeeze-and-excitation."""

from __future__ import annotations

import math
from functools import partial
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from tests.zoo.ann_common import NUM_CLASSES, _cap, _conv_bn_act, _div, init_like_torchvision


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
        init_like_torchvision(self)

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
        init_like_torchvision(self, linear="uniform")

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
        init_like_torchvision(self)

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def mobilenet_v3_small(num_classes: int = NUM_CLASSES, width: float = 1.0, blocks: int | None = None) -> nn.Module:
    return MobileNetV3Small(num_classes, width, blocks)
