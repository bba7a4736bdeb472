"""lava-dl's own NetX files (../shared/external/lava-dl) end to end: ground truths and the snnc command line.

Ground truths, as lava-dl's tests record them (tests/lava/lib/dl/netx/test_hdf5.py and
test_hdf5_nx.py at lava-dl d825ac5):
- gts/pilotnet_sdnn: input.npy fed to the input (Delta) neuron every step, output.npy = the Sigma
  readout over len(net.layers) = 9 steps.
- gts/tinynet: input_bias.npy as the input neuron's bias, reset_interval=16; output[..., 2:17] == gt[..., 1:].
- gts/pilotnet_lif: image.npy as the input neuron's bias, reset_interval=16; every layer's spikes
  (input.npy, conv-*.npy, fc-*.npy). lava-dl itself checks only the first 15 steps, and the recording
  repeats the first step after the first reset (steps 16 and 17 equal step 0): compared over a prefix.
- tutorials netx/oxford: gts/in.npy spikes into the first synapse, gts/out.npy = layer 0's spikes.
The input neurons of tinynet and pilotnet_lif have iDecay = 4096 (no current memory), so an input
x fed to a_in gives exactly the potential a bias of x gives.

Skipped, with the reason, when ../shared/external is absent.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from snnc.core.errors import MalformedFileError
from snnc.ir.formats.netx import read_netx, read_network
from snnc.runtime.loihi import LoihiSession

ROOT = Path(__file__).resolve().parents[3]
_CANDIDATES = [ROOT.parent / "shared" / "external", ROOT.parent.parent / "shared" / "external"]
EXTERNAL = next((p for p in _CANDIDATES if (p / "lava-dl").is_dir()), None)
pytestmark = pytest.mark.skipif(EXTERNAL is None, reason="../shared/external (lava-dl's files) is absent")
LAVA = EXTERNAL / "lava-dl" if EXTERNAL else Path("/nonexistent")
GTS = LAVA / "tests/lava/lib/dl/netx/gts"
LFS_MARK = b"version https://git-lfs.github.com/spec/"


def _chw(a: np.ndarray) -> torch.Tensor:
    """lava's (X, Y, C) = (W, H, C) array as torch's [1, C, H, W]."""
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 1, 0)).astype(np.float32))[None]


def _xyz(t: torch.Tensor) -> np.ndarray:
    """[T, 1, *feats] (C, H, W or n) as lava's (X, Y, C, T) or (n, T)."""
    a = np.moveaxis(t[:, 0].numpy(), 0, -1)
    return a.transpose(2, 1, 0, 3) if a.ndim == 4 else a


def test_pilotnet_sdnn_equals_the_ground_truth():
    x = np.load(GTS / "pilotnet_sdnn/input.npy")[..., 0]
    out = LoihiSession(GTS / "pilotnet_sdnn/network.net").run(_chw(x), T=9)
    gt = np.load(GTS / "pilotnet_sdnn/output.npy")
    np.testing.assert_array_equal(_xyz(out), gt)
    assert np.abs(gt).sum() > 0


def test_pilotnet_sdnn_threshold_changes_the_output():
    net = read_network(GTS / "pilotnet_sdnn/network.net")
    lay = net.layers[6]
    lay.neuron = type(lay.neuron)(**{**lay.neuron.__dict__, "v_th_mant": lay.neuron.v_th_mant * 4})
    x = np.load(GTS / "pilotnet_sdnn/input.npy")[..., 0]
    out = LoihiSession(net).run(_chw(x), T=9)
    assert not np.array_equal(_xyz(out), np.load(GTS / "pilotnet_sdnn/output.npy"))


def test_pilotnet_sdnn_float_form_decodes_the_first_layer_exactly():
    """The CPU runtime's float sigma-delta and the fixed point share layer 1's decoded sum exactly (the
    input delta sends x << 6, no bits dropped); later layers differ by Lava's truncated messages."""
    from snnc.runtime.interpreter import Interpreter

    x = _chw(np.load(GTS / "pilotnet_sdnn/input.npy")[..., 0])
    graph = read_netx(GTS / "pilotnet_sdnn/network.net")
    flt = Interpreter(graph, dtype=torch.float64).execute({"x": x}, 2, probes=["layer1"]).probes["layer1"].sum(0)
    fixed = LoihiSession(GTS / "pilotnet_sdnn/network.net").run(x, T=4, probes=["1:v"])["1:v"][-1]
    assert torch.equal(fixed, flt) and flt.abs().sum() > 0


def test_tinynet_equals_the_ground_truth_with_reset_interval():
    x = _chw(np.load(GTS / "tinynet/input_bias.npy"))
    gt = np.load(GTS / "tinynet/output.npy")[0][..., 1:]  # (C, H, W, T)
    outs = {}
    for reset in (16, None):
        out = LoihiSession(LAVA / "tests/lava/lib/dl/netx/tiny.net", reset_interval=reset).run(x, T=17)
        outs[reset] = np.moveaxis(out[:, 0].numpy(), 0, -1)[..., 2:17]
    np.testing.assert_array_equal(outs[16], gt)
    assert gt.sum() > 0 and not np.array_equal(outs[None], gt)  # without the reset it does not match


