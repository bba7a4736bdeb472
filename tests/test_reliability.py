"""Safe loading, atomic writes and reproducible artifacts (issue 11)."""

import os
import pickle
from pathlib import Path

import pytest
import torch

import snnc
from snnc.core.errors import UntrustedPickleError
from snnc.core.fileio import atomic_path
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
           "--input-shape", "input:[1,4]", "-o", str(tmp_path / "s.snnir")]  # nn.Sequential.forward(input)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 3 and "--trust-pickle" in r.stderr and not (tmp_path / "s.snnir").exists()
    r = subprocess.run(cmd + ["--trust-pickle"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "warning: unpickling" in r.stderr and (tmp_path / "s.snnir").is_file()


# ---------------------------------------------------------------- external references and oversized claims
def _onnx_gemm(tmp_path, init):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    node = helper.make_node("Gemm", ["x", "w"], ["y"], transB=1, name="fc")
    path = tmp_path / "model" / "m.onnx"
    path.parent.mkdir(exist_ok=True)
    onnx.save(helper.make_model(helper.make_graph([node], "g", [x], [y], [init])), path)
    return path


def _external(location: str, length: int | None = None, dims=(3, 4)):
    from onnx import TensorProto

    t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=list(dims), data_location=TensorProto.EXTERNAL)
    for k, v in (("location", location), ("offset", "0"), ("length", None if length is None else str(length))):
        if v is not None:
            e = t.external_data.add()
            e.key, e.value = k, v
    return t


@pytest.mark.parametrize("where", ["dotdot", "absolute", "symlink"])
def test_onnx_external_data_outside_the_folder_is_refused_unopened(tmp_path, monkeypatch, where):
    import builtins

    import numpy as np

    from snnc.core.errors import UnsafeFileReferenceError
    from snnc.frontends.loader import load_model

    (tmp_path / "model").mkdir()
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(12, dtype=np.float32).tobytes())
    (tmp_path / "model" / "w.bin").write_bytes(np.arange(12, dtype=np.float32).tobytes())
    ok = load_model(_onnx_gemm(tmp_path, _external("w.bin")))  # the same file inside the folder is read
    assert ok.params["w"].flatten().tolist() == list(range(12))
    (tmp_path / "model" / "link.bin").symlink_to(secret)
    location = {"dotdot": "../secret.bin", "absolute": str(secret), "symlink": "link.bin"}[where]
    path = _onnx_gemm(tmp_path, _external(location))
    opened = []
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: opened.append(os.path.realpath(f)) or real_open(f, *a, **k))
    with pytest.raises(UnsafeFileReferenceError, match=r"initializer 'w'.*outside the model's folder"):
        load_model(path)
    assert opened and str(secret) not in opened


def test_onnx_oversized_claims_are_rejected_quickly(tmp_path):
    import time

    import numpy as np
    from onnx import numpy_helper

    from snnc.core.errors import TensorTooLargeError
    from snnc.frontends.loader import load_model

    inline = numpy_helper.from_array(np.ones((3, 4), np.float32), "w")
    del inline.dims[:]
    inline.dims.extend([10**6, 10**6])  # 10^12 elements claimed, 48 bytes stored
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "w.bin").write_bytes(bytes(48))
    for init, pattern in ((inline, r"initializer 'w' claims shape \[1000000, 1000000\]"),
                          (_external("w.bin", length=10**13), r"initializer 'w' claims 9,536,743.2 MiB of external"),
                          (_external("w.bin", dims=(10**6, 10**6)), r"initializer 'w' claims shape")):
        path = _onnx_gemm(tmp_path, init)
        start = time.perf_counter()
        with pytest.raises(TensorTooLargeError, match=pattern) as e:
            load_model(path)
        assert time.perf_counter() - start < 1.0 and "m.onnx" in str(e.value)


def test_onnx_constant_of_shape_is_not_folded_into_a_huge_tensor(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from snnc.core.errors import TensorTooLargeError
    from snnc.frontends.loader import load_model

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [10**6, 10**6])
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["big"], name="fill"),
             helper.make_node("Add", ["x", "big"], ["y"], name="add")]
    path = tmp_path / "c.onnx"
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", [x], [y], [shape])), path)
    with pytest.raises(TensorTooLargeError, match="'big' of node 'fill'"):
        load_model(path)


