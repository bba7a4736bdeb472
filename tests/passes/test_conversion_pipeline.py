"""Conversion as passes: PIPELINES["convert"] in the PassManager, with the calibration data in its context."""

import pytest
import torch

import snnc
from snnc.core.errors import InputError, PassError
from snnc.frontends import trace
from snnc.ir import ops
from snnc.passes import (PASSES, PIPELINES, ConversionContext, MaxNorm, Percentile, PassManager, conversion_context,
                         conversion_pipeline, convert_graph, parse_pipeline)


def _same(a, b) -> None:
    assert str(a) == str(b) and a.meta == b.meta
    assert list(a.params) == list(b.params)
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)


def test_conversion_passes_are_registered_and_the_pipeline_is_named():
    names = PIPELINES["convert"].split(",")
    # issue 19: reorder-maxpool moves max pooling before its ReLU, so it runs before calibrate measures them
    assert names[:4] == ["fuse-bn", "reorder-maxpool", "calibrate", "normalize"] and "relu-to-if" in names
    assert names.index("running-maxpool") < names.index("relu-to-if")
    assert {"calibrate", "normalize", "relu-to-if", "bias-correction", "to-time-layout"} <= set(PASSES)
    assert conversion_pipeline() == conversion_pipeline("cpu") == PIPELINES["convert"]
    import snnc.backends.lava  # noqa: F401 - registers the lava target's conversion passes

    assert conversion_pipeline("lava") == PIPELINES["convert"] + "," + PIPELINES["convert-lava"]
    assert {"reset-to-zero", "calibrate-thresholds", "calibrate-readout"} <= set(PASSES)


def test_the_mode_is_parsed_once_into_a_type():
    x = torch.rand(16, 1, 8, 8)
    assert conversion_context(x, "max").mode == MaxNorm()
    assert conversion_context(x).mode == Percentile(p=99.9)
    typed = conversion_context(x, Percentile(p=99.0))
    assert typed.mode == Percentile(p=99.0) and isinstance(typed, ConversionContext)
    with pytest.raises(InputError, match="'120%' is invalid"):
        conversion_context(x, "120%")
    with pytest.raises(InputError, match="mode mse tunes"):
        conversion_context(x, "mse")


def test_the_pass_manager_runs_what_snnc_convert_runs(small_cnn):
    x = torch.rand(32, 1, 8, 8)
    ann = trace(small_cnn, (1, 8, 8))
    for mode, options in (("99.9%", {}), ("mse", {"time_steps": 4, "channelwise": True}),
                          ("max", {"bias_correction": True, "time_steps": 4, "v_init": 0.25})):
        printed = []
        pm = PassManager(parse_pipeline(PIPELINES["convert"]), context=conversion_context(x, mode, **options),
                         verify_each=True, print_after={"normalize", "relu-to-if"}, printer=printed.append)
        out = pm.run(ann)
        _same(out, snnc.convert(small_cnn, x, mode, **options))
        assert [n for n, _ in pm.timings] == PIPELINES["convert"].split(",")
        normalized, converted = printed
        assert normalized.startswith("// after normalize") and "= relu(" in normalized and " = if(" not in normalized
        assert "= scale(" in normalized and " = if(" in converted and "= relu(" not in converted


def test_dump_dir_shows_every_conversion_step(tmp_path, small_cnn):
    convert_graph(trace(small_cnn, (1, 8, 8)), conversion_context(torch.rand(8, 1, 8, 8)), dump_dir=tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names[0] == "00-input.txt"
    assert [n.split("-", 1)[1][:-4] for n in names[1:]] == PIPELINES["convert"].split(",")


def test_conversion_passes_say_what_they_miss(small_cnn):
    ann = trace(small_cnn, (1, 8, 8))
    with pytest.raises(PassError, match="pass 'calibrate' converts an ANN with calibration data") as e:
        PassManager(parse_pipeline("fuse-bn,calibrate")).run(ann)
    assert "--calib" in e.value.hint
    with pytest.raises(PassError, match="run 'calibrate' before it"):
        PassManager(parse_pipeline("normalize"), context=conversion_context(torch.rand(4, 1, 8, 8))).run(ann)
    with pytest.raises(PassError, match="not normalized"):
        PassManager(parse_pipeline("relu-to-if"), context=conversion_context(torch.rand(4, 1, 8, 8))).run(ann)


def test_bias_correction_is_a_pass_that_only_runs_when_asked(small_cnn):
    x = torch.rand(16, 1, 8, 8)
    plain = snnc.convert(small_cnn, x, "max", time_steps=4)
    corrected = snnc.convert(small_cnn, x, "max", time_steps=4, bias_correction=True)
    assert "bias_correction" not in plain.meta["conversion"] and corrected.meta["conversion"]["bias_correction"]
    conv = [op for op in corrected if isinstance(op, ops.Conv2d)][0]
    assert not torch.equal(corrected.params[conv.bias], plain.params[plain[conv.name].bias])