def test_pilotnet_lif_equals_the_ground_truth_in_every_layer():
    steps = 12
    net = LoihiSession(GTS / "pilotnet_lif/network.net", reset_interval=16)
    out = net.run(_chw(np.load(GTS / "pilotnet_lif/image.npy")), T=steps, all_layers=True, probes=["10:v"])
    names = ["input"] + [f"conv-{i}" for i in range(5)] + [f"fc-{i}" for i in range(3)]
    layers = [lay.name for lay in net.network.layers if lay.neuron is not None][:len(names)]
    for layer, gt_name in zip(layers, names):
        gt = np.load(GTS / f"pilotnet_lif/{gt_name}.npy").astype(np.float32)[..., :steps]
        np.testing.assert_array_equal(_xyz(out[layer]), gt, err_msg=f"layer {layer} ({gt_name})")
    # the voltage readout (layer 10: never fires) holds a potential, its spikes are all zero
    assert out["10"].abs().sum() == 0 and out["10:v"][-1].abs().sum() > 0


def test_oxford_equals_the_tutorial_ground_truth():
    ox = LAVA / "tutorials/lava/lib/dl/netx/oxford"
    x = torch.from_numpy(np.load(ox / "gts/in.npy").T.astype(np.float32))[:, None]
    out = LoihiSession(ox / "Trained/network.net").run(x, all_layers=True)
    np.testing.assert_array_equal(out["0"][:, 0].numpy(), np.load(ox / "gts/out.npy").T)


# -- every .net file through the command line ---------------------------------------------------
def _net_files() -> list[Path]:
    if EXTERNAL is None:
        return []
    return sorted(p for p in EXTERNAL.rglob("*.net") if p.is_file())


def _is_lfs(p: Path) -> bool:
    with open(p, "rb") as f:
        return f.read(len(LFS_MARK)) == LFS_MARK


@pytest.mark.parametrize("path", _net_files(), ids=lambda p: str(p.relative_to(EXTERNAL)))
def test_every_net_file_goes_through_inspect_compile_run(path, tmp_path):
    from snnc.cli import app

    runner = CliRunner()
    if _is_lfs(path):  # snnc's error (main() prints it as one `error:` line)
        r = runner.invoke(app, ["inspect", str(path)])
        assert isinstance(r.exception, MalformedFileError) and "Git LFS pointer" in r.exception.message
        assert "\n" not in r.exception.message
        return
    r = runner.invoke(app, ["inspect", str(path)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["compile", str(path), "--target", "lava", "-o", str(tmp_path / "art")])
    assert r.exit_code == 0, r.output
    net = read_network(path)
    x = np.random.default_rng(0).integers(0, 2, (1, *net.input_shape)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = runner.invoke(app, ["run", str(tmp_path / "art"), "-i", str(tmp_path / "x.npy"), "-T", "2",
                            "-o", str(tmp_path / "out.npz")])
    assert r.exit_code == 0, r.output
    out = np.load(tmp_path / "out.npz")["out"]
    assert out.shape[:2] == (2, 1)


def test_a_netx_file_on_the_cpu_target_warns_once_that_it_runs_float(tmp_path):
    import snnc

    with pytest.warns(UserWarning, match="runs its neurons in float, not Loihi's fixed point") as rec:
        snnc.compile(read_netx(GTS / "pilotnet_sdnn/network.net"), target="cpu", output=tmp_path / "c")
    assert len([w for w in rec if "fixed point" in str(w.message)]) == 1


def test_lfs_pointer_is_refused_by_the_reader():
    lfs = [p for p in _net_files() if _is_lfs(p)]
    assert lfs
    with pytest.raises(MalformedFileError, match="Git LFS pointer"):
        read_network(lfs[0])


def test_an_integrator_readout_saves_its_potential_from_the_command_line(tmp_path):
    """bootstrap/mnist's last dense has no neuron: netx gives it an integrator that never fires (vThMant
    2^17). Its spikes are zero by construction; snnc run saves its potential too, and says so."""
    from snnc.cli import app

    path = LAVA / "tutorials/lava/lib/dl/bootstrap/mnist/Trained/network.net"
    runner = CliRunner()
    assert runner.invoke(app, ["compile", str(path), "--target", "lava", "-o", str(tmp_path / "a")]).exit_code == 0
    np.save(tmp_path / "x.npy", np.full((1, 784), 100, np.float32))  # integers into the input neuron
    r = runner.invoke(app, ["run", str(tmp_path / "a"), "-i", str(tmp_path / "x.npy"), "-T", "8",
                            "-o", str(tmp_path / "o.npz")])
    assert r.exit_code == 0 and "never fires" in r.output, r.output
    out = np.load(tmp_path / "o.npz")
    assert out["out"].sum() == 0 and np.abs(out["3:v"]).sum() > 0
    direct = LoihiSession(path).run(torch.full((8, 1, 784), 100.0), probes=["3:v"])["3:v"]
    np.testing.assert_array_equal(out["3:v"], direct.numpy())