def _nir_file(tmp_path):
    import nir
    import numpy as np

    g = nir.NIRGraph.from_list(nir.Input(input_type=np.array([4])), nir.Affine(np.ones((3, 4)), np.zeros(3)),
                               nir.Output(output_type=np.array([3])))
    path = tmp_path / "net.nir"
    nir.write(path, g)
    return path


def _weight_key(path):
    import h5py

    with h5py.File(path, "r") as f:
        return next(f"node/nodes/{k}/weight" for k in f["node/nodes"] if "weight" in f[f"node/nodes/{k}"])


@pytest.mark.parametrize("how", ["external_link", "external_storage"])
def test_hdf5_references_to_other_files_are_refused(tmp_path, how):
    import h5py
    import numpy as np

    from snnc.core.errors import UnsafeFileReferenceError
    from snnc.frontends.loader import load_model
    from snnc.frontends.nir import load_nir

    path = _nir_file(tmp_path)
    key = _weight_key(path)
    outside = tmp_path / "outside"
    outside.mkdir()
    with h5py.File(outside / "other.h5", "w") as f:
        f["w"] = np.full((3, 4), 7.0)
    (outside / "raw.bin").write_bytes(np.full(12, 7.0).tobytes())
    with h5py.File(path, "r+") as f:
        del f[key]
        if how == "external_link":
            f[key] = h5py.ExternalLink(str(outside / "other.h5"), "/w")
        else:
            f.create_dataset(key, shape=(3, 4), dtype="f8", external=[(str(outside / "raw.bin"), 0, 96)])
    with h5py.File(path, "r") as f:  # h5py alone follows the reference into the other file
        assert float(f[key][0, 0]) == 7.0
    for read in (load_model, load_nir):
        with pytest.raises(UnsafeFileReferenceError, match=key.split("/")[-2]):
            read(path)


def test_hdf5_oversized_datasets_are_rejected_quickly(tmp_path, monkeypatch):
    import time

    import h5py

    from snnc.core.errors import TensorTooLargeError
    from snnc.frontends.loader import load_model

    path = _nir_file(tmp_path)
    key = _weight_key(path)
    for shape, pattern in (((10**6, 10**6), r"claims shape \[1000000, 1000000\]"),  # over the limit
                           ((4096, 4096), r"claims shape \[4096, 4096\] \(128.0 MiB\) but the file stores only 0")):
        with h5py.File(path, "r+") as f:
            del f[key]
            f.create_dataset(key, shape=shape, dtype="f8", chunks=(1, 1024), fillvalue=1.0)  # nothing written
        start = time.perf_counter()
        with pytest.raises(TensorTooLargeError, match=pattern) as e:
            load_model(path)
        assert time.perf_counter() - start < 1.0 and "net.nir" in str(e.value) and key in str(e.value)
    monkeypatch.setenv("SNNC_MAX_TENSOR_BYTES", "64")  # the limit is configurable: a 96-byte weight is refused
    with pytest.raises(TensorTooLargeError, match=r"weight claims shape \[3, 4\] .* limit of 0.1 KiB per tensor"):
        load_model(_nir_file(tmp_path))


def _pt2(tmp_path):
    m = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    path = tmp_path / "m.pt2"
    torch.export.save(torch.export.export(m, (torch.rand(2, 5),)), path)
    return path


def _rewrite_zip(src, dst, edit):
    import zipfile

    with zipfile.ZipFile(src) as zi, zipfile.ZipFile(dst, "w") as zo:
        for info in zi.infolist():
            zo.writestr(info, edit(info.filename, zi.read(info)))
    return dst


def test_pt2_oversized_weight_claim_is_rejected_quickly(tmp_path):
    import json
    import time

    from snnc.core.errors import TensorTooLargeError
    from snnc.frontends.loader import load_model

    src = _pt2(tmp_path)
    assert load_model(src).params  # the unmodified archive reads

    def huge(name, data):  # an empty record: torch.export.load would allocate torch.zeros(claimed sizes)
        if name.endswith("model_weights_config.json"):
            cfg = json.loads(data)
            cfg["config"]["0.weight"]["tensor_meta"]["sizes"] = [{"as_int": 10**6}, {"as_int": 10**6}]
            return json.dumps(cfg).encode()
        return b"" if name.endswith("weights/weight_0") else data

    path = _rewrite_zip(src, tmp_path / "huge.pt2", huge)
    start = time.perf_counter()
    with pytest.raises(TensorTooLargeError, match=r"huge.pt2: weight '0.weight' claims shape \[1000000, 1000000\]"):
        load_model(path)
    assert time.perf_counter() - start < 1.0


