"""Issue 19: max pooling converts to an SNN whose output converges to the ANN's as T grows.

The networks are constructed (tests/nets.py: dyadic weights, BatchNorm statistics set), never trained.
"""

import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import snnc
from snnc.core.errors import LoweringError
from snnc.frontends import trace
from snnc.ir import load, ops, save
from snnc.passes import conversion_context, convert_graph, reorder_maxpool
from snnc.runtime import Session
from snnc.runtime.interpreter import Interpreter
from snnc.runtime.kernels import running_max_pool2d
from tests.nets import set_bn, set_layer

OLD = "fuse-bn,calibrate,normalize,to-time-layout,relu-to-if,dce"  # max over spikes: the behaviour issue 19 fixes
REORDER_ONLY = "fuse-bn,reorder-maxpool,calibrate,normalize,to-time-layout,relu-to-if,dce"


def _construct(m: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for layer in m.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            set_layer(layer, g, (-8, 8, 5), (-4, 4, 5))
        elif isinstance(layer, nn.BatchNorm2d):
            set_bn(layer, g)
    return m.eval()


def vgg(c: int = 8) -> nn.Module:
    """conv-BN-ReLU-MaxPool three times, then a classifier (vgg_bn in small)."""
    layers = []
    cin = 3
    for cout in (c, 2 * c, 2 * c):
        layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]
        cin = cout
    return _construct(nn.Sequential(*layers, nn.Flatten(), nn.Linear(cin * 4, 10)), seed=0)


class ResidualPool(nn.Module):
    """A max pooling after an Add of two spiking branches: no ReLU right before it, so nothing to reorder."""

    def __init__(self, c: int = 8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.ReLU())
        self.branch = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(c * 64, 10))

    def forward(self, x):
        s = self.stem(x)
        return self.head(self.pool(s + self.branch(s)))


def _x(n: int = 16) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def _cosines(model: nn.Module, x: torch.Tensor, steps, pipeline: str | None = None) -> list[float]:
    g = convert_graph(trace(model, tuple(x.shape[1:])), conversion_context(x, "99.9%"), pipeline=pipeline)
    with torch.no_grad():
        ann = model(x)
    s = Session(g)
    return [float(F.cosine_similarity(s.run(x, T).mean(0).flatten(), ann.flatten(), 0)) for T in steps]


def test_vgg_with_max_pooling_converges_to_the_ann_as_T_grows():
    cos = _cosines(vgg(), _x(), (4, 16, 64, 256))
    assert all(b >= a - 1e-4 for a, b in zip(cos, cos[1:])) and cos[-1] > cos[0], cos
    assert cos[-1] >= 0.995, cos


def test_max_over_spikes_plateaus_well_below_the_running_max_pool():
    """The old conversion (MaxPool2d over spikes) stays wrong at any T, and warns; reordering alone is not
    enough either (the pool then takes the max over per-step currents)."""
    model, x = vgg(), _x()
    new = _cosines(model, x, (256,))[0]
    with pytest.warns(UserWarning, match=r"max_pool2d\).*takes the max over spike trains"):
        old = _cosines(model, x, (64, 256), pipeline=OLD)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reordered = _cosines(model, x, (64, 256), pipeline=REORDER_ONLY)
    for plateau in (old, reordered):
        assert plateau[1] < new - 0.02 and abs(plateau[1] - plateau[0]) < 0.005, (plateau, new)


def test_the_default_conversion_does_not_warn_and_leaves_no_max_over_spikes():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = snnc.convert(vgg(), _x(8))
    kinds = [op.kind for op in g]
    # the first pool reads the constant input's conv: it stays an exact MaxPool2d, before the IF
    assert kinds.count("max_pool2d") == 1 and kinds.count("running_max_pool2d") == 2
    first_pool = next(op for op in g if op.kind == "max_pool2d")
    assert isinstance(g[first_pool.inputs[0]], ops.Conv2d)
    assert all(not isinstance(g[op.inputs[0]], ops.NeuronOp) for op in g if op.kind == "running_max_pool2d")


def test_max_pooling_after_a_residual_add_converges():
    model = _construct(ResidualPool(), seed=3)
    x = _x()
    cos = _cosines(model, x, (8, 64, 256))
    assert cos[-1] >= 0.995 and cos[-1] > cos[0], cos
    with pytest.warns(UserWarning, match="takes the max over spike trains"):
        old = _cosines(model, x, (256,), pipeline=OLD)[0]
    assert old < cos[-1] - 0.005, (old, cos)


def _ann(graph):
    return Interpreter(graph).run({graph.inputs[0].name: _x(8)})[graph.outputs[0].name]


def test_reorder_is_exact_on_the_ann_also_through_a_positive_batchnorm():
    bn = nn.BatchNorm2d(4)
    model = _construct(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), bn, nn.MaxPool2d(2, padding=1),
                                     nn.Flatten(), nn.Linear(4 * 8 * 8, 3)), seed=5)
    g = trace(model, (3, 16, 16))
    r = reorder_maxpool(g)
    kinds = [op.kind for op in r]
    assert kinds.index("max_pool2d") < kinds.index("relu") < kinds.index("batch_norm")
    assert torch.equal(_ann(g), _ann(r))


