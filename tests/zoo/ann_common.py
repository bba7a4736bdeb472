"""What the architecture families of the ANN zoo share: the class count, the input shape and
torchvision's helpers (`_make_divisible`, Conv2dNormActivation) with the `blocks` cap (tests/zoo/ann.py)."""

from __future__ import annotations

import math
from typing import Callable

import torch.nn as nn


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


def init_like_torchvision(model: nn.Module, linear: str = "normal") -> None:
    """torchvision's init of VGG and the mobile nets: conv weights kaiming-normal (fan_out, gain sqrt 2),
    conv biases 0; linear weights N(0, 0.01) (`linear="normal"`) or U(-1/sqrt(out), 1/sqrt(out))
    (`"uniform"`, EfficientNet), linear biases 0. In module order, as torchvision draws them."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear == "uniform":
                r = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -r, r)
            else:
                nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
