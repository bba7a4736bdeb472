"""Writes tests/data/digits_cnn.npz, the digits CNN the accuracy tests use (run only to replace the file).

    .venv/bin/python tests/data/make_digits_cnn.py

The tests never train: training gives other weights on another CPU. This trains
the demo's DigitsCNN once (snnc.demo.train_digits_cnn), folds each BatchNorm
into its convolution, rounds the convolutions' weights to 6 significant bits,
the readout's to 5 and every bias to 8 (multiples of a power of two per
tensor), then stores the network with
BatchNorms that are exact in float32 (running_var 4, eps 2^-60, gamma 1 or 2) so
the rounded values are what every engine multiplies. The file holds float32
arrays; tests/test_fixture_nets.py checks what the tests rely on (accuracy,
exact float32 logits, clear margins), whatever machine made the file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from snnc.core import datasets  # noqa: E402
from snnc.demo import DigitsCNN, accuracy, train_digits_cnn  # noqa: E402
from tests.nets import BN_EPS, DIGITS_CNN_FILE, round_bits  # noqa: E402


def freeze(trained: DigitsCNN) -> DigitsCNN:
    model = DigitsCNN().eval()
    with torch.no_grad():
        for ci, bi in ((0, 1), (4, 5)):
            conv, bn = trained.features[ci], trained.features[bi]
            k = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
            w = round_bits(conv.weight.double() * k.view(-1, 1, 1, 1), 6)
            b = round_bits((conv.bias.double() - bn.running_mean.double()) * k + bn.bias.double(), 8)
            gamma = 1.0 + (torch.arange(w.shape[0]) % 2).double()  # BN scale gamma/2: 1/2 or 1, exact
            new_conv, new_bn = model.features[ci], model.features[bi]
            new_conv.weight.copy_(w * (2.0 / gamma).view(-1, 1, 1, 1))
            new_conv.bias.zero_()
            new_bn.eps = BN_EPS
            new_bn.running_var.fill_(4.0)
            new_bn.running_mean.zero_()
            new_bn.weight.copy_(gamma)
            new_bn.bias.copy_(b)
        fc, new_fc = trained.classifier[1], model.classifier[1]
        new_fc.weight.copy_(round_bits(fc.weight, 5))  # 5: every logit's sum then fits float32 (24 bits)
        new_fc.bias.copy_(round_bits(fc.bias, 8))
    return model


def main() -> None:
    data = datasets.digits()
    model = freeze(train_digits_cnn(data))
    with torch.no_grad():
        acc = accuracy(model(data.x_test).argmax(-1), data.y_test)
    np.savez_compressed(DIGITS_CNN_FILE, **{k: v.numpy() for k, v in model.state_dict().items()})
    print(f"wrote {DIGITS_CNN_FILE}: test accuracy {acc:.2f}%")


if __name__ == "__main__":
    main()
