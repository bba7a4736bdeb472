"""Every field of a NetX layer is read or refused by name: none is dropped silently (an axonal delay moved
every later spike: 242 of 12,928 spikes differed from Lava; it is a delay op now), and a .net file compiles
for the lava target."""

import shutil

import h5py
import numpy as np
import pytest
import torch

import snnc
from snnc.core.errors import UnsupportedAttributeError
from snnc.frontends.loader import load_model
from snnc.runtime.loihi import LoihiSession
from tests.backends.lava.nets import conv_pool_dense, spikes


@pytest.fixture(scope="module")
def netx_file(tmp_path_factory):
    art = snnc.compile(conv_pool_dense(), target="lava", output=tmp_path_factory.mktemp("art") / "art")
    return art.path / "net.net"


def _with(tmp_path, src, layer: str, key: str, value) -> str:
    path = tmp_path / "edited.net"
    shutil.copy(src, path)
    with h5py.File(path, "r+") as f:
        f[f"layer/{layer}"].create_dataset(key, data=value)
    return str(path)


def _last_layer(src) -> str:
    with h5py.File(src, "r") as f:
        return sorted(f["layer"], key=int)[-1]


def test_a_nonzero_delay_is_read_and_changes_the_output(tmp_path, netx_file):
    """It used to be refused (and before that silently dropped); issue 17 models it as a delay op."""
    last = _last_layer(netx_file)
    with h5py.File(netx_file, "r") as f:
        n = int(np.prod(f[f"layer/{last}/shape"][()]))
    path = _with(tmp_path, netx_file, last, "delay", np.arange(n) % 3)
    graph = load_model(path)
    assert [op.steps for op in graph if op.kind == "delay"] == [2]
    x = spikes(10, 2, 2, 8, 8, seed=5)
    assert not torch.equal(LoihiSession(graph).run(x), LoihiSession(netx_file).run(x))


def test_an_all_zero_delay_is_no_delay(tmp_path, netx_file):
    last = _last_layer(netx_file)
    path = _with(tmp_path, netx_file, last, "delay", np.zeros(10, dtype=np.int64))
    x = spikes(10, 2, 2, 8, 8, seed=5)
    assert torch.equal(LoihiSession(load_model(path)).run(x), LoihiSession(netx_file).run(x))


def test_an_unknown_layer_field_is_refused_by_name(tmp_path, netx_file):
    path = _with(tmp_path, netx_file, "0", "weightExponent", np.int64(3))
    with pytest.raises(UnsupportedAttributeError, match=r"/layer/0: snnc does not model 'weightExponent'"):
        load_model(path)


def test_a_netx_file_compiles_for_the_lava_target(tmp_path, netx_file):
    """It used to stop with an internal error (the quantization report of a graph snnc did not quantize)."""
    art = snnc.compile(load_model(netx_file), target="lava", output=tmp_path / "again")
    assert art.manifest["quantization"] == []
    x = spikes(10, 2, 2, 8, 8, seed=6)
    assert torch.equal(snnc.load(art.path).run(x), LoihiSession(netx_file).run(x))


def test_a_synaptic_current_runs_on_the_cpu_target_in_float(tmp_path, netx_file):
    """current_decay < 1 (iDecay < 4096): the CPU target used to refuse it; it now runs the float CUBA
    equations (snnc.core.dynamics), and the current's decay changes the output."""
    path = tmp_path / "cuba.net"
    shutil.copy(netx_file, path)
    with h5py.File(path, "r+") as f:
        for name in f["layer"]:
            if "neuron" in f[f"layer/{name}"]:
                f[f"layer/{name}/neuron/iDecay"][()] = 1024
    x = spikes(4, 2, 2, 8, 8, seed=7)
    cuba = snnc.load(snnc.compile(load_model(path), target="cpu", output=tmp_path / "cpu")).run(x)
    plain = snnc.load(snnc.compile(load_model(netx_file), target="cpu", output=tmp_path / "cpu0")).run(x)
    assert cuba.shape == plain.shape and not torch.equal(cuba, plain)
    assert LoihiSession(path).run(x).shape[0] == 4  # the emulation runs it too (in fixed point)


def test_a_recurrent_dense_layer_without_its_recurrent_weights_is_refused_by_name(tmp_path, netx_file):
    """dense_rec used to be refused as unmodelled; it is read now (issue 17), and needs its 'weight_rec'."""
    from snnc.core.errors import MalformedFileError

    path = tmp_path / "rec.net"
    shutil.copy(netx_file, path)
    last = _last_layer(netx_file)
    with h5py.File(path, "r+") as f:
        del f[f"layer/{last}/type"]
        f[f"layer/{last}"].create_dataset("type", data=np.array([b"dense_rec"]))
    with pytest.raises(MalformedFileError, match=rf"/layer/{last}: a dense_rec layer needs 'weight_rec'"):
        load_model(path)
