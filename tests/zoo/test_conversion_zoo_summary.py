"""benchmarks/conversion_zoo.py's summary lines check issue 19's Done-when per architecture: the best snnc
cosine at the largest T against 0.995, its growth at every step of T, and snnc against SpikingJelly's best
mode at T <= 16 (or why there is no SpikingJelly row)."""

from __future__ import annotations

from tests.scripts import load_script


def _zoo():
    return load_script("benchmarks/conversion_zoo.py")


def test_summary_names_each_failed_check():
    zoo = _zoo()
    ts = (4, 8, 16, 256)
    results = {
        "good": {"snnc max": [(0.5, 1), (0.6, 1), (0.7, 1), (0.999, 1)],
                 "snnc 99.9%": [(0.4, 1), (0.65, 1), (0.6, 1), (0.99, 1)],
                 "SJ Max": [(0.1, 1), (0.62, 1), (0.5, 1), (0.9, 1)]},
        "bad": {"snnc max": [(0.5, 1), (0.4, 1), (0.7, 1), (0.98, 1)],
                "SJ Max": [(0.6, 1), (0.3, 1), (0.8, 1), (0.9, 1)]},
        "nosj": {"snnc max": [(0.5, 1), (0.6, 1), (0.7, 1), (0.8, 1)],
                 "SJ Max": "SpikingJelly failed: ValueError: no ReLU6"},
        "refused": {"snnc max": "refused: layer_norm", "SJ Max": [(0.5, 1)] * 4},
    }
    lines = zoo.summary(results, ts)
    assert len(lines) == 3  # an architecture snnc refuses has no line
    good, bad, nosj = lines
    # the best snnc mode at each T: 0.5, 0.65, 0.7, 0.999
    assert good == ("- good: best snnc cosine 0.9990 at T=256 (>= 0.995); grows at every step of T; "
                    "ahead of SpikingJelly's best mode at T = 4, 8, 16 of 4, 8, 16")
    assert "0.9800 at T=256 (< 0.995)" in bad and "does not grow at T 4->8" in bad
    assert bad.endswith("ahead of SpikingJelly's best mode at T = 8 of 4, 8, 16")
    assert "no SpikingJelly row to compare (SpikingJelly failed: ValueError: no ReLU6)" in nosj


def test_snnc_options_reach_convert_and_name_the_row():
    import argparse

    zoo = _zoo()
    ts = (4, 64, 256)
    plain = argparse.Namespace(channelwise=False, bias_correction=False)
    both = argparse.Namespace(channelwise=True, bias_correction=True)
    assert zoo.snnc_options(plain, ts) == {} and zoo.method_name("99.9%", {}) == "snnc 99.9%"
    opts = zoo.snnc_options(both, ts)
    assert opts == {"channelwise": True, "bias_correction": True, "time_steps": 256}  # tuned for the largest T
    assert zoo.method_name("max", opts) == "snnc max channelwise +BC(T=256)"
    # the summary still finds the row as snnc's
    line = zoo.summary({"a": {zoo.method_name("max", opts): [(0.5, 1), (0.9, 1), (0.999, 1)]}}, ts)[0]
    assert "best snnc cosine 0.9990 at T=256" in line


def test_markdown_refuses_to_drop_the_rows_of_architectures_the_run_skips(tmp_path, capsys):
    """--markdown replaces the run's whole section: a run over fewer architectures than the section holds is
    refused before it starts, naming the rows it would drop (nothing a user wrote down is lost)."""
    import pytest

    zoo = _zoo()
    md = tmp_path / "RESULTS.md"
    other = "## Another section\n\nkept\n"
    md.write_text(f"# Benchmark results\n\n{zoo.HEADING}\n\n| architecture | method | T=4 |\n|---|---|---:|\n"
                  "| resnet18 | snnc max | 0.9 (90%) |\n| vgg11_bn | snnc max | 0.8 (80%) |\n\n" + other)
    before = md.read_text()
    with pytest.raises(SystemExit):
        zoo.main(["--arch", "resnet18", "--markdown", str(md), "--quick", "--no-spikingjelly"])
    assert "vgg11_bn" in capsys.readouterr().err and md.read_text() == before
    assert zoo.architectures_in_section(md, zoo.HEADING) == ["resnet18", "vgg11_bn"]
    assert zoo.architectures_in_section(md, zoo.HEADING_TRAINED) == []  # another section: nothing to drop


def test_the_cosine_does_not_depend_on_the_scale_of_the_logits():
    """A network whose signal vanished with depth has logits ~1e-10; they still have a direction."""
    import torch

    zoo = _zoo()
    logits = torch.tensor([[3.0, -1.0, 2.0], [0.5, 0.5, -2.0]], dtype=torch.float64)
    for scale in (1.0, 1e-10, 1e-30):
        seq = (logits * scale).expand(4, 2, 3)  # T=4 steps of the exact rate
        (cos, agree), = zoo.scores(seq, (logits * scale).float(), (4,))
        assert abs(cos - 1) < 1e-6 and agree == 1.0, scale
    flipped = torch.stack([logits[0], -logits[1]])  # the second image points the other way
    (cos, _), = zoo.scores(flipped.expand(2, 2, 3) * 1e-10, (logits * 1e-10).float(), (2,))
    assert abs(cos) < 1e-6  # mean of +1 and -1


def test_uncalibrated_batchnorm_has_a_section_of_its_own():
    import argparse

    zoo = _zoo()
    heads = {w: zoo.heading(argparse.Namespace(weights=w, signed=False))
             for w in ("random", "trained", "random-uncalibrated")}
    assert len(set(heads.values())) == 3 and "--weights random-uncalibrated" in heads["random-uncalibrated"]
