"""The NetX writer/reader (schema of LAVA_NETX.md section 3) and the bit-exact Loihi emulation."""

import json
import warnings

import h5py
import numpy as np
import pytest
import torch

import snnc
from snnc.backends.lava import emulate, network_from_graph, read_netx, write_netx
from snnc.backends.lava.quantize import QuantizeLoihi
from snnc.core.errors import MalformedFileError
from snnc.ir import ops
from snnc.ir.formats.netx import NetxLayer, NetxNetwork, NetxNeuron, read_network
from snnc.runtime import Session
from snnc.runtime.loihi import LoihiSession, neuron_step
from tests.backends.lava.nets import conv_pool_dense, input_neuron_net, spikes


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    return snnc.compile(conv_pool_dense(), target="lava", output=tmp_path_factory.mktemp("a") / "net", time_steps=20)


def test_artifact_holds_netx_graph_and_manifest(artifact):
    names = sorted(p.name for p in artifact.path.iterdir())
    assert names == ["graph.snnir", "manifest.json", "net.net"]
    m = json.loads((artifact.path / "manifest.json").read_text())
    assert m["target"] == "lava" and m["latency_steps"] == 3 and m["input"] == "spikes"
    assert [r["neuron"] for r in m["quantization"]] == ["n1", "n2", "n3"]


def test_hdf5_follows_the_schema_netx_reads(artifact):
    with h5py.File(artifact.path / "net.net") as f:
        assert int(f["simulation/tSample"][()]) == 20
        layers = f["layer"]
        assert sorted(layers, key=int) == [str(i) for i in range(len(layers))]
        types = [layers[str(i)]["type"] for i in range(len(layers))]
        assert all(t.dtype == np.dtype("S10") and t.shape == (1,) for t in types)
        assert [t[0].decode() for t in types] == ["input", "conv", "conv", "flatten", "dense"]
        assert list(layers["0"]["shape"][()]) == [2, 8, 8]  # torch (C, H, W) order; netx reverses it
        conv2 = layers["2"]
        assert list(conv2["shape"][()]) == [6, 4, 4]
        assert conv2["weight"].shape == (6, 4, 6, 6)  # the 2x2 pool folded into a 6x6 stride-2 conv
        assert list(conv2["stride"][()]) == [2, 2] and list(conv2["padding"][()]) == [2, 2]
        assert int(conv2["groups"][()]) == 1
        for i in (1, 2, 4):
            lay = layers[str(i)]
            w = lay["weight"][()]
            assert np.array_equal(w, np.round(w)) and w.min() >= -256 and w.max() <= 254 and (w % 2 == 0).all()
            assert set(lay["neuron"]) == {"type", "iDecay", "vDecay", "vThMant", "refDelay", "gradedSpike"}
            assert lay["neuron/type"][()] == b"CUBA"
            assert 0 <= int(lay["neuron/vThMant"][()]) < 2 ** 17
        assert layers["4"]["weight"].shape == (5, 96)


def test_reading_our_file_gives_back_the_same_network(artifact):
    g = artifact.graph()
    ours = network_from_graph(g)
    back = read_network(artifact.path / "net.net")
    assert back.input_shape == ours.input_shape and back.input_message_bits == ours.input_message_bits
    for a, b in zip(ours.layers, back.layers):
        assert (a.type, a.shape, a.neuron, a.stride, a.padding) == (b.type, b.shape, b.neuron, b.stride, b.padding)
        for x, y in ((a.weight, b.weight), (a.bias, b.bias)):
            assert (x is None) == (y is None) and (x is None or np.array_equal(x, y))
    x = spikes(20, 3, 2, 8, 8, seed=5)
    torch.testing.assert_close(LoihiSession(read_netx(artifact.path / "net.net")).run(x), LoihiSession(artifact).run(x))


def test_pool_layer_in_a_file_is_refused(tmp_path):
    with h5py.File(tmp_path / "p.net", "w") as f:
        f.create_dataset("layer/0/type", (1,), "S10", [b"pool"])
        f.create_dataset("layer/0/shape", data=np.array([1, 2, 2]))
    with pytest.raises(MalformedFileError, match="'pool' is not read by netx"):
        read_network(tmp_path / "p.net")


def test_neuron_step_check_values_from_lava():
    a = torch.tensor([2])  # weight 2, one input spike: u = 2 << 6 = 128
    z = torch.zeros(1, dtype=torch.int64)
    _, u, _ = neuron_step(z, z, a, 0, 0, 4096, 1 << 17)
    _, u2, _ = neuron_step(u, z, z, 0, 0, 4096, 1 << 17)
    assert int(u) == 128 and int(u2) == 128  # iDecay 0: the current never decays
    _, u, _ = neuron_step(z, z, a, 0, 4096, 0, 100)
    _, u2, _ = neuron_step(u, z, z, 0, 4096, 0, 100)
    assert int(u) == 128 and int(u2) == 0  # iDecay 4096: no current memory (an IF)
    s, _, v = neuron_step(z, torch.tensor([-1001]), z, 0, 0, 410, 5)  # v decays toward 0, rounded toward zero
    assert int(v) == -(1001 * (4096 - 410) // 4096) and not bool(s)
    big = torch.tensor([(1 << 17) + 1])  # the 24-bit current wraps like Lava's
    _, u, _ = neuron_step(z, z, big, 0, 4096, 0, 1 << 17)
    assert int(u) == ((1 << 17) + 1) * 64 - (1 << 24)


def _if_only(graph):
    g = graph.copy()
    for op in list(g):
        if isinstance(op, (ops.LIF,)):
            g.replace_op(ops.IF(name=op.name, inputs=op.inputs, v_threshold=op.v_threshold, reset=op.reset,
                                fire=op.fire, loc=op.loc))
    return g


def test_emulation_equals_cpu_reference_on_the_quantized_graph_shifted_by_latency():
    """Without biases or leaks the fixed-point network is integer IF arithmetic, which the float CPU
    runtime computes exactly; Loihi only adds one step of latency per synaptic layer."""
    q = QuantizeLoihi()(_if_only(conv_pool_dense(bias=False)))
    x = spikes(24, 4, 2, 8, 8, seed=2)
    session = LoihiSession(q)
    got = session.run(x)
    want = Session(q).run(x)
    L = session.latency
    assert L == 3 and got[:L].sum() == 0
    assert torch.equal(got[L:], want[:-L])
    assert want.sum() > 10


def test_input_neuron_network_runs_and_encodes_analog_input():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = emulate(input_neuron_net())
    x = torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    layers = s.run(x, 12, all_layers=True)
    assert s.network.input_neuron and len(layers) == 3
    first = next(iter(layers.values()))
    assert first.shape == (12, 3, 1, 6, 6) and first.sum() > 0  # the input neuron spikes with no latency
    assert s.latency == 2


def test_written_file_rejects_weights_off_the_grid(tmp_path):
    net = NetxNetwork([NetxLayer("input", (3,)), NetxLayer("dense", (2,), NetxNeuron(4096, 0, 10),
                                                           weight=np.array([[1.9, -1.9, 0], [0, 2, 4]]))], (3,))
    write_netx(net, tmp_path / "n.net")
    back = read_network(tmp_path / "n.net")
    assert back.layers[1].weight.tolist() == [[1, -1, 0], [0, 2, 4]]  # netx truncates with astype(int)
