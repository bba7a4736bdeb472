"""ConvNeXt's and ViT's ops in an ANN-to-SNN conversion where they read rate-coded (spiking) values (issue 19).

torchvision's ConvNeXt and ViT have no ReLU, so in the zoo nothing spikes and the hybrid
graph is the ANN itself. Here a ReLU sits in front of each op, so the op reads rates:
a layer scale (a Scale by a weight), a class token and position embedding (Constant,
AddConst) are linear and convert as they are; LayerNorm has no rate code and runs on the
decoded rate with analog='layer_norm' (refused by name without it); self-attention
multiplies two rate-coded values (q k^T), which no rate code carries: refused by name
unless analog= names 'matmul', which decodes both operands.
"""

import pytest
import torch
import torch.nn as nn

import snnc
from snnc.core.errors import PassError
from snnc.ir import ops
from snnc.passes.analog import AnalogReport
from snnc.runtime import Session

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class ConvNeXtTail(nn.Module):
    """conv, ReLU, channel LayerNorm (permute, LayerNorm, permute), Linear, ReLU, layer scale, head."""

    def __init__(self):
        super().__init__()
        self.conv, self.relu = nn.Conv2d(3, 6, 3, padding=1), nn.ReLU()
        self.norm, self.fc, self.relu2 = nn.LayerNorm(6), nn.Linear(6, 6), nn.ReLU()
        self.gamma = nn.Parameter(torch.linspace(0.5, 1.5, 6).reshape(6, 1, 1))
        self.head = nn.Linear(6 * 16, 4)

    def forward(self, x):
        h = self.relu(self.conv(x))
        y = self.relu2(self.fc(self.norm(h.permute(0, 2, 3, 1)))).permute(0, 3, 1, 2)
        return self.head(torch.flatten(self.gamma * y + h, 1))


class TokenTail(nn.Module):
    """ReLU tokens, a class token in front, a position embedding, x[:, 0] and the mean of the rest."""

    def __init__(self, attention: bool = False):
        super().__init__()
        self.fc, self.relu = nn.Linear(5, 8), nn.ReLU()
        self.class_token = nn.Parameter(torch.randn(1, 1, 8) * 0.5)
        self.pos = nn.Parameter(torch.randn(1, 4, 8) * 0.5)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True) if attention else None
        self.head = nn.Linear(8, 3)

    def forward(self, x):  # [N, 3, 5]
        n = x.shape[0]
        t = torch.cat([self.class_token.expand(n, -1, -1), self.relu(self.fc(x))], dim=1) + self.pos
        if self.attn is not None:
            t, _ = self.attn(t, t, t, need_weights=False)
        return self.head(t[:, 0]) + self.head(t[:, 1:]).mean(1)


def _converged(model: nn.Module, snn, x: torch.Tensor) -> list[float]:
    with torch.no_grad():
        ann = model(x)
    out = Session(snn).run(x, 256)
    return [float((out[:T].mean(0) - ann).abs().max() / ann.abs().max()) for T in (4, 32, 256)]


def test_layer_norm_on_rates_is_refused_without_analog_naming_it():
    torch.manual_seed(0)
    model, calib = ConvNeXtTail().eval(), torch.rand(32, 3, 4, 4)
    with pytest.raises(PassError) as info:
        snnc.convert(model, calib, show_progress=False)
    line = info.value.message
    assert "\n" not in line and "(layer_norm) from 'norm'" in line and "--analog layer_norm" in line


def test_layer_norm_runs_on_the_decoded_rate_and_the_layer_scale_on_spikes():
    torch.manual_seed(0)
    model, calib = ConvNeXtTail().eval(), torch.rand(64, 3, 4, 4)
    x = calib[:4]
    snn = snnc.convert(model, calib, "max", show_progress=False, analog="layer_norm")
    (ln,) = [op for op in snn if isinstance(op, ops.LayerNorm)]
    assert isinstance(snn[ln.inputs[0]], ops.RateDecode)
    assert any(isinstance(op, ops.Scale) and op.weight is not None for op in snn)  # gamma, per channel
    err = _converged(model, snn, x)
    assert err[0] > err[1] > err[2] and err[2] < 0.05, err
    undecoded = snn.copy()  # the layer norm of each step's spikes: another network
    undecoded.replace_op(ln.replace(inputs=snn[ln.inputs[0]].inputs))
    out = Session(snn).run(x, 64)
    assert (Session(undecoded).run(x, 64) - out).abs().max() > 0.05 * out.abs().max()


def test_class_token_and_position_embedding_convert_exactly_on_rates():
    """A constant fed at every step has itself as its rate: no analog op, and the SNN converges to the ANN."""
    torch.manual_seed(1)
    model, calib = TokenTail().eval(), torch.rand(64, 3, 5)
    snn = snnc.convert(model, calib, "max", show_progress=False)
    kinds = {op.kind for op in snn}
    assert {"constant", "add_const", "if"} <= kinds and "rate_decode" not in kinds
    err = _converged(model, snn, calib[:4])
    assert err[0] > err[2] and err[2] < 0.05, err


def test_attention_on_rates_is_refused_naming_the_product_and_the_module():
    torch.manual_seed(2)
    model, calib = TokenTail(attention=True).eval(), torch.rand(32, 3, 5)
    with pytest.raises(PassError) as info:
        snnc.convert(model, calib, show_progress=False, analog="softmax")
    line = info.value.message
    assert "\n" not in line and "(matmul) from 'attn' (torch.nn.MultiheadAttention)" in line
    assert "--analog matmul" in line


def test_attention_on_rates_runs_on_decoded_rates_with_analog_matmul():
    """q k^T reads both decoded rates; the softmax then reads an analog value (no second decode), and its
    product with the rate-coded v is linear in v (like squeeze-excitation's gate)."""
    torch.manual_seed(2)
    model, calib = TokenTail(attention=True).eval(), torch.rand(64, 3, 5)
    snn = snnc.convert(model, calib, "max", show_progress=False, analog="softmax,matmul")
    scores, mix = [op for op in snn if isinstance(op, ops.MatMul)]
    assert all(isinstance(snn[i], ops.RateDecode) for i in scores.inputs)
    assert not any(isinstance(snn[i], ops.RateDecode) for i in mix.inputs)
    report = AnalogReport.of(snn)
    assert report.decoded_ops == {"softmax": 1, "matmul": 1}
    err = _converged(model, snn, calib[:4])
    assert err[0] > err[1] > err[2] and err[2] < 0.05, err
    undecoded = snn.copy()  # the product of each step's q and k: another network
    undecoded.replace_op(scores.replace(inputs=tuple(snn[i].inputs[0] for i in scores.inputs)))
    out = Session(snn).run(calib[:4], 64)
    assert (Session(undecoded).run(calib[:4], 64) - out).abs().max() > 0.01 * out.abs().max()
