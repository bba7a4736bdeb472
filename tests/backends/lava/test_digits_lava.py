"""The digits demo on the Loihi emulation: reset to 0 and fixed point cost little after calibration.

On the stored digits CNN (tests/nets.py), not one trained in the test run. The Loihi emulation is integer
arithmetic; the float SNN it is compared with sums non-dyadic floats, so the bound keeps a margin of about
ten samples (measured on 450 test images: 99.56% float, 98.89% emulated; 0.22 points per sample).
"""

import pytest

from snnc.core import datasets
from snnc.backends.lava import convert, emulate
from snnc.demo import accuracy
from snnc.ir.ops import LoihiInfo
from snnc.runtime import Session
from tests.nets import digits_cnn


@pytest.fixture(scope="module")
def digits():
    return datasets.digits(), digits_cnn()


def test_loihi_emulation_keeps_digits_accuracy(digits):
    import snnc

    data, model = digits
    x, y = data.x_test, data.y_test
    calib = data.x_train[:256]
    T = 32
    soft = accuracy(Session(snnc.convert(model, calib)).predict(x, T), y)
    snn = convert(model, calib, T=T, calib_samples=64)
    assert all(op.reset.kind == "hard" for op in snn if hasattr(op, "reset"))
    assert LoihiInfo.of(snn).threshold_factors  # thresholds were calibrated for reset-to-0
    loihi = emulate(snn)
    acc = accuracy(loihi.predict(x, T), y)
    assert acc >= soft - 3.0, (soft, acc)
    assert loihi.latency == 3  # conv, conv (pool folded in), dense: one step each
