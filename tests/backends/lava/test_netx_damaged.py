"""A damaged NetX file (a value outside Loihi's registers, layers that do not fit) is refused when it is read,
by the loader and by the emulator alike: a MalformedFileError naming the dataset, never another exception."""

import shutil

import h5py
import numpy as np
import pytest

import snnc
from snnc.core.errors import MalformedFileError
from snnc.frontends.loader import load_model
from snnc.runtime.loihi import LoihiSession
from tests.backends.lava.nets import conv_pool_dense, spikes


@pytest.fixture(scope="module")
def netx_file(tmp_path_factory):
    art = snnc.compile(conv_pool_dense(), target="lava", output=tmp_path_factory.mktemp("netx") / "art")
    return art.path / "net.net"


def _replace(f, key, value):
    del f[key]
    f[key] = value


EDITS = {  # what is changed -> what the error says
    "vThMant 2^62 (the issue's bit flip)": (lambda f: _replace(f, "layer/1/neuron/vThMant", np.int64(2**62)),
                                            r"/layer/1/neuron/vThMant holds values outside"),
    "vThMant over 17 bits": (lambda f: _replace(f, "layer/2/neuron/vThMant", np.int64(1 << 20)),
                             r"/layer/2/neuron/vThMant is 1048576, outside Loihi's range 0\.\.131072"),
    "negative decay": (lambda f: _replace(f, "layer/4/neuron/vDecay", np.int64(-3)),
                       r"/layer/4/neuron/vDecay is -3, outside Loihi's range 0\.\.4096"),
    "NaN weight": (lambda f: _replace(f, "layer/4/weight", np.full((5, 96), np.nan)),
                   r"/layer/4/weight holds values outside .*NaN"),
    "stride 0": (lambda f: _replace(f, "layer/2/stride", np.array([0, 2])), r"/layer/2/stride must be"),
    "conv shape": (lambda f: _replace(f, "layer/1/shape", np.array([4, 9, 8])),
                   r"/layer/1: shape \[4, 9, 8\] does not match what its conv synapse makes, \[4, 8, 8\]"),
    "input scale": (lambda f: f.attrs.modify("snnc_input_scale", np.nan), r"input scale nan is not a positive"),
    "message bits": (lambda f: f.attrs.modify("snnc_input_message_bits", 99), r"input message bits 99"),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_damaged_netx_is_refused_by_loader_and_emulator(netx_file, tmp_path, edit):
    change, message = EDITS[edit]
    path = tmp_path / "net.net"
    shutil.copy(netx_file, path)
    with h5py.File(path, "r+") as f:
        change(f)
    for read in (load_model, LoihiSession):
        with pytest.raises(MalformedFileError, match=message) as e:
            read(path)
        assert str(path) in e.value.message and "\n" not in e.value.message


def test_the_undamaged_file_still_runs(netx_file):
    out = LoihiSession(netx_file).run(spikes(6, 2, 2, 8, 8, seed=1))
    assert out.shape == (6, 2, 5) and set(out.unique().tolist()) <= {0.0, 1.0}
