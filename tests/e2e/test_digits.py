"""End to end on the bundled digits data set: train, convert, run (the demo's path)."""

import pytest

import snnc
from snnc import datasets
from snnc.demo import accuracy, pretrained_digits_cnn
from snnc.runtime import Session


@pytest.fixture(scope="module")
def trained():
    data = datasets.digits()
    return data, pretrained_digits_cnn(data)


def test_percentile_snn_at_T64_is_within_1_5_points_of_ann(trained):
    import torch

    data, model = trained
    with torch.no_grad():
        ann = accuracy(model(data.x_test).argmax(-1), data.y_test)
    assert ann > 95.0
    g = snnc.convert(model, data.x_train[:512], "99.9%")
    snn = accuracy(Session(g).predict(data.x_test, 64), data.y_test)
    assert snn >= ann - 1.5, (ann, snn)


def test_more_time_steps_help_max_norm(trained):
    data, model = trained
    s = Session(snnc.convert(model, data.x_train[:256], "max"))
    x, y = data.x_test[:200], data.y_test[:200]
    assert accuracy(s.predict(x, 4), y) < accuracy(s.predict(x, 32), y)
