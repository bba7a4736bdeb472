"""NetX `dense_rec` and axonal `delay` (issue 17): read, emulated in Loihi's fixed point, written back, and
run from the command line, on the two files lava-dl 0.6's own exporter made (../shared/external/synthesized)
and checked against a fixed-point reference written here from Lava's equations (LAVA_NETX.md section 3)."""

import dataclasses
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from snnc.core.errors import MalformedFileError, UnsupportedAttributeError
from snnc.ir.formats.netx import read_network, write_netx
from snnc.runtime.loihi import LoihiSession

ROOT = Path(__file__).resolve().parents[3]


def external() -> Path | None:
    """../shared/external (the project's copies of real model files), next to this checkout or its parent."""
    for cand in (os.environ.get("SNNC_EXTERNAL"), ROOT.parent / "shared" / "external",
                 ROOT.parent.parent / "shared" / "external"):
        if cand and Path(cand, "synthesized").is_dir():
            return Path(cand)
    return None


def synthesized(name: str) -> Path:
    ext = external()
    if ext is None:
        pytest.skip("../shared/external (lava-dl's synthesized .net files) is not present")
    return ext / "synthesized" / name


def _trunc(x: np.ndarray, decay: int) -> np.ndarray:
    q = x * (4096 - decay)
    return np.sign(q) * (np.abs(q) >> 12)


def lava_reference(net, x: np.ndarray) -> np.ndarray:
    """Lava's fixed-point CUBA chain for one sample x [T, n_in] of 0/1, in plain numpy: each synapse sends the
    previous step's sum, a dense_rec layer adds W_rec s[t - 1], a delay holds neuron j's spikes d_j steps."""
    layers = [lay for lay in net.layers if lay.type in ("dense", "dense_rec")]
    n = [lay.weight.shape[0] for lay in layers]
    u = [np.zeros(k, np.int64) for k in n]
    v = [np.zeros(k, np.int64) for k in n]
    a = [np.zeros(k, np.int64) for k in n]
    hist = [[] for _ in layers]
    out = []
    for t in range(x.shape[0]):
        s = x[t].astype(np.int64)
        for i, lay in enumerate(layers):
            nxt = lay.weight.astype(np.int64) @ s
            nrn = lay.neuron
            u[i] = _trunc(u[i], nrn.i_decay) + a[i] * 64
            v[i] = _trunc(v[i], nrn.v_decay) + u[i]
            spk = (v[i] > nrn.v_th_mant * 64).astype(np.int64)
            v[i][spk == 1] = 0
            if lay.weight_rec is not None:
                nxt = nxt + lay.weight_rec.astype(np.int64) @ spk
            a[i] = nxt
            hist[i].append(spk)
            if lay.delay is not None:
                d = np.broadcast_to(lay.delay, spk.shape)
                spk = np.array([hist[i][t - d[j]][j] if t >= d[j] else 0 for j in range(len(spk))])
            s = spk
        out.append(s)
    return np.stack(out)


def _spikes(T, n, features, seed):
    return (torch.rand(T, n, features, generator=torch.Generator().manual_seed(seed)) < 0.3).float()


@pytest.mark.parametrize("name", ["recurrent_example.net", "mnist_with_delay.net"])
def test_the_emulation_matches_the_fixed_point_reference(name):
    path = synthesized(name)
    net = read_network(path)
    x = _spikes(30, 2, net.input_shape[0], seed=1)
    got = LoihiSession(path).run(x)
    assert got.sum() > 0
    for k in range(x.shape[1]):
        assert np.array_equal(got[:, k].numpy(), lava_reference(net, x[:, k].numpy())), k


def test_the_files_carry_what_lava_dl_wrote():
    rec = read_network(synthesized("recurrent_example.net"))
    assert [lay.type for lay in rec.layers] == ["dense_rec", "dense_rec"]
    assert all(lay.weight_rec.shape == (5, 5) for lay in rec.layers)
    dl = read_network(synthesized("mnist_with_delay.net"))
    assert dl.layers[0].delay.shape == (128,) and dl.layers[0].delay.max() == 3
    assert dl.layers[1].delay is None


