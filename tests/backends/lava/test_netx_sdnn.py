"""Sigma-delta (NetX SDNN) neurons, netx's reset_interval and potential readout, on hand-built networks.

The ground truths of lava-dl's own files are in test_netx_external.py; here the
float form (CPU runtime) is checked against a hand-written reference of the
equations and against the fixed-point emulation.
"""

import numpy as np
import pytest
import torch

from snnc.core.errors import InputError, LoweringError
from snnc.core.sigma_delta import SigmaDeltaState, sigma_delta_step
from snnc.ir import ops
from snnc.ir.formats.netx import NetxLayer, NetxNetwork, NetxNeuron, network_to_graph, read_netx, write_netx
from snnc.ir.serialize import load, save
from snnc.runtime.interpreter import Interpreter
from snnc.runtime.loihi import LoihiSession


def sdnn(th: int, sigma_output: bool = False) -> NetxNeuron:
    return NetxNeuron(0, 0, th, "SDNN", 1, True, sigma_output=sigma_output)


def small_sdnn(th1: int = 0, seed: int = 0) -> NetxNetwork:
    """delta input (4) -> dense 6 sigma-delta (bias) -> dense 3 sigma (the decoded output)."""
    g = np.random.default_rng(seed)
    return NetxNetwork([
        NetxLayer("input", (4,), neuron=sdnn(0), name="0"),
        NetxLayer("dense", (6,), neuron=sdnn(th1), weight=g.integers(-8, 9, (6, 4)), bias=g.integers(-3, 4, 6),
                  name="1"),
        NetxLayer("dense", (3,), neuron=sdnn(0, sigma_output=True), weight=g.integers(-8, 9, (3, 6)), name="2"),
    ], (4,), name="small_sdnn")


def reference_float(x: np.ndarray, net: NetxNetwork) -> np.ndarray:
    """The float equations written out (lava proc/sdn's float models), no synapse latency: [T, N, 3]."""
    w1, b1, w2 = net.layers[1].weight, net.layers[1].bias * 4096.0, net.layers[2].weight
    th1 = net.layers[1].neuron.v_th_mant * 4096.0
    act0 = res0 = sig1 = act1 = res1 = sig2 = 0.0
    out = []
    for t in range(x.shape[0]):
        a0 = x[t] * 4096.0
        d0 = a0 - act0 + res0
        s0 = np.where(np.abs(d0) >= 0, d0, 0.0)
        res0, act0 = d0 - s0, a0
        sig1 = sig1 + (s0 / 64) @ w1.T
        a1 = np.maximum(sig1 + b1, 0)
        d1 = a1 - act1 + res1
        s1 = np.where(np.abs(d1) >= th1, d1, 0.0)
        res1, act1 = d1 - s1, a1
        sig2 = sig2 + (s1 / 64) @ w2.T
        out.append(sig2)
    return np.stack(out)


def test_cpu_float_matches_the_written_out_equations():
    net = small_sdnn(th1=3)
    g = network_to_graph(net)
    assert [op.mode for op in g if isinstance(op, ops.SigmaDelta)] == ["delta", "sigma_delta", "sigma"]
    x = np.random.default_rng(1).integers(-20, 20, (7, 2, 4)).astype(np.float32)
    out = Interpreter(g).run({"x": torch.from_numpy(x)}, 7)["out"]
    np.testing.assert_allclose(out.numpy(), reference_float(x.astype(np.float64), net), rtol=1e-6, atol=1e-3)


def test_fixed_point_equals_float_when_nothing_is_truncated():
    """Threshold 0 and inputs x: every message of layer 1 is a multiple of 2^6 in state units, so Lava's
    shift drops nothing: the emulation's steady output equals the float one (the emulation adds one step
    of latency per synapse, so compare after the network has settled)."""
    net = small_sdnn(th1=0)
    x = torch.from_numpy(np.random.default_rng(2).integers(-20, 20, (2, 4)).astype(np.float32))
    fixed = LoihiSession(net).run(x, T=6)
    flt = Interpreter(network_to_graph(net)).run({"x": x}, 6)["out"].double()
    assert fixed.dtype == torch.float64  # graded values of up to 24 bits and more: exact
    assert torch.equal(fixed[-1], flt[-1]) and fixed[-1].abs().sum() > 0
    assert torch.equal(fixed[2:], fixed[-1].expand_as(fixed[2:]))  # settled after the two synapses


def test_fixed_point_shift_truncates_toward_minus_infinity():
    """A message the float form sends as d / 64 is floor(d / 64) in fixed point (Lava's >> state_exp)."""
    d = torch.tensor([130, -130, 64, -1, 0], dtype=torch.int64)
    zero = SigmaDeltaState.zeros(d)
    s_fixed, _ = sigma_delta_step(zero, d, mode="sigma_delta", threshold=0, activation="identity", fixed=True)
    s_float, _ = sigma_delta_step(SigmaDeltaState.zeros(d.double()), d.double(), mode="sigma_delta", threshold=0,
                                  activation="identity", fixed=False)
    assert s_fixed.tolist() == [2, -3, 1, -1, 0]
    assert torch.equal(torch.floor(s_float).long(), s_fixed)


def test_threshold_changes_the_output():
    x = torch.from_numpy(np.random.default_rng(3).integers(-20, 20, (6, 2, 4)).astype(np.float32))
    low, high = (LoihiSession(small_sdnn(th1=th)).run(x) for th in (0, 40))
    assert not torch.equal(low, high)
    g0, g1 = (network_to_graph(small_sdnn(th1=th)) for th in (0, 40))
    assert not torch.equal(Interpreter(g0).run({"x": x}, 6)["out"], Interpreter(g1).run({"x": x}, 6)["out"])


