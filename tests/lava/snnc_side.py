"""The snnc half of the lava tests, run in snnc's environment (Python 3.11, torch) as a script.

    snnc_side.py case NAME OUT T N     compile case NAME to OUT/net (lava target), write OUT/inputs.npy
                                       (integers [T, N, *in]), OUT/expected.npz (emulated spikes per layer,
                                       arr_0.. in layer order) and OUT/info.json
    snnc_side.py emulate NETX IN OUT   read a NetX file with snnc.backends.lava.read_netx, emulate it on
                                       IN (integers [T, N, *in]) and write every layer's spikes to OUT (.npz)
    snnc_side.py file NETX OUT T RESET [IN]  one sample for a NetX file as it is: IN (a .npy [n_in, >=T] of
                                       0/1 spikes, lava's layout) or seeded random integers (0/1 spikes into a
                                       first synapse, 0..255 into an input neuron), emulated with reset_interval
                                       RESET (0: none); writes OUT/inputs.npy, expected.npz, info.json
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import snnc  # noqa: E402
from snnc.backends.lava import read_netx  # noqa: E402
from snnc.runtime.loihi import LoihiSession  # noqa: E402
from tests.backends.lava import nets  # noqa: E402


SYNTHESIZED = {"recurrent_example": "recurrent_example.net", "mnist_with_delay": "mnist_with_delay.net"}


def build(name: str, T: int, n: int):
    if name == "digits":
        from snnc.core import datasets
        from snnc.backends.lava import convert
        from tests.nets import digits_cnn  # stored, not trained here: the same network on every machine

        data = datasets.digits()
        graph = convert(digits_cnn(), data.x_train[:256], T=T, calib_samples=128)
        return graph, data.x_test[:n]
    if name == "conv_pool_dense":
        return nets.conv_pool_dense(), nets.spikes(T, n, 2, 8, 8)
    if name == "input_neuron":
        return nets.input_neuron_net(), torch.rand(n, 1, 6, 6, generator=torch.Generator().manual_seed(3))
    if name in SYNTHESIZED:  # lava-dl's own exports (issue 17): dense_rec, axonal delays
        from snnc.frontends.loader import load_model
        from tests.backends.lava.test_netx_recurrence_delay import synthesized

        graph = load_model(synthesized(SYNTHESIZED[name]))
        features = graph.inputs[0].type.features
        return graph, (torch.rand(T, n, *features, generator=torch.Generator().manual_seed(4)) < 0.3).float()
    raise SystemExit(f"unknown case {name}")


def case(name: str, out: str, T: str, n: str) -> None:
    T, n, out = int(T), int(n), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    graph, x = build(name, T, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        art = snnc.compile(graph, target="lava", output=out / "net", time_steps=T)
    s = LoihiSession(art)
    xi = s._bind(x, T, False)
    layers = s.run(xi, encoded=True, all_layers=True)
    np.save(out / "inputs.npy", xi.numpy())
    np.savez(out / "expected.npz", *[v.numpy() for v in layers.values()])
    net = s.network
    (out / "info.json").write_text(json.dumps({"input_message_bits": net.input_message_bits,
                                               "input_neuron": net.input_neuron, "latency": s.latency,
                                               "netx": str(out / "net" / "net.net")}))
    print(f"{name}: {len(layers)} layers, spikes per layer {[int(v.sum()) for v in layers.values()]}")


def file(netx_file: str, out: str, T: str, reset: str, given: str | None = None) -> None:
    T, reset, out = int(T), int(reset), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    s = LoihiSession(netx_file, reset_interval=reset or None)
    net = s.network
    g = torch.Generator().manual_seed(7)
    shape = (T, 1, *net.input_shape)
    if given:
        x = torch.from_numpy(np.load(given)[:, :T].T.astype(np.int64)).reshape(shape)
    elif net.input_neuron or net.input_message_bits:
        x = torch.randint(0, 256, shape, generator=g)
    else:
        x = (torch.rand(shape, generator=g) < 0.3).to(torch.int64)
    layers = s.run(x, encoded=True, all_layers=True)
    np.save(out / "inputs.npy", x.numpy())
    np.savez(out / "expected.npz", *[v.numpy() for v in layers.values()])
    (out / "info.json").write_text(json.dumps({"input_message_bits": net.input_message_bits,
                                               "input_neuron": net.input_neuron, "layers": list(layers)}))
    print(f"{netx_file}: spikes per layer {[int(v.abs().sum()) for v in layers.values()]}")


def emulate(netx_file: str, inputs: str, out: str) -> None:
    s = LoihiSession(read_netx(netx_file))
    layers = s.run(torch.from_numpy(np.load(inputs)), encoded=True, all_layers=True)
    np.savez(out, *[v.numpy() for v in layers.values()])


if __name__ == "__main__":
    {"case": case, "emulate": emulate, "file": file}[sys.argv[1]](*sys.argv[2:])