def test_pt2_pickled_payloads_are_not_executed(tmp_path):
    import io
    import json

    from snnc.frontends.loader import load_model

    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    torch.save((_Evil(str(marker)),), buf)
    src = _pt2(tmp_path)
    evil = _rewrite_zip(src, tmp_path / "evil.pt2", lambda n, d: buf.getvalue() if "sample_inputs" in n else d)
    with pytest.raises(UntrustedPickleError, match="sample inputs"):
        load_model(evil)
    assert not marker.exists()

    def pickled(name, data):
        if name.endswith("model_weights_config.json"):
            cfg = json.loads(data)
            cfg["config"]["0.weight"]["use_pickle"] = True
            return json.dumps(cfg).encode()
        return data

    with pytest.raises(UntrustedPickleError, match="weight '0.weight' is stored as a pickled object"):
        load_model(_rewrite_zip(src, tmp_path / "pickled.pt2", pickled))


# ---------------------------------------------------------------- calibration data
def test_calibration_nan_names_batch_sample_and_input():
    from snnc.core.errors import InputError

    m = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    data = torch.rand(40, 5)
    data[33, 2] = float("nan")
    with pytest.raises(InputError, match=r"calibration data for input %\w+, batch 2: sample 33 \(row 1 of the "
                                         r"batch\) contains NaN"):
        snnc.convert(m, data, "max", batch_size=16)
    with pytest.raises(InputError, match=r"batch 1: sample 8 \(row 0 of the batch\) contains Inf"):
        snnc.convert(m, [torch.rand(8, 5), torch.full((8, 5), float("inf"))], "max")
    with pytest.raises(InputError, match=r"batch 1 has shape \[8, 4\]; the model takes \[batch, 5\]"):
        snnc.convert(m, [torch.rand(8, 5), torch.rand(8, 4)], "max")
    with pytest.raises(InputError, match=r"batch 0 has dtype torch.complex64"):
        snnc.convert(m, torch.rand(8, 5).to(torch.complex64), "max")
    with pytest.raises(InputError, match=r"calibration data, batch 0: a str that cannot be converted"):
        snnc.convert(m, [("not a tensor", 0)], "max")


# ---------------------------------------------------------------- resource bounds
def test_run_over_max_memory_fails_fast_with_the_estimate(small_cnn):
    import re
    import time

    from snnc.core.errors import ResourceError
    from snnc.runtime import Session

    g = snnc.convert(small_cnn, torch.rand(8, 1, 8, 8), "max")
    s = Session(g, progress=False)
    x = torch.rand(64, 1, 8, 8)
    est = s.estimate_memory(tuple(x.shape), 32)
    full = s.execute(x, 32)
    assert full.memory == est and full.window == 32
    s.max_memory = est.total - est.activations // 2  # room for about half the steps: runs in smaller windows
    half = s.execute(x, 32)
    assert half.window < 32 and half.memory.total <= s.max_memory
    assert torch.equal(half.outputs[s.output_names[0]], full.outputs[s.output_names[0]])
    s.max_memory = est.with_window(1).total - 1  # not even one step fits
    start = time.perf_counter()
    with pytest.raises(ResourceError, match=r"needs about [\d.]+ MiB, more than the max_memory") as e:
        s.execute(x, 32)
    assert time.perf_counter() - start < 1.0
    needed = float(re.search(r"needs about ([\d.]+) MiB", str(e.value)).group(1))
    assert abs(needed - est.with_window(1).total / 2**20) < 0.1 and "smaller batch" in str(e.value)


