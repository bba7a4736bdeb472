"""The ANN zoo's classic CNNs, as torchvision defines them (tests/zoo/ann.py): ResNet-18/34, VGG-11/16
with BatchNorm, SqueezeNet 1.1, GoogLeNet and DenseNet-121."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from tests.zoo.ann_common import NUM_CLASSES, _cap, _div, init_like_torchvision


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
        init_like_torchvision(self)

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
