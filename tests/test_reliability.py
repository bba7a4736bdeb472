"""Safe loading, atomic writes and reproducible artifacts (issue 11)."""

import os
import pickle
from pathlib import Path

import pytest
import torch

import snnc
from snnc.errors import UntrustedPickleError
from snnc.fileio import atomic_path
from snnc.frontends.loader import load_state_dict


class _Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_malicious_pickle_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "model.pt"
    torch.save({"weight": torch.ones(2), "payload": _Evil(str(marker))}, evil)
    assert not marker.exists()
    with pytest.raises(UntrustedPickleError, match="model.pt"):
        load_state_dict(evil)
    assert not marker.exists()
    with open(evil, "wb") as f:  # a plain pickle, not even a torch zip file
        pickle.dump(_Evil(str(marker)), f)
    with pytest.raises(UntrustedPickleError):
        load_state_dict(evil)
    assert not marker.exists()


def test_interrupted_write_leaves_the_old_file(tmp_path):
    dst = tmp_path / "a.bin"
    dst.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(dst) as tmp:
            tmp.write_bytes(b"half of the new cont")
            raise KeyboardInterrupt
    assert dst.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["a.bin"]


def test_interrupted_artifact_leaves_no_folder(tmp_path, small_cnn, monkeypatch):
    g = snnc.convert(small_cnn, torch.rand(8, 1, 8, 8), "max")
    import snnc.backends.artifact as artifact

    def boom(*a, **k):
        raise KeyboardInterrupt  # Ctrl-C after graph.snnir is written, before the manifest

    monkeypatch.setattr(artifact, "write_manifest", boom)
    with pytest.raises(KeyboardInterrupt):
        snnc.compile(g, "cpu", tmp_path / "art")
    assert os.listdir(tmp_path) == []


def test_compiling_twice_gives_identical_bytes(tmp_path, small_cnn):
    g = snnc.convert(small_cnn, torch.rand(8, 1, 8, 8), "99%")
    a = snnc.compile(g, "cpu", tmp_path / "a").path
    b = snnc.compile(g, "cpu", tmp_path / "b").path
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) and "manifest.json" in names
    for n in names:
        assert (a / n).read_bytes() == (b / n).read_bytes(), n


@pytest.mark.parametrize("target,opts", [("triton", {}), ("lynxi", {"time_steps": 4, "batch_size": 2}),
                                         ("lava", {"time_steps": 4}), ("nir", {"soft_reset": "as_hard"})])
def test_every_target_compiles_to_identical_bytes(tmp_path, small_cnn, target, opts):
    import warnings

    g = snnc.convert(small_cnn, torch.rand(8, 1, 8, 8), "99%")
    if target == "nir":  # NIR has no adaptive pooling: use a LIF/IF conv-pool-dense net
        from tests.backends.lava.nets import conv_pool_dense

        g = conv_pool_dense()
    if target == "lava":
        from snnc.backends.lava.convert import reset_to_zero

        g = reset_to_zero(g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = snnc.compile(g, target, tmp_path / "a", **opts).path
        b = snnc.compile(g, target, tmp_path / "b", **opts).path
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) and "manifest.json" in names
    differ = [n for n in names if (a / n).read_bytes() != (b / n).read_bytes()]
    assert not differ, differ


def test_pickled_model_is_refused_unless_trusted(tmp_path):
    import subprocess
    import sys

    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    torch.save(model, tmp_path / "whole.pt")
    np_calib = tmp_path / "c.npy"
    import numpy as np

    np.save(np_calib, np.random.rand(16, 4).astype(np.float32))
    cmd = [sys.executable, "-m", "snnc.cli", "convert", str(tmp_path / "whole.pt"), "--calib", str(np_calib),
           "--input-shape", "x:[1,4]", "-o", str(tmp_path / "s.snnir")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 3 and "--trust-pickle" in r.stderr and not (tmp_path / "s.snnir").exists()
    r = subprocess.run(cmd + ["--trust-pickle"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "warning: unpickling" in r.stderr and (tmp_path / "s.snnir").is_file()
