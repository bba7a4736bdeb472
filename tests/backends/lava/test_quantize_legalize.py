"""Legalizing for NetX and quantizing to Loihi fixed point (no Lava needed)."""

import warnings

import pytest
import torch

from snnc.backends.lava.compose import compose_convs
from snnc.backends.lava.legalize import LegalizeOptions, legalize
from snnc.core.errors import LoweringError
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.ops import LoihiInfo, SoftReset
from snnc.backends.lava.quantize import (QuantizeLoihi, decay_mantissa, quantization_report, quantize_weight,
                                         threshold_mantissa)
from snnc.runtime import Session
from tests.backends.lava.nets import _tnx, conv_pool_dense, input_neuron_net, spikes


def test_weights_are_even_8bit_mantissas_rounded_half_to_even():
    w = torch.tensor([0.0, 1 / 64, 3 / 64, 5 / 64, -3 / 64, 10.0, -10.0])
    assert quantize_weight(w, 6).tolist() == [0, 0, 4, 4, -4, 254, -256]  # 2*round(0.5)=0, 2*round(1.5)=4, 2*round(2.5)=4


@pytest.mark.parametrize("fire_ge", [False, True])
def test_integer_threshold_reproduces_the_float_comparison_exactly(fire_ge):
    for theta in (0.3, 1.0, 2.5, 7.0):
        for scale in (1.0, 4.0, 63.5, 128.0):
            m = threshold_mantissa(theta, scale, fire_ge)
            for v in range(0, 2000):
                want = v >= theta * scale if fire_ge else v > theta * scale
                assert (v > m) == want, (theta, scale, v, m)


def test_decays_are_12_bit_fractions():
    assert [decay_mantissa(d) for d in (0.0, 0.25, 0.03, 1.0)] == [0, 1024, 123, 4096]


def test_each_layer_uses_the_8bit_range_or_names_what_limited_it():
    q = QuantizeLoihi()(conv_pool_dense())
    layers = LoihiInfo.of(q).layers
    assert [r.neuron for r in layers] == ["n1", "n2", "n3"]
    for r in layers:
        w = q.params[q[r.synapse].weight]
        assert bool((w == torch.round(w)).all()) and bool((w % 2 == 0).all())
        assert w.abs().max() <= 256
        if r.limited_by == "weights (8 bit)":
            assert r.weight_range_used > 0.5  # the exponent is the largest power of two that fits
        assert r.weight_rel_error < 0.05
    report = quantization_report(q)
    assert all(r.neuron in report for r in layers)


def test_ge_neuron_becomes_gt_and_lif_decays_are_quantized():
    q = QuantizeLoihi()(conv_pool_dense())
    n1, n2, n3 = q["n1"], q["n2"], q["n3"]
    assert all(n.fire.value == "gt" for n in (n1, n2, n3))
    assert n1.voltage_decay == 1024 / 4096 and n1.current_decay == 1.0  # LIF tau=4
    assert n3.voltage_decay == 0.5  # tau=2; decay_input folded 1/tau into the synapse


def test_soft_reset_is_refused_or_converted_with_a_warning():
    g = input_neuron_net()  # its last IF resets by subtraction
    with pytest.raises(LoweringError, match="subtraction"):
        legalize(g, LegalizeOptions(soft_reset="refuse"))
    with pytest.warns(UserWarning, match="reset-to-0"):
        out = legalize(g)
    assert all(isinstance(op, ops.CubaLIF) for op in out if isinstance(op, ops.NeuronOp))


def test_residual_add_is_refused_naming_the_node():
    g = Graph("res")
    g.add(ops.Input(name="x", type=_tnx(4)))
    g.add(ops.Linear(name="fc", inputs=("x",), weight=g.add_param("w", torch.randn(4, 4))))
    g.add(ops.IF(name="n", inputs=("fc",)))
    g.add(ops.Add(name="skip", inputs=("n", "x")))
    g.add(ops.IF(name="n2", inputs=("skip",)))
    g.add(ops.Output(name="out", inputs=("n2",)))
    with pytest.raises(LoweringError, match="%skip"):
        legalize(g)


def _chain(*layers, features=(3, 8, 8)) -> Graph:
    g = Graph("seg")
    g.add(ops.Input(name="x", type=_tnx(*features)))
    prev = "x"
    for op in layers:
        g.add(op.replace(inputs=(prev,)))
        prev = op.name
    g.add(ops.Output(name="out", inputs=(prev,)))
    return g


@pytest.mark.parametrize("order", ["conv-pool", "pool-conv", "scale-pool-conv-scale"])
def test_conv_and_pool_merge_into_one_exact_conv(order):
    gen = torch.Generator().manual_seed(0)
    g = Graph("tmp")
    w = g.add_param("w", torch.randn(5, 3, 3, 3, generator=gen))
    b = g.add_param("b", torch.randn(5, generator=gen))
    conv = ops.Conv2d(name="c", weight=w, bias=b, padding=(1, 1))
    pool = ops.AvgPool2d(name="p", kernel_size=(2, 2), stride=(2, 2))
    seq = {"conv-pool": [conv, pool], "pool-conv": [pool, conv],
           "scale-pool-conv-scale": [ops.Scale(name="s1", factor=0.5), pool, conv, ops.Scale(name="s2", factor=3.0)]}
    chain = _chain(*seq[order])
    chain.params = dict(g.params)
    segment = [op for op in chain if not isinstance(op, (ops.Input, ops.Output))]
    spec = compose_convs(chain, segment, (3, 8, 8))
    x = torch.rand(2, 3, 8, 8, generator=gen, dtype=torch.float64)
    want = Session(chain, dtype=torch.float64).run(x.unsqueeze(0), 1)[0]
    got = torch.nn.functional.conv2d(x, spec.weight, spec.bias, spec.stride, spec.padding)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_legalized_graph_spikes_like_the_original():
    g = conv_pool_dense()
    x = spikes(16, 4, 2, 8, 8)
    want = Session(g).run(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # hard resets and no analog output: nothing to warn about
        lg = legalize(g)
    got = Session(lg).run(x)
    assert got.shape == want.shape
    assert float((got != want).float().mean()) < 0.005  # composed weights differ from the chain by float rounding