@pytest.mark.parametrize("case", ["negative_bn", "relu_read_twice"])
def test_reorder_leaves_what_does_not_commute(case):
    if case == "negative_bn":
        model = _construct(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), nn.MaxPool2d(2)), seed=5)
        with torch.no_grad():
            model[2].weight[1] = -1.0  # max(-y) != -max(y)
    else:
        class Twice(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv, self.pool = nn.Conv2d(3, 4, 3), nn.MaxPool2d(2)

            def forward(self, x):
                y = torch.relu(self.conv(x))
                return self.pool(y) + self.pool(y)  # noqa: the ReLU has two readers
        model = _construct(Twice(), seed=5)
    g = trace(model, (3, 16, 16))
    r = reorder_maxpool(g)
    assert str(r) == str(g)


def _reference(op, x: torch.Tensor) -> torch.Tensor:
    """Independent: sums over the whole run in float64, pooled, differenced."""
    sums = torch.cumsum(x.double(), 0)
    pooled = F.max_pool2d(sums.flatten(0, 1), op.kernel_size, op.stride, op.padding, op.dilation,
                          op.ceil_mode).unflatten(0, x.shape[:2])
    return torch.diff(pooled, dim=0, prepend=torch.zeros_like(pooled[:1]))


@pytest.mark.parametrize("kw", [{"kernel_size": (2, 2), "stride": (2, 2)},
                                {"kernel_size": (3, 3), "stride": (2, 2), "padding": (1, 1), "ceil_mode": True}])
def test_running_max_pool_kernel_matches_the_cumulative_definition_and_any_window_split(kw):
    op = ops.RunningMaxPool2d(name="p", inputs=("x",), **kw)
    spikes = (torch.rand(40, 2, 3, 7, 7, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    y, acc = running_max_pool2d(op, spikes, None, {})
    assert torch.equal(y.double(), _reference(op, spikes))  # integer sums: exact
    assert set(y.unique().tolist()) <= {0.0, 1.0}  # spikes in, spikes out
    y1, a1 = running_max_pool2d(op, spikes[:13], None, {})
    y2, a2 = running_max_pool2d(op, spikes[13:], a1, {})
    assert torch.equal(torch.cat([y1, y2]), y) and torch.equal(a2, acc)
    currents = torch.randn(40, 2, 3, 7, 7, generator=torch.Generator().manual_seed(1))
    yc, _ = running_max_pool2d(op, currents, None, {})
    torch.testing.assert_close(yc.double().cumsum(0), _reference(op, currents).cumsum(0), atol=1e-4, rtol=0)


@pytest.mark.parametrize("channels_last", [False, True])
def test_native_running_max_pool_is_bit_identical_to_the_torch_loop(channels_last, monkeypatch):
    """The C loop (2x2/stride 2 on even planes) gives the torch loop's bits, in either layout, from any state."""
    from snnc.runtime import kernels, native

    if not native.available():
        pytest.skip(f"native kernels unavailable: {native.why_unavailable()}")
    op = ops.RunningMaxPool2d(name="p", inputs=("x",), kernel_size=(2, 2), stride=(2, 2))
    g = torch.Generator().manual_seed(3)
    x = torch.randn(9 * 4, 5, 6, 8, generator=g)  # analog currents: float rounding matters
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x = x.unflatten(0, (9, 4))
    acc0 = torch.randn(4, 5, 6, 8, generator=g)
    assert kernels._native_running_max_ok(op, x)
    got = [running_max_pool2d(op, x, a, {}) for a in (None, acc0)]
    monkeypatch.setattr(kernels, "_native_running_max_ok", lambda op, x: False)
    want = [running_max_pool2d(op, x, a, {}) for a in (None, acc0)]
    for (y, acc), (wy, wacc) in zip(got, want):
        assert torch.equal(y, wy) and torch.equal(acc, wacc)
    assert float(want[0][0].abs().max()) > 0.1


def test_session_streaming_and_snapshot_keep_the_pool_state():
    g = snnc.convert(vgg(), _x(8))
    x = _x(2)
    s = Session(g)
    whole = s.run(x, 12)
    s.reset()
    steps = [s.step(x) for _ in range(5)]
    snap = s.snapshot()
    assert any(op.kind == "running_max_pool2d" and op.name in snap["v"] for op in g)
    steps += [s.step(x) for _ in range(7)]
    torch.testing.assert_close(torch.stack(steps), whole, atol=0, rtol=0)
    s.restore(snap)
    torch.testing.assert_close(s.step(x), steps[5], atol=0, rtol=0)


def test_snnir_round_trip_and_printer(tmp_path):
    g = snnc.convert(vgg(), _x(8))
    save(g, tmp_path / "v.snnir")
    back = load(tmp_path / "v.snnir")
    assert str(back) == str(g) and "= running_max_pool2d(" in str(g)
    pool = next(op for op in back if isinstance(op, ops.RunningMaxPool2d))
    assert pool == g[pool.name] and pool.kernel_size == (2, 2)


def test_targets_that_cannot_express_it_refuse_it_by_name():
    from snnc.backends.lava.legalize import check_supported
    from snnc.backends.lynxi.legalize import op_problems
    from snnc.backends.nir.export import refusal

    g = snnc.convert(vgg(), _x(8))
    pool = next(op for op in g if isinstance(op, ops.RunningMaxPool2d))
    # lynxi lowers it since issue 19 (unrolled over T: tests/backends/lynxi/test_zoo_ops.py)
    assert not any(pool.name in p for p in op_problems(g))
    with pytest.raises(LoweringError, match=rf"%{pool.name} \(running_max_pool2d\).*max pooling"):
        check_supported(g)
    why, hint = refusal(pool, g, None)
    assert "running_max_pool2d" in why and "max pooling" in hint
