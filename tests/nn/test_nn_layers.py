"""Step-mode-aware layers: torch-compatible state_dicts, 's'/'m' equivalence, Dropout masks."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from snnc.nn import functional, layer
from snnc.nn.errors import ConfigError

# (snnc layer, torch layer, constructor args, one input step [N, *])
CASES = [
    (layer.Conv1d, nn.Conv1d, (3, 4, 3), (2, 3, 10)),
    (layer.Conv2d, nn.Conv2d, (3, 4, 3), (2, 3, 8, 8)),
    (layer.Linear, nn.Linear, (5, 3), (2, 5)),
    (layer.BatchNorm1d, nn.BatchNorm1d, (4,), (2, 4, 6)),
    (layer.BatchNorm2d, nn.BatchNorm2d, (4,), (2, 4, 5, 5)),
    (layer.MaxPool2d, nn.MaxPool2d, (2,), (2, 3, 8, 8)),
    (layer.AvgPool2d, nn.AvgPool2d, (2,), (2, 3, 8, 8)),
    (layer.AdaptiveAvgPool2d, nn.AdaptiveAvgPool2d, ((2, 3),), (2, 3, 8, 8)),
    (layer.Flatten, nn.Flatten, (), (2, 3, 4, 4)),
]
IDS = [c[0].__name__ for c in CASES]


@pytest.mark.parametrize("ours,theirs,args,shape", CASES, ids=IDS)
def test_state_dict_and_single_step_match_torch(ours, theirs, args, shape):
    torch.manual_seed(0)
    ref = theirs(*args)
    m = ours(*args, step_mode="s")
    assert isinstance(m, theirs)
    assert list(m.state_dict()) == list(ref.state_dict())
    m.load_state_dict(ref.state_dict())
    x = torch.randn(shape)
    assert torch.equal(m(x), ref(x))


@pytest.mark.parametrize("ours,theirs,args,shape", CASES, ids=IDS)
def test_multi_step_equals_per_step(ours, theirs, args, shape):
    torch.manual_seed(0)
    m = ours(*args, step_mode="m").eval()  # eval: BatchNorm uses its running statistics in both paths
    x_seq = torch.randn((3, *shape))
    with torch.no_grad():
        y_seq = m(x_seq)
        m.step_mode = "s"
        per_step = functional.multi_step_forward(x_seq, m)
    torch.testing.assert_close(y_seq, per_step, rtol=1e-6, atol=1e-6)


def test_batchnorm_multi_step_training_uses_the_whole_sequence_as_batch():
    torch.manual_seed(0)
    bn = layer.BatchNorm2d(4, step_mode="m")
    ref = nn.BatchNorm2d(4)
    x_seq = torch.randn(3, 2, 4, 5, 5)
    torch.testing.assert_close(bn(x_seq), ref(x_seq.flatten(0, 1)).view_as(x_seq))
    torch.testing.assert_close(bn.running_mean, ref.running_mean)


def test_repr_shows_step_mode():
    assert repr(layer.Conv2d(3, 8, 3, padding=1, bias=False)) == (
        "Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False, step_mode=s)"
    )
    assert "step_mode=m" in repr(layer.Flatten(step_mode="m"))


def test_dropout_one_mask_per_sequence():
    torch.manual_seed(0)
    drop = layer.Dropout(0.5, step_mode="m")
    y_seq = drop(torch.ones(6, 4, 32))
    zero = y_seq == 0
    assert zero[0].any() and (~zero[0]).any()
    assert all(torch.equal(zero[t], zero[0]) for t in range(6))
    assert set(y_seq.unique().tolist()) == {0.0, 2.0}  # kept values scaled by 1 / (1 - p)
    drop.reset()
    assert not torch.equal(drop(torch.ones(6, 4, 32)) == 0, zero)


def test_dropout_single_step_keeps_its_mask_until_reset():
    torch.manual_seed(0)
    drop = layer.Dropout(0.5)
    first = drop(torch.ones(4, 32))
    assert torch.equal(drop(torch.ones(4, 32)), first)
    functional.reset_net(drop)
    assert not torch.equal(drop(torch.ones(4, 32)), first)


def test_dropout_modes_agree_and_eval_is_identity():
    x_seq = torch.rand(5, 2, 3, 4, 4)
    for cls in (layer.Dropout, layer.Dropout2d):
        torch.manual_seed(1)
        m = cls(0.3, step_mode="m")
        y_m = m(x_seq)
        m.reset()
        m.step_mode = "s"
        torch.manual_seed(1)
        assert torch.equal(functional.multi_step_forward(x_seq, m), y_m)
        m.eval()
        assert torch.equal(m(x_seq[0]), x_seq[0])
    assert list(layer.Dropout().state_dict()) == list(nn.Dropout().state_dict()) == []
    with pytest.raises(ConfigError):
        layer.Dropout(1.0)


def test_dropout2d_drops_whole_channels():
    torch.manual_seed(0)
    y = layer.Dropout2d(0.5, step_mode="m")(torch.ones(3, 2, 8, 4, 4))
    per_channel = (y == 0).flatten(3)
    assert torch.equal(per_channel.all(-1), per_channel.any(-1))
