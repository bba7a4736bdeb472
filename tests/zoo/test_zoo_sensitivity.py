"""benchmarks/zoo_sensitivity.py: the input-dependent share of the logits, and a tiny run of each weights kind."""

from __future__ import annotations

import pytest
import torch

from tests.scripts import load_script


def test_input_dependent_share_is_0_for_constant_logits_and_1_for_centred_ones():
    zs = load_script("benchmarks/zoo_sensitivity.py")
    bias = torch.tensor([1.0, -2.0, 0.5])
    assert zs.input_dependent_share(bias.expand(5, 3)) == 0.0
    centred = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    centred -= centred.mean(0)
    assert zs.input_dependent_share(centred) == pytest.approx(1.0)
    assert 0 < zs.input_dependent_share(centred + 10 * bias) < 0.2  # mostly the constant


@pytest.mark.parametrize("weights", ["random", "random-uncalibrated"])
def test_a_tiny_run_prints_a_row_with_the_share(weights, capsys):
    zs = load_script("benchmarks/zoo_sensitivity.py")
    assert zs.main(["--arch", "resnet18", "--width", "0.125", "--blocks", "1", "--images", "4", "--calib", "8",
                    "--T", "4", "--weights", weights]) == 0
    row = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| resnet18 |")]
    assert len(row) == 1 and 0 < float(row[0].rstrip(" |").rsplit("|", 1)[1]) <= 1
