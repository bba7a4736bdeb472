"""The lava target in one package: its typed Loihi data (saved in .snnir), its own pass, and the emulator's inputs."""

import json
import re
import subprocess
import sys
import warnings

import pytest

import snnc
from snnc.backends.lava import emulate
from snnc.backends.lava.quantize import QuantizeLoihi
from snnc.core.errors import InputError, MalformedFileError
from snnc.ir import save
from snnc.ir.ops import LoihiInfo, LoihiLayerReport
from snnc.ir.serialize import graph_to_json, load
from snnc.runtime.loihi import LoihiSession
from tests.backends.lava.nets import conv_pool_dense, input_neuron_net, spikes


def test_loihi_info_is_typed_and_survives_snnir(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = QuantizeLoihi()(input_neuron_net())
    info = LoihiInfo.of(q)
    assert isinstance(info, LoihiInfo) and info.quantized and info.input == "neuron"
    assert all(isinstance(r, LoihiLayerReport) for r in info.layers)
    assert info.layers[0].synapse is None and info.layers[0].weight_range_used is None  # the input neuron
    save(q, tmp_path / "q.snnir")
    back = load(tmp_path / "q.snnir")
    assert LoihiInfo.of(back) == info and back.meta == q.meta
    assert torch_equal(LoihiSession(back).run(spikes(5, 2, 1, 6, 6)), LoihiSession(q).run(spikes(5, 2, 1, 6, 6)))


def test_old_snnir_with_a_plain_loihi_mapping_reads_as_the_model(tmp_path):
    """Files written before the typed model held the same fields as a JSON object: they load unchanged."""
    q = QuantizeLoihi()(conv_pool_dense())
    old = q.copy()
    old.meta = {**q.meta, "loihi": json.loads(graph_to_json(q))["meta"]["loihi"]}  # a plain dict, as before
    assert isinstance(old.meta["loihi"], dict)
    save(old, tmp_path / "old.snnir")
    back = load(tmp_path / "old.snnir")
    assert isinstance(back.meta["loihi"], LoihiInfo) and LoihiInfo.of(back) == LoihiInfo.of(q)


def test_a_damaged_loihi_record_is_a_malformed_file(tmp_path):
    g = conv_pool_dense()
    g.meta = {"loihi": {"input": "rates"}}
    save(g, tmp_path / "bad.snnir")
    with pytest.raises(MalformedFileError, match=r"graph meta loihi\.input: Input should be"):
        load(tmp_path / "bad.snnir")


def test_emulator_refuses_a_float_graph_and_emulate_quantizes_it():
    g = conv_pool_dense()
    with pytest.raises(InputError, match="not on Loihi's integer grid") as e:
        LoihiSession(g)
    assert "snnc.backends.lava.emulate" in e.value.hint
    s = emulate(g)
    assert LoihiInfo.of(s.graph).quantized and s.latency == 3
    x = spikes(8, 2, 2, 8, 8, seed=4)
    assert torch_equal(s.run(x), LoihiSession(QuantizeLoihi()(g)).run(x))


def test_emulator_options_are_refused_by_name_and_go_to_emulate(tmp_path):
    """LoihiSession once took quantization options; they are emulate()'s now, and naming one is an error."""
    art = snnc.compile(conv_pool_dense(), target="lava", output=tmp_path / "art")
    for source in (conv_pool_dense(), art, art.path):
        with pytest.raises(InputError, match="takes no options, got input_bits") as e:
            LoihiSession(source, input_bits=5)
        assert "emulate(graph, **options)" in e.value.hint
    with pytest.raises(InputError, match="takes no options, got device"):
        snnc.load(art.path, device="cpu")
    with pytest.warns(UserWarning, match="resets by subtraction"):
        q = emulate(input_neuron_net(), input_bits=5, soft_reset="convert")
    assert LoihiInfo.of(q.graph).input_bits == 5 and q.network.input_scale == 31.0


def test_quantize_loihi_is_the_lava_targets_pass_and_the_cli_names_it(tmp_path):
    """The pass lives in snnc.backends.lava; `snnc passes` lists it and `--passes` resolves it for any target."""
    from snnc.passes import PASSES

    assert PASSES["quantize-loihi"].factory is QuantizeLoihi
    assert QuantizeLoihi.__module__ == "snnc.backends.lava.quantize"
    cli = [sys.executable, "-m", "snnc.cli"]
    listed = subprocess.run([*cli, "passes"], capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0 and re.search(r"^quantize-loihi\s", listed.stdout, re.M), listed.stderr
    save(conv_pool_dense(), tmp_path / "snn.snnir")
    r = subprocess.run([*cli, "compile", tmp_path / "snn.snnir", "--target", "cpu", "--passes", "quantize-loihi",
                        "--print-after", "quantize-loihi", "-o", tmp_path / "out"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "cuba_lif" in r.stdout  # the IR after the pass: Loihi's neurons


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))
