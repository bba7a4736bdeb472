"""ANN-to-SNN conversion through the tensor and layout ops (issue 19), and compact-layout.

Layout ops (reshape, permute, flatten), mean and adaptive pooling are linear, so
the rate code carries them: a ShuffleNet-style ANN converts and its SNN rate
approaches the ANN as T grows. A product of two rate-coded values is not
linear and is refused by name.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import snnc
from snnc.core.errors import PassError
from snnc.frontends import trace
from snnc.passes.compact_layout import compact_layout, merged_blocks
from snnc.runtime import Session


class ShuffleNetLike(nn.Module):
    """conv -> ReLU -> channel shuffle (5-D view, transpose, flatten) -> conv -> ReLU -> adaptive pool (2, 2)
    -> permute + flatten -> linear, plus a head on x.mean([2, 3])."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8 * 4, 4)
        self.fc_gap = nn.Linear(8, 4)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        b, c, h, w = x.size()
        x = x.view(b, 2, c // 2, h, w)
        x = torch.transpose(x, 1, 2).contiguous().view(b, -1, h, w)
        x = torch.relu(self.conv2(x))
        x = F.adaptive_avg_pool2d(x, (2, 2))
        return self.fc(x.permute(0, 2, 3, 1).flatten(1)) + self.fc_gap(x.mean([2, 3]))


def _cosine(a, b) -> float:
    return float(F.cosine_similarity(a.flatten(), b.flatten(), 0))


def test_a_channel_shuffle_ann_converts_and_converges_with_T():
    torch.manual_seed(0)
    model, data = ShuffleNetLike().eval(), torch.rand(64, 3, 8, 8)
    snn = snnc.convert(model, data, "max")
    kinds = {op.kind for op in snn}
    assert {"reshape", "permute", "mean", "if"} <= kinds
    x = data[:8]
    want = model(x).detach()
    cos = [_cosine(Session(snn).run(x, T=t).mean(0), want) for t in (8, 64, 256)]
    assert cos[0] < cos[1] < cos[2] and cos[2] > 0.9999, cos


class SpikeProduct(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(6, 6), nn.Linear(6, 6)

    def forward(self, x):
        h = torch.relu(self.a(x))
        return h * torch.relu(self.b(h))  # both factors are rates after conversion


class InputProduct(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(6, 6)

    def forward(self, x):
        return torch.relu(self.a(x)) * x  # x is the same every step: linear in the rate


def test_a_product_of_two_rates_is_refused_by_name_and_one_with_the_input_converts():
    torch.manual_seed(0)
    data = torch.rand(32, 6)
    with pytest.raises(PassError, match=r"%mul \(mul\) from .*SpikeProduct.*not linear"):
        snnc.convert(SpikeProduct().eval(), data, "max")
    model = InputProduct().eval()
    snn = snnc.convert(model, data, "max")
    assert _cosine(Session(snn).run(data[:8], T=256).mean(0), model(data[:8]).detach()) > 0.999


def test_softmax_on_a_rate_is_refused_by_name():
    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(6, 6)

        def forward(self, x):
            return torch.softmax(torch.relu(self.a(x)), dim=-1)

    with pytest.raises(PassError, match=r"\(softmax\).*not linear"):
        snnc.convert(Head().eval(), torch.rand(16, 6), "max")


@pytest.mark.parametrize("perm,blocks", [((1, 0, 2, 3), [[1], [0], [2, 3]]), ((0, 1, 2), [[0, 1, 2]]),
                                         ((2, 0, 1), [[2], [0, 1]]), ((3, 2, 1, 0), [[3], [2], [1], [0]])])
def test_merged_blocks(perm, blocks):
    assert merged_blocks(perm) == blocks


def test_compact_layout_makes_the_shuffle_4d_and_computes_the_same():
    class Shuffle(nn.Module):
        def forward(self, x):
            b, c, h, w = x.size()
            return torch.transpose(x.view(b, 2, c // 2, h, w), 1, 2).flatten(1, 2) * 1.0

    g = trace(Shuffle(), (8, 3, 5))
    small = compact_layout(g)
    assert max(len(t.features) for t in small.types.values()) == 3  # was 4 features ([2, 4, 3, 5])
    assert max(len(t.features) for t in g.types.values()) == 4
    x = torch.randn(2, 8, 3, 5)
    assert torch.equal(Session(small).run(x), Shuffle()(x))


def test_compact_layout_merges_a_reshape_chain_into_one_4d_reshape():
    """The SJ transformers' QKV split: [3C, L] -> [3, H, C/H, L] -> flatten 0..1 -> chunks. The 5-D view
    (once time and batch fold) becomes one reshape [3C, L] -> [3H, C/H, L]; the result is the same."""
    from snnc.passes import PassManager, parse_pipeline

    class QKV(nn.Module):
        def forward(self, x):
            n, c3, length = x.shape
            q, k, v = x.reshape(n, 3, 2, c3 // 6, length).flatten(1, 2).chunk(3, 1)
            return (q @ k.transpose(-1, -2)) @ v

    g = trace(QKV(), (12, 5))
    assert max(len(t.features) for t in g.types.values()) == 4  # [3, 2, 2, 5]
    small = PassManager(parse_pipeline("compact-layout,dce")).run(g)
    assert max(len(t.features) for t in small.types.values()) == 3
    assert [op.kind for op in small].count("reshape") == 1 and "flatten" not in {op.kind for op in small}
    x = torch.randn(2, 12, 5)
    assert torch.allclose(Session(small).run(x), QKV()(x), atol=1e-6)
    assert torch.equal(Session(small).run(x), Session(g).run(x))
