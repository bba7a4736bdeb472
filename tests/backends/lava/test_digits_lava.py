"""The digits demo on the Loihi emulation: reset to 0 and fixed point cost little after calibration."""

import pytest
from snnc import datasets
from snnc.backends.lava import convert
from snnc.demo import accuracy, pretrained_digits_cnn
from snnc.runtime import Session
from snnc.runtime.loihi import LoihiSession


@pytest.fixture(scope="module")
def digits():
    data = datasets.digits()
    return data, pretrained_digits_cnn(data)


def test_loihi_emulation_keeps_digits_accuracy(digits):
    import snnc

    data, model = digits
    x, y = data.x_test[:150], data.y_test[:150]
    calib = data.x_train[:256]
    T = 32
    soft = accuracy(Session(snnc.convert(model, calib)).predict(x, T), y)
    snn = convert(model, calib, T=T, calib_samples=64)
    assert all(op.reset.kind == "hard" for op in snn if hasattr(op, "reset"))
    assert snn.meta["loihi"]["threshold_factors"]  # thresholds were calibrated for reset-to-0
    loihi = LoihiSession(snn)
    acc = accuracy(loihi.predict(x, T), y)
    assert acc >= soft - 3.0, (soft, acc)
    assert loihi.latency == 3  # conv, conv (pool folded in), dense: one step each
