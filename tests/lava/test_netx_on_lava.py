"""snnc-written NetX files run on the real Lava (Loihi2SimCfg, fixed point) give exactly snnc's emulated spikes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.lava.conftest import lava_or_skip
from tests.lava.test_external_on_lava import _lava_dl

pytestmark = pytest.mark.lava

CASES = {  # name: (T, samples)
    "digits": (24, 4),  # the digits demo SNN: graded input, pools folded into convs, biases, readout
    "conv_pool_dense": (20, 3),  # binary spikes, LIF + IF(>=) + LIF(decay_input), pool, flatten
    "input_neuron": (16, 3),  # an input layer with a neuron driven on its a_in
    # lava-dl 0.6's own exports in ../shared/external/synthesized (skipped without it): two dense_rec layers;
    # trained_mnist_network.net with an axonal delay per neuron of layer 0 (the emulation records a layer's
    # spikes after its delay; the last layer, which has none, is the comparison that does not depend on that)
    "recurrent_example": (24, 3),
    "mnist_with_delay": (30, 2),
}


@pytest.mark.parametrize("name", list(CASES))
def test_lava_matches_snnc_emulation_spike_for_spike(name, snnc_side, tmp_path):
    lava_or_skip()
    from tests.lava.lava_runner import run_netx

    T, n = CASES[name]
    if name in ("recurrent_example", "mnist_with_delay") and _lava_dl() is None:
        pytest.skip("../shared/external (lava-dl's synthesized .net files) is absent")
    snnc_side("case", name, tmp_path, T, n)
    info = json.loads((tmp_path / "info.json").read_text())
    inputs = np.load(tmp_path / "inputs.npy")
    expected = np.load(tmp_path / "expected.npz")
    expected = [expected[f"arr_{i}"] for i in range(len(expected.files))]
    total = 0
    for k in range(n):
        got = run_netx(info["netx"], inputs[:, k], input_message_bits=info["input_message_bits"],
                       input_neuron=info["input_neuron"])
        assert len(got) == len(expected)
        for i, (g, e) in enumerate(zip(got, expected)):
            assert g.shape == e[:, k].shape, (name, i)
            mism = int((g != e[:, k]).sum())
            assert mism == 0, f"{name}: sample {k}, layer {i}: {mism} of {g.size} spikes differ"
        total += int(got[-1].sum())
    assert total > 0, f"{name}: the output layer never spiked, so the comparison proves little"
