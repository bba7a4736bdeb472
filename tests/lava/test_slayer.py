"""lava-dl slayer blocks (needs scripts/lava_env.sh --full): their hdf5 read by snnc, and snnc's blocks' export."""

from __future__ import annotations

import numpy as np
import pytest

from tests.lava.conftest import slayer_or_skip

pytestmark = pytest.mark.lava

NEURON = {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03}


def _export(blocks, path):
    import h5py

    with h5py.File(path, "w") as f:
        group = f.create_group("layer")
        for i, b in enumerate(blocks):
            b.export_hdf5(group.create_group(str(i)))


def test_slayer_exported_file_is_read_by_snnc_and_emulated_like_lava(snnc_side, tmp_path):
    """A cuba conv/conv/flatten/dense/dense net with current decay: snnc's emulation of slayer's file == Lava."""
    slayer = slayer_or_skip()
    import torch

    from tests.lava.lava_runner import run_netx

    torch.manual_seed(0)
    blocks = [
        slayer.block.cuba.Input(None, delay_shift=False),
        slayer.block.cuba.Conv(NEURON, 2, 4, (3, 2), stride=(2, 1), weight_scale=2),  # non-square, to catch axis swaps
        slayer.block.cuba.Conv(NEURON, 4, 6, 3, padding=1, weight_scale=2),
        slayer.block.cuba.Flatten(),
        slayer.block.cuba.Dense(NEURON, 6 * 2 * 8, 12, weight_scale=2),
        slayer.block.cuba.Dense(NEURON, 12, 5, weight_scale=2),
    ]
    T = 32
    x = (torch.rand(1, 2, 6, 9, T) < 0.3).float()
    with torch.no_grad():
        for b in blocks:  # slayer learns the neuron shapes on a forward pass
            x_b = b(x if b is blocks[0] else x_b)
    path = tmp_path / "slayer.net"
    _export(blocks, path)

    inputs = (np.random.default_rng(0).random((T, 1, 2, 6, 9)) < 0.3).astype(np.int64)
    np.save(tmp_path / "inputs.npy", inputs)
    snnc_side("emulate", path, tmp_path / "inputs.npy", tmp_path / "emulated.npz")
    emulated = np.load(tmp_path / "emulated.npz")
    got = run_netx(str(path), inputs[:, 0])
    assert len(got) == len(emulated.files) == 4
    for i, g in enumerate(got):
        e = emulated[f"arr_{i}"][:, 0]
        assert g.shape == e.shape
        assert int((g != e).sum()) == 0, f"layer {i}: {int((g != e).sum())} spikes differ"
    assert got[-1].sum() > 0


def test_to_blocks_export_matches_snnc_writer(tmp_path):
    """snnc.backends.lava.to_blocks(graph): slayer's export_hdf5 of those blocks == snnc's net.net, layer by layer."""
    slayer_or_skip()
    import h5py

    import snnc
    from snnc.backends.lava import to_blocks
    from tests.backends.lava.nets import conv_pool_dense

    graph = conv_pool_dense(bias=False)
    blocks = to_blocks(graph)
    assert [type(b).__name__ for b in blocks] == ["Conv", "Conv", "Flatten", "Dense"]
    _export(blocks, tmp_path / "blocks.net")
    art = snnc.compile(graph, target="lava", output=tmp_path / "snnc")
    keys = ("shape", "weight", "stride", "padding", "dilation", "groups", "neuron/iDecay", "neuron/vDecay",
            "neuron/vThMant")
    with h5py.File(tmp_path / "blocks.net") as theirs, h5py.File(art.path / "net.net") as ours:
        ours_layers = [ours["layer"][str(i)] for i in range(len(ours["layer"]))][1:]  # ours starts with 'input'
        assert len(ours_layers) == len(theirs["layer"])
        for i, mine in enumerate(ours_layers):
            other = theirs["layer"][str(i)]
            assert mine["type"][0] == other["type"][0]
            for k in keys:
                if k in mine or k in other:
                    a, b = np.asarray(mine[k][()]), np.asarray(other[k][()])
                    if k == "weight":
                        b = b.reshape(a.shape)
                    if k == "shape" and mine["type"][0] == b"flatten":  # netx never reads it
                        a, b = a.prod(), b.prod()
                    np.testing.assert_array_equal(a, b, err_msg=f"layer {i} {k}")
