"""The fused "linear + neuron" kernel vs F.linear + snnc.core.dynamics, and the runtime's fused_linear option.

The kernel sums in another order than MKL, so the input currents agree to fp32
rounding; spikes are compared for every neuron whose reference H stayed more
than TOL away from the threshold at every step so far (after a near tie the
two runs may legitimately diverge), and those must be nearly all of them.
"""

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton", reason="triton is not installed (Linux wheels only); the Triton kernels cannot be tested")

import snnc  # noqa: E402
from snnc.core import dynamics  # noqa: E402
from snnc.core.dynamics import FireCompare, NeuronKind, NeuronParams, ResetMode  # noqa: E402
from snnc.ir import Graph, Layout, TensorType, ops  # noqa: E402
from snnc.runtime import Session  # noqa: E402
from snnc.runtime.triton.errors import KernelInputError  # noqa: E402
from snnc.runtime.triton.linear import linear_multi_step  # noqa: E402
from snnc.runtime.triton.session import LinearNode  # noqa: E402

TOL = 1e-5
PARAMS = {
    "if-soft": NeuronParams(NeuronKind.IF, 0.7, ResetMode.SOFT),
    "lif-hard-gt": NeuronParams(NeuronKind.LIF, 0.5, ResetMode.HARD, -0.1, FireCompare.GT, tau=1.7),
    "lif-none-nodecay": NeuronParams(NeuronKind.LIF, 0.6, ResetMode.NONE, tau=2.0, decay_input=False),
}


def _reference(params, current, v0):
    """Spikes, V and a mask of the (t, neuron) pairs with no near tie up to t."""
    v = torch.full(current.shape[1:], float(v0)) if not isinstance(v0, torch.Tensor) else v0.clone()
    spikes, clear, ok = [], [], torch.ones(current.shape[1:], dtype=torch.bool)
    for t in range(current.shape[0]):
        h = dynamics.charge(params, v, current[t])
        ok = ok & ((h - params.v_threshold).abs() > TOL)
        s = dynamics.fire(params, h)
        v = dynamics.reset(params, h, s)
        spikes.append(s)
        clear.append(ok.clone())
    return torch.stack(spikes), v, torch.stack(clear)


@pytest.mark.parametrize("block_k", [None, 16], ids=["resident-weight", "k-chunks"])
@pytest.mark.parametrize("name", list(PARAMS))
def test_linear_neuron_matches_reference(name, block_k, device):
    params = PARAMS[name]
    g = torch.Generator().manual_seed(1)
    T, rows, K, M = 4, (3, 2), 40, 20
    x = torch.rand(T, *rows, K, generator=g)
    w = torch.randn(M, K, generator=g) * 0.2
    b = torch.randn(M, generator=g) * 0.1
    v0 = torch.rand(*rows, M, generator=g) * 0.3
    ref_s, ref_v, clear = _reference(params, F.linear(x, w, b), v0)
    assert 0 < ref_s.mean() < 1 and clear.float().mean() > 0.95
    s, v = linear_multi_step(params, x.to(device), w.to(device), b.to(device), v0=v0.to(device), block_k=block_k)
    s, v = s.cpu(), v.cpu()
    assert s.shape == ref_s.shape and v.shape == ref_v.shape
    assert torch.equal(s[clear], ref_s[clear])
    torch.testing.assert_close(v[clear[-1]], ref_v[clear[-1]], rtol=1e-5, atol=1e-5)


def test_no_bias_float_v0_and_uint8_spikes(device):
    params = PARAMS["if-soft"]
    x = torch.rand(3, 5, 17, generator=torch.Generator().manual_seed(2))
    w = torch.randn(9, 17, generator=torch.Generator().manual_seed(3)) * 0.3
    ref_s, _, clear = _reference(params, F.linear(x, w), 0.35)
    s, _ = linear_multi_step(params, x.to(device), w.to(device), v0=0.35, spike_dtype=torch.uint8)
    assert s.dtype == torch.uint8 and torch.equal(s.cpu()[clear], ref_s.to(torch.uint8)[clear])


def test_bad_linear_arguments():
    with pytest.raises(KernelInputError, match="weight"):
        linear_multi_step(PARAMS["if-soft"], torch.ones(2, 3, 4), torch.ones(5, 6))
    with pytest.raises(KernelInputError, match="bias"):
        linear_multi_step(PARAMS["if-soft"], torch.ones(2, 3, 4), torch.ones(5, 4), torch.ones(4))
    with pytest.raises(KernelInputError, match="block_k"):
        linear_multi_step(PARAMS["if-soft"], torch.ones(2, 3, 4), torch.ones(5, 4), block_k=24)


def _mlp() -> Graph:
    g = Graph("mlp")
    g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", 24), layout=Layout.TNX)))
    gen = torch.Generator().manual_seed(4)
    g.params["w1"], g.params["b1"] = torch.randn(32, 24, generator=gen) * 0.3, torch.randn(32, generator=gen) * 0.1
    g.params["w2"] = torch.randn(10, 32, generator=gen) * 0.3
    g.add(ops.Linear(name="fc1", inputs=("x",), weight="w1", bias="b1"))
    g.add(ops.LIF(name="n1", inputs=("fc1",), tau=2.0, v_threshold=0.5))
    g.add(ops.Linear(name="fc2", inputs=("n1",), weight="w2"))
    g.add(ops.IF(name="n2", inputs=("fc2",), v_threshold=0.6, reset=ops.SoftReset()))
    g.add(ops.Output(name="out", inputs=("n2",)))
    return g


@pytest.mark.parametrize("mode, fused", [("on", 2), ("off", 0), ("auto", 0)])  # auto: only on CUDA
def test_session_fused_linear_option(mode, fused, tmp_path):
    g = _mlp()
    x = (torch.rand(5, 3, 24, generator=torch.Generator().manual_seed(5)) < 0.4).float()
    ref = Session(g).run(x)
    art = snnc.compile(g, target="triton", output=tmp_path / "m", fused_linear=mode, cuda_graphs=False)
    assert art.manifest["runtime_options"]["fused_linear"] == mode
    s = snnc.load(tmp_path / "m")
    out = s.run(x)
    plan = next(iter(s._interp._plans.values()))
    expected = fused if s.device.type == "cpu" else {"on": 2, "off": 0, "auto": 2}[mode]  # K <= 128: auto fuses
    assert sum(isinstance(n, LinearNode) for n in plan.nodes) == expected
    assert 0 < ref.mean() < 1
    # binary spike inputs and small K: the sums are exact in any order, so the spikes agree exactly
    assert torch.equal(out, ref)
    # the session keyword overrides the artifact's option
    s2 = snnc.load(tmp_path / "m", triton_options={"fused_linear": "off"})
    s2.run(x)
    assert not any(isinstance(n, LinearNode) for n in next(iter(s2._interp._plans.values())).nodes)
