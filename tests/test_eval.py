"""`snnc eval`: accuracy against T over shards, in one process and under torchrun with 2 ranks.

The model is the stored digits CNN (tests/nets.py): the same weights on every CPU. Every check compares
eval's counts with an independent computation (Session.predict per T on all the data at once), or one
process with two; no number is stored.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import snnc
from snnc.core import datasets
from snnc.core.errors import InputError
from snnc.evaluate import EVAL_FORMAT, evaluate, find_shards, is_eval_json, my_part
from snnc.ir import save
from snnc.runtime import Interpreter, Session
from tests.nets import digits_cnn

T_VALUES = (2, 4, 8)
N_CALIB = 64


@pytest.fixture(scope="module")
def digits():
    return datasets.digits()


@pytest.fixture(scope="module")
def ann(digits):
    return snnc.trace(digits_cnn(), [1, 8, 8])


@pytest.fixture(scope="module")
def shards(tmp_path_factory, digits):
    """The 450 test samples as 3 uneven .npz shards and one NAME.x.npy + NAME.y.npy pair."""
    root = tmp_path_factory.mktemp("shards")
    x, y = digits.x_test.numpy(), digits.y_test.numpy()
    cuts = [0, 100, 250, 330, len(x)]
    for i, (a, b) in enumerate(zip(cuts[:-1], cuts[1:])):
        if i < 3:
            np.savez(root / f"part{i}.npz", x=x[a:b], y=y[a:b])
        else:
            np.save(root / f"part{i}.x.npy", x[a:b])
            np.save(root / f"part{i}.y.npy", y[a:b])
    return root


def _expected(graph, x, y, t_values) -> dict[int, int]:
    s = Session(graph, progress=False)
    return {t: int((s.predict(x, t) == y).sum()) for t in t_values}


def test_eval_counts_equal_predict_at_each_T(ann, shards, digits):
    calib = digits.x_train[:N_CALIB]
    res = evaluate(ann, str(shards), T_VALUES, calib=calib, modes=("max",), batch_size=64)
    snn = snnc.convert(ann, calib, "max", show_progress=False)
    assert res.n == len(digits.y_test) and res.shards == 4 and res.ranks == 1
    assert res.correct["max"] == _expected(snn, digits.x_test, digits.y_test, T_VALUES)
    ann_pred = Interpreter(ann).run({ann.inputs[0].name: digits.x_test})[ann.outputs[0].name]
    assert res.ann_correct == int((ann_pred.argmax(-1) == digits.y_test).sum())
    # accuracy grows with T for this converted network, so the T columns are not one number repeated
    assert len(set(res.correct["max"].values())) > 1


def test_eval_of_an_snn_file_and_a_single_npz(tmp_path, ann, digits):
    snn = snnc.convert(ann, digits.x_train[:N_CALIB], 0.5, show_progress=False)
    np.savez(tmp_path / "test.npz", x=digits.x_test[:70].numpy(), y=digits.y_test[:70].numpy())
    res = evaluate(snn, str(tmp_path / "test.npz"), (3, 5), batch_size=32)
    assert list(res.correct) == ["0.5"] and res.ann_correct is None
    assert res.correct["0.5"] == _expected(snn, digits.x_test[:70], digits.y_test[:70], (3, 5))


def test_shard_assignment_covers_every_sample_once():
    names = [f"s{i}" for i in range(5)]
    for world in (1, 2, 3, 5):
        parts = [my_part(names, r, world) for r in range(world)]
        assert sorted(n for p, rows in parts for n in p) == names and not any(rows for _, rows in parts)
    # fewer shards than ranks: every rank reads each shard and takes its rows
    parts = [my_part(names[:1], r, 4) for r in range(4)]
    assert all(p == names[:1] and rows for p, rows in parts)


def test_bad_shards_are_refused_with_one_line(tmp_path):
    (tmp_path / "a.x.npy").write_bytes(b"")
    with pytest.raises(InputError, match=r"a\.x\.npy: its labels a\.y\.npy are missing"):
        find_shards(str(tmp_path))
    (tmp_path / "a.x.npy").unlink()
    np.save(tmp_path / "b.npy", np.zeros(3))
    with pytest.raises(InputError, match=r"b\.npy is neither NAME\.x\.npy nor NAME\.y\.npy"):
        find_shards(str(tmp_path))
    (tmp_path / "b.npy").unlink()
    with pytest.raises(InputError, match="no .npz or NAME.x.npy shards"):
        find_shards(str(tmp_path))
    np.savez(tmp_path / "c.npz", x=np.zeros((3, 1, 8, 8), np.float32), y=np.array([0.5, 1, 2]))
    with pytest.raises(InputError, match="integer class labels"):
        evaluate(snnc.trace(digits_cnn(), [1, 8, 8]), str(tmp_path), (2,), calib=torch.zeros(4, 1, 8, 8))


def _snnc(*args, ranks: int = 1, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if ranks == 1:
        cmd = [sys.executable, "-m", "snnc", *map(str, args)]
    else:
        torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
        cmd = [torchrun, "--standalone", "--nproc-per-node", str(ranks), "-m", "snnc", *map(str, args)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=cwd, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


@pytest.mark.parametrize("data", ["folder", "one_file"])
def test_torchrun_two_ranks_equal_one_process(tmp_path, ann, shards, digits, data):
    """2 ranks (shards split between them, or rows of one file) give exactly the counts of 1 process."""
    model = tmp_path / "ann.snnir"
    save(ann, model)
    np.save(tmp_path / "calib.npy", digits.x_train[:N_CALIB].numpy())
    src = shards if data == "folder" else shards / "part1.npz"
    common = ["eval", model, "--calib", tmp_path / "calib.npy", "--data", src, "-T", "2,6", "--mode", "max,99%",
              "--batch-size", "40"]
    _snnc(*common, "-o", tmp_path / "one.json", ranks=1, cwd=tmp_path)
    r = _snnc(*common, "-o", tmp_path / "two.json", ranks=2, cwd=tmp_path)
    one, two = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "two.json"))
    assert one["ranks"] == 1 and two["ranks"] == 2 and one["format"] == EVAL_FORMAT
    assert two["n"] == one["n"] == (len(digits.y_test) if data == "folder" else 150)
    assert two["correct"] == one["correct"] and two["ann_accuracy"] == one["ann_accuracy"]
    assert r.stdout.count("accuracy (%) on") == 1  # only rank 0 prints
    assert is_eval_json(tmp_path / "two.json")


def test_eval_output_refuses_to_replace_other_files(tmp_path, ann):
    model = tmp_path / "ann.snnir"
    save(ann, model)
    keep = tmp_path / "notes.json"
    keep.write_text('{"mine": 1}')
    r = subprocess.run([sys.executable, "-m", "snnc", "eval", str(model), "--calib", "digits", "-T", "2",
                        "-o", str(keep)], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and r.stderr.count("error:") == 1 and keep.read_text() == '{"mine": 1}'


def _report_scores(folder: Path) -> dict:
    page = (folder / "report.html").read_text()
    m = re.search(r'<script type="application/json" id="snnc-data">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))["scores"]


def test_report_under_torchrun_equals_one_process(tmp_path, ann, digits):
    """`snnc report` runs unchanged under torchrun: the ranks split the evaluation rows; rank 0 writes."""
    model = tmp_path / "ann.snnir"
    save(ann, model)
    np.save(tmp_path / "calib.npy", digits.x_train[:N_CALIB].numpy())
    np.savez(tmp_path / "eval.npz", x=digits.x_test[:61].numpy(), y=digits.y_test[:61].numpy())
    common = ["report", model, "--calib", tmp_path / "calib.npy", "--eval", tmp_path / "eval.npz", "-T", "2,5"]
    _snnc(*common, "-o", tmp_path / "one", ranks=1, cwd=tmp_path)
    _snnc(*common, "-o", tmp_path / "two", ranks=2, cwd=tmp_path)
    one, two = _report_scores(tmp_path / "one"), _report_scores(tmp_path / "two")
    assert one == two and one["max"]["2"]["n"] == 61


def test_eval_reads_a_model_that_averages_over_T_at_its_last_step(tmp_path):
    """A model whose output is its own mean over T (a TimeMean op, MS-ResNet's `head(x).mean(0)`) is scored at step
    t - 1 of the run, as Session.predict reads it; averaging the running means again would score another number."""
    from tests.frontends.test_time_mean import MeanHead

    head = MeanHead()
    with torch.no_grad():  # one IF neuron fed x[:, 0]; class 1 grows with its rate, class 0 is a constant 0.2
        for p in head.parameters():
            p.zero_()
        head.fc1.weight[0, 0] = 1.0
        head.fc2.weight[1, 0] = 1.0
        head.fc2.bias[0] = 0.2
    snn = snnc.trace(head, (6,))
    x = torch.zeros(200, 6)
    x[:, 0] = torch.linspace(0.2, 0.6, 200)  # fires at step 1, step 2 or not within 3 steps
    s = Session(snn, progress=False)
    y = s.predict(x, 3)
    assert 0 < int(y.sum()) < 200
    np.savez(tmp_path / "d.npz", x=x.numpy(), y=y.numpy())
    res = evaluate(snn, str(tmp_path / "d.npz"), (3, 6), batch_size=64)
    assert res.correct[next(iter(res.correct))] == _expected(snn, x, y, (3, 6))
    assert res.correct[next(iter(res.correct))][3] == 200
    running = s.run(x, 3)  # [T, N, 3]: the running mean
    assert int((running.mean(0).argmax(-1) == y).sum()) < 200  # what the mean of running means would have scored


def test_eval_and_report_take_the_hybrid_conversion(tmp_path, digits):
    """An ANN with a SiLU converts only in the hybrid mode: eval refuses it naming --analog, and with analog="silu"
    its counts equal Session.predict of snnc.convert(..., analog="silu")."""
    import torch.nn as nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.SiLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10))
    ann = snnc.trace(model, [1, 8, 8])
    calib = digits.x_train[:N_CALIB]
    np.savez(tmp_path / "d.npz", x=digits.x_test[:60].numpy(), y=digits.y_test[:60].numpy())
    with pytest.raises(Exception, match="analog"):
        evaluate(ann, str(tmp_path / "d.npz"), (4,), calib=calib, modes=("max",))
    res = evaluate(ann, str(tmp_path / "d.npz"), (4, 16), calib=calib, modes=("max",), analog="silu")
    snn = snnc.convert(ann, calib, "max", show_progress=False, analog="silu")
    assert res.correct["max"] == _expected(snn, digits.x_test[:60], digits.y_test[:60], (4, 16))
    from snnc.report import collect

    data = collect(ann, digits.x_test[:40], digits.y_test[:40], calib, modes=("max",), t_values=(4,), analog="silu")
    assert data is not None


def test_eval_and_report_take_signed_neurons(tmp_path, digits):
    """signed=True: eval's counts equal Session.predict of snnc.convert(..., signed=True), not the plain ones."""
    import torch.nn as nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10))
    ann = snnc.trace(model, [1, 8, 8])
    calib, x, y = digits.x_train[:N_CALIB], digits.x_test[:60], digits.y_test[:60]
    np.savez(tmp_path / "d.npz", x=x.numpy(), y=y.numpy())
    res = evaluate(ann, str(tmp_path / "d.npz"), (4, 16), calib=calib, modes=("max",), signed=True)
    snn = snnc.convert(ann, calib, "max", show_progress=False, signed=True)
    assert any(op.kind == "signed_if" for op in snn)
    assert res.correct["max"] == _expected(snn, x, y, (4, 16))
    from snnc.report import collect

    from snnc.report import write_report

    data = collect(ann, digits.x_test[:40], digits.y_test[:40], calib, modes=("max",), t_values=(4,), signed=True)
    assert data.rates and all(0 <= r <= 1 for r in data.rates.values()) and data.trace is not None
    assert write_report(data, tmp_path / "report").is_file()  # report.html