def test_memory_estimate_is_close_to_the_measured_peak(tmp_path):
    """Peak resident memory of a fresh process running ~50 MiB of activations vs the estimate."""
    import subprocess
    import sys

    script = tmp_path / "measure.py"
    script.write_text(
        "import torch, snnc\n"
        "from snnc.runtime import Session\n"
        "from tests.conftest import SmallCNN\n"
        "torch.manual_seed(0)\n"
        "g = snnc.convert(SmallCNN(8).eval(), torch.rand(16, 1, 16, 16), 'max', show_progress=False)\n"
        "s = Session(g, progress=False)\n"
        "x = torch.rand(128, 1, 16, 16)\n"
        "s.execute(torch.rand(2, 1, 16, 16), 2)\n"
        "def status(key):\n"
        "    return next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith(key))\n"
        "open('/proc/self/clear_refs', 'w').write('5')\n"
        "base = status('VmRSS:')\n"
        "r = s.execute(x, 32)\n"
        "print(r.memory.total, status('VmHWM:') - base)\n")
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=root,
                       env={**os.environ, "PYTHONPATH": str(root)})
    if r.returncode != 0 and "clear_refs" in r.stderr:
        pytest.skip("cannot reset the peak RSS here")
    assert r.returncode == 0, r.stderr
    estimate, measured = map(int, r.stdout.split()[-2:])
    assert estimate > 32 << 20 and 0.5 < estimate / measured < 2.0, (estimate, measured)


def test_cli_run_reports_and_bounds_memory(tmp_path, small_cnn):
    import numpy as np
    from typer.testing import CliRunner

    from snnc.cli import app

    g = snnc.convert(small_cnn, torch.rand(8, 1, 8, 8), "max")
    art = snnc.compile(g, "cpu", tmp_path / "art").path
    np.save(tmp_path / "x.npy", np.random.rand(4, 1, 8, 8).astype(np.float32))
    ok = CliRunner().invoke(app, ["run", str(art), "-i", str(tmp_path / "x.npy"), "-T", "8", "--stats"])
    assert ok.exit_code == 0, ok.output
    assert "estimated peak memory" in ok.output
    bad = CliRunner().invoke(app, ["run", str(art), "-i", str(tmp_path / "x.npy"), "-T", "8", "--max-memory", "1K"])
    from snnc.core.errors import ResourceError

    assert isinstance(bad.exception, ResourceError) and ResourceError.exit_code == 7
    assert "more than the max_memory (1.0 KiB)" in str(bad.exception)


@pytest.mark.parametrize("fmt", ["snnir", "netx"])
def test_direct_readers_refuse_links_into_other_files(tmp_path, small_cnn, fmt):
    """snnc.ir.load and the NetX reader check the file themselves, not only through the loader."""
    import h5py
    import numpy as np

    from snnc.core.errors import UnsafeFileReferenceError

    outside = tmp_path / "outside"
    outside.mkdir()
    with h5py.File(outside / "other.h5", "w") as f:
        f["w"] = np.zeros(3)
    if fmt == "snnir":
        path = snnc.ir.save(snnc.trace(small_cnn, (1, 8, 8)), tmp_path / "m.snnir")
        read = snnc.ir.load
    else:
        from snnc.ir.formats.netx import NetxLayer, NetxNetwork, NetxNeuron, read_network, write_netx

        net = NetxNetwork([NetxLayer("input", (3,)), NetxLayer("dense", (2,), NetxNeuron(4096, 0, 10),
                                                               weight=np.array([[1, -1, 0], [0, 2, 4]]))], (3,))
        path = write_netx(net, tmp_path / "n.net")
        read = read_network
    read(path)  # the untouched file reads
    with h5py.File(path, "r+") as f:
        f["sneaky"] = h5py.ExternalLink(str(outside / "other.h5"), "/w")
    with pytest.raises(UnsafeFileReferenceError, match="sneaky"):
        read(path)


def test_damaged_global_heap_is_refused_not_looped_on(tmp_path):
    """A zeroed global heap collection makes HDF5 itself loop forever in H5Dread; snnc stops the read (it runs
    in a helper process) after SNNC_HDF5_TIMEOUT seconds and names the file."""
    import os
    import subprocess
    import sys

    path = _nir_file(tmp_path)
    data = bytearray(path.read_bytes())
    gcol = data.index(b"GCOL")  # the collection holding the graph's strings (node types, edges)
    data[gcol + 16:gcol + 16 + 96] = bytes(96)  # its first objects: index and size zero
    path.write_bytes(bytes(data))
    code = ("from snnc.frontends.loader import load_model\n"
            f"try:\n    load_model({str(path)!r})\n"
            "except Exception as e:\n    print(type(e).__name__, e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "SNNC_HDF5_TIMEOUT": "2"})
    assert r.stdout.startswith(f"MalformedFileError {path}: reading this NIR file did not finish within 2 s"), \
        r.stdout + r.stderr