def test_sdnn_netx_file_round_trips(tmp_path):
    net = small_sdnn(th1=5)
    write_netx(net, tmp_path / "a.net")
    g = read_netx(tmp_path / "a.net")
    sd = [op for op in g if isinstance(op, ops.SigmaDelta)]
    assert [(op.mode, op.threshold) for op in sd] == [("delta", 0.0), ("sigma_delta", 5 * 4096.0), ("sigma", 0.0)]
    assert torch.equal(g.params[sd[1].bias], torch.from_numpy(net.layers[1].bias * 4096.0).float())
    save(g, tmp_path / "a.snnir")
    back = load(tmp_path / "a.snnir")
    assert [op for op in back if isinstance(op, ops.SigmaDelta)] == sd
    x = torch.from_numpy(np.random.default_rng(4).integers(-9, 9, (5, 1, 4)).astype(np.float32))
    assert torch.equal(LoihiSession(tmp_path / "a.net").run(x), LoihiSession(net).run(x))


def test_non_relu_activation_and_sigma_bias_are_refused(tmp_path):
    import h5py

    write_netx(small_sdnn(), tmp_path / "a.net")
    with h5py.File(tmp_path / "a.net", "a") as f:
        del f["layer/1/neuron/activation"]
        f["layer/1/neuron/activation"] = "sigmoid"
    with pytest.raises(Exception, match="netx 0.6 runs every sigma-delta neuron with ReLU"):
        read_netx(tmp_path / "a.net")


def test_other_targets_refuse_sigma_delta_by_name():
    from snnc.backends import lynxi, nir, triton

    g = network_to_graph(small_sdnn())
    for legalize in (triton.legalize, lynxi.legalize, nir.legalize):
        with pytest.raises(LoweringError, match="layer1_neuron"):
            legalize(g)


# -- reset_interval and potentials on CUBA ----------------------------------------------------
def cuba_chain() -> NetxNetwork:
    n = NetxNeuron(4096, 512, 60)
    integ = NetxNeuron(4096, 0, 1 << 17)  # netx's non-spiking integrator readout
    g = np.random.default_rng(5)
    return NetxNetwork([
        NetxLayer("input", (5,), name="0"),
        NetxLayer("dense", (8,), neuron=n, weight=g.integers(0, 40, (8, 5)) * 2, name="1"),
        NetxLayer("dense", (2,), neuron=integ, weight=g.integers(-20, 20, (2, 8)) * 2, name="2"),
    ], (5,), name="chain")


def test_reset_interval_zeroes_each_layer_at_its_phase():
    net = cuba_chain()
    x = torch.ones(12, 1, 5)
    plain = LoihiSession(net).run(x, all_layers=True, probes=["2:v"])
    reset = LoihiSession(net, reset_interval=4).run(x, all_layers=True, probes=["2:v"])
    assert not torch.equal(plain["2:v"], reset["2:v"])  # the option changes the output
    # the readout (block 1 here: the input has no neuron) is zeroed before steps 1, 5, 9: its potential
    # then holds only that step's input, which it got from layer 1's spikes of the step before
    v, s1 = reset["2:v"][:, 0], reset["1"][:, 0]
    w = torch.from_numpy(net.layers[2].weight).float()
    for t in (5, 9):
        assert torch.equal(v[t], (s1[t - 1] @ w.T) * 64)
    assert torch.equal(reset["1"][:1], plain["1"][:1])


def test_integrator_potential_is_read_out_while_its_spikes_stay_zero():
    net = cuba_chain()
    x = torch.ones(8, 1, 5)
    out = LoihiSession(net).run(x, probes=["2:v", "1"])
    assert out["out"].abs().sum() == 0  # the readout never fires (vThMant 2^17)
    w = torch.from_numpy(net.layers[2].weight).float()
    expected = torch.cumsum(torch.cat([torch.zeros(1, 1, 2), out["1"][:-1] @ w.T]), 0) * 64  # v += a << 6
    assert torch.equal(out["2:v"], expected) and expected.abs().sum() > 0
    with pytest.raises(InputError, match="no NetX layer '7'"):
        LoihiSession(net).run(x, probes=["7:v"])


def test_reset_interval_is_checked():
    with pytest.raises(InputError, match="reset_interval"):
        LoihiSession(cuba_chain(), reset_interval=0)


def test_cpu_run_equals_steps_equals_chunks():
    from snnc.runtime import Session

    s = Session(network_to_graph(small_sdnn(th1=3)), progress=False)
    x = torch.from_numpy(np.random.default_rng(6).integers(-20, 20, (7, 2, 4)).astype(np.float32))
    full = s.run(x)
    assert full.abs().sum() > 0
    for chunk in (1, 3):
        assert torch.equal(s.run(x, chunk=chunk), full)
    s.reset()
    assert torch.equal(torch.stack([s.step(x[t]) for t in range(7)]), full)
    const = x[0]
    assert torch.equal(s.run(const, 5), s.run(const.expand(5, *const.shape).clone()))
    s.reset()
    first = torch.stack([s.step(x[t]) for t in range(3)])
    snap = s.snapshot()
    rest = torch.stack([s.step(x[t]) for t in range(3, 7)])
    s.restore(snap)
    assert torch.equal(torch.stack([s.step(x[t]) for t in range(3, 7)]), rest)
    assert torch.equal(torch.cat([first, rest]), full)
