import h5py
import pytest
import torch

import snnc
from snnc.core.errors import MalformedFileError
from snnc.frontends import trace
from snnc.ir import load, save


def _assert_same(a, b):
    assert a.name == b.name and a.meta == b.meta
    assert list(a.nodes) == list(b.nodes)
    for op in a:
        assert b[op.name] == op
    assert list(a.params) == list(b.params)
    for k, v in a.params.items():
        assert v.dtype == b.params[k].dtype and torch.equal(v, b.params[k])


def test_round_trip_ann_exact(tmp_path, small_cnn):
    g = trace(small_cnn, (1, 8, 8))
    save(g, tmp_path / "m.snnir")
    _assert_same(g, load(tmp_path / "m.snnir"))


def test_round_trip_snn_exact_with_meta_and_dtypes(tmp_path, small_cnn):
    g = snnc.convert(small_cnn, torch.rand(32, 1, 8, 8), "max")
    g.params["extra_bf16"] = torch.randn(3).to(torch.bfloat16)
    save(g, tmp_path / "s.snnir")
    back = load(tmp_path / "s.snnir")
    _assert_same(g, back)
    assert back.meta["conversion"]["mode"] == "max"


def test_saving_twice_gives_identical_bytes(tmp_path, small_cnn):
    g = trace(small_cnn, (1, 8, 8))
    save(g, tmp_path / "a.snnir")
    save(g, tmp_path / "b.snnir")
    assert (tmp_path / "a.snnir").read_bytes() == (tmp_path / "b.snnir").read_bytes()


def test_truncated_file_is_a_malformed_file_error(tmp_path, small_cnn):
    save(trace(small_cnn, (1, 8, 8)), tmp_path / "m.snnir")
    data = (tmp_path / "m.snnir").read_bytes()
    (tmp_path / "t.snnir").write_bytes(data[: len(data) // 2])
    with pytest.raises(MalformedFileError, match="t.snnir"):
        load(tmp_path / "t.snnir")


def test_wrong_magic_and_missing_tensor(tmp_path, small_cnn):
    (tmp_path / "x.snnir").write_bytes(b"not an hdf5 file at all")
    with pytest.raises(MalformedFileError):
        load(tmp_path / "x.snnir")
    save(trace(small_cnn, (1, 8, 8)), tmp_path / "m.snnir")
    with h5py.File(tmp_path / "m.snnir", "a") as f:
        del f["params/p00000"]
    with pytest.raises(MalformedFileError, match="missing"):
        load(tmp_path / "m.snnir")


def test_oversized_shape_claim_is_rejected_without_allocating(tmp_path, small_cnn):
    import json

    import numpy as np

    save(trace(small_cnn, (1, 8, 8)), tmp_path / "m.snnir")
    with h5py.File(tmp_path / "m.snnir", "a") as f:
        doc = json.loads(bytes(f["graph"][()]).decode())
        doc["params"][0]["shape"] = [10**6, 10**6]
        del f["graph"]
        f.create_dataset("graph", data=np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8))
    with pytest.raises(MalformedFileError, match="too large"):
        load(tmp_path / "m.snnir")
