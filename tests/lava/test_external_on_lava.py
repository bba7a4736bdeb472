"""Every lava-dl NetX file in ../shared/external (not the Git LFS pointers) runs on the real Lava
(Loihi2SimCfg, fixed point) and gives, layer by layer and step by step, exactly snnc's emulation.

The input is one sample of seeded random integers: 0/1 spikes into a first synapse, 0..255 into an
input neuron (its a_in; sigma-delta input layers send them on as graded messages); the Oxford network,
which barely reacts to dense random spikes, gets the tutorial's recorded input spikes. tiny.net and
pilotnet_lif run with the reset_interval lava-dl records their ground truths with (16), over 20 steps so
that the reset happens. Skipped, with the reason, outside the Lava environment or without
../shared/external.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.lava.conftest import lava_or_skip

pytestmark = pytest.mark.lava

ROOT = Path(__file__).resolve().parents[2]
LFS_MARK = b"version https://git-lfs.github.com/spec/"
# the Oxford network barely reacts to dense random spikes: it gets the tutorial's recorded input (gts/in.npy)
GIVEN = {"tutorials/lava/lib/dl/netx/oxford/Trained/network.net": "tutorials/lava/lib/dl/netx/oxford/gts/in.npy",
         "tutorials/lava/lib/dl/slayer/oxford/Trained/network.net": "tutorials/lava/lib/dl/netx/oxford/gts/in.npy"}
RESET = {"tests/lava/lib/dl/netx/tiny.net": 16, "tests/lava/lib/dl/netx/gts/pilotnet_lif/network.net": 16}


def _lava_dl() -> Path | None:
    for cand in (os.environ.get("SNNC_EXTERNAL"), ROOT.parent / "shared" / "external",
                 ROOT.parent.parent / "shared" / "external"):
        if cand and Path(cand, "lava-dl").is_dir():
            return Path(cand, "lava-dl")
    return None


def _files() -> list[str]:
    base = _lava_dl()
    if base is None:
        return []
    out = []
    for p in sorted(base.rglob("*.net")):
        with open(p, "rb") as f:
            if f.read(len(LFS_MARK)) != LFS_MARK:
                out.append(str(p.relative_to(base)))
    return out


def test_the_external_files_are_there():
    if _lava_dl() is None:
        pytest.skip("../shared/external (lava-dl's files) is absent")
    assert len(_files()) >= 11


@pytest.mark.parametrize("rel", _files())
def test_lava_runs_the_file_as_snnc_emulates_it(rel, snnc_side, tmp_path):
    lava_or_skip()
    from tests.lava.lava_runner import run_netx

    path = _lava_dl() / rel
    reset = RESET.get(rel, 0)
    T = 20 if reset else 10
    given = [str(_lava_dl() / GIVEN[rel])] if rel in GIVEN else []
    if given:
        T = 100
    print(snnc_side("file", path, tmp_path, T, reset, *given))
    info = json.loads((tmp_path / "info.json").read_text())
    inputs = np.load(tmp_path / "inputs.npy")
    expected = np.load(tmp_path / "expected.npz")
    expected = [expected[f"arr_{i}"] for i in range(len(expected.files))]
    got = run_netx(str(path), inputs[:, 0], input_message_bits=info["input_message_bits"],
                   input_neuron=info["input_neuron"], reset_interval=reset or None)
    assert len(got) == len(expected), (len(got), info["layers"])
    active = 0
    for name, g, e in zip(info["layers"], got, expected):
        e = e[:, 0]
        assert g.shape == e.shape, (rel, name, g.shape, e.shape)
        mism = int((g != e).sum())
        assert mism == 0, f"{rel}: layer {name}: {mism} of {g.size} outputs differ"
        active += int(np.abs(e).sum() > 0)
    assert active >= len(expected) - 1, f"{rel}: only {active} of {len(expected)} layers were active"