def test_a_recurrent_weight_and_a_delay_each_change_the_output():
    for name, field, value in (("recurrent_example.net", "weight_rec", None), ("mnist_with_delay.net", "delay",
                                                                                 None)):
        net = read_network(synthesized(name))
        x = _spikes(40, 2, net.input_shape[0], seed=2)
        stripped = dataclasses.replace(net, layers=[dataclasses.replace(lay, **{field: value})
                                                    if lay.type == "dense_rec" or field == "delay" else lay
                                                    for lay in net.layers])
        if field == "weight_rec":  # a dense_rec without its recurrent weights is a dense layer
            stripped.layers = [dataclasses.replace(lay, type="dense") for lay in stripped.layers]
        assert not torch.equal(LoihiSession(net).run(x), LoihiSession(stripped).run(x)), name


@pytest.mark.parametrize("name", ["recurrent_example.net", "mnist_with_delay.net"])
def test_write_then_read_keeps_recurrence_and_delays(tmp_path, name):
    net = read_network(synthesized(name))
    write_netx(net, tmp_path / "again.net")
    back = read_network(tmp_path / "again.net")
    for a, b in zip(net.layers, back.layers):
        assert a.type == b.type
        for f in ("weight", "weight_rec", "delay"):
            va, vb = getattr(a, f), getattr(b, f)
            assert (va is None and vb is None) or np.array_equal(va, vb), f
    x = _spikes(25, 2, net.input_shape[0], seed=3)
    assert torch.equal(LoihiSession(net).run(x), LoihiSession(back).run(x))


def test_bad_recurrent_weights_and_delays_are_refused_by_name(tmp_path):
    src = synthesized("recurrent_example.net")
    path = tmp_path / "bad.net"
    path.write_bytes(src.read_bytes())
    with h5py.File(path, "r+") as f:
        del f["layer/1/weight_rec"]
    with pytest.raises(MalformedFileError, match=r"/layer/1: a dense_rec layer needs 'weight_rec' of shape \(5, 5\)"):
        read_network(path)
    path.write_bytes(src.read_bytes())
    with h5py.File(path, "r+") as f:
        f["layer/0"].create_dataset("delay", data=np.full(5, 70.0))
    with pytest.raises(MalformedFileError, match=r"/layer/0/delay: delays must be whole steps in 0..62"):
        read_network(path)
    path.write_bytes(src.read_bytes())
    with h5py.File(path, "r+") as f:
        f["layer/0"].create_dataset("delay", data=np.full(5, 2.0))
    with pytest.raises(UnsupportedAttributeError, match=r"/layer/0: an axonal 'delay' on a dense_rec layer"):
        read_network(path)


def snnc(*args):
    """The command line, in this process (typer's runner: the same commands, without a fresh interpreter)."""
    from typer.testing import CliRunner

    from snnc.cli import app

    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, (r.output, r.exception)
    return r.output


@pytest.mark.parametrize("name", ["recurrent_example.net", "mnist_with_delay.net"])
def test_inspect_compile_for_lava_and_run_from_the_command_line(tmp_path, name):
    path = synthesized(name)
    text = snnc("inspect", path)
    assert ("recur" in text) if "recurrent" in name else ("delay" in text)
    snnc("compile", path, "--target", "lava", "-o", tmp_path / "art")
    net = read_network(path)
    x = _spikes(20, 2, net.input_shape[0], seed=4)
    np.save(tmp_path / "x.npy", x.numpy())
    snnc("run", tmp_path / "art", "-i", tmp_path / "x.npy", "-o", tmp_path / "out.npz")
    out = np.load(tmp_path / "out.npz")
    got = out[out.files[0]]
    assert np.array_equal(got, LoihiSession(path).run(x).numpy())
