"""benchmarks/conversion_zoo.py --weights trained: the recipe's cache key, the cache round trip (a stand-in
trainer: nothing is trained here), the digits preprocessing, and the trained section of RESULTS.md that
leaves the random-weight one in place."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
import torch

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    return load_script(f"benchmarks/{name}.py")


@pytest.fixture(scope="module")
def zoo():
    return _load("conversion_zoo")


@pytest.fixture(scope="module")
def zt(zoo):
    return sys.modules["benchmarks.zoo_trained"]


def test_recipe_key_names_every_setting(zt):
    base = zt.recipe("resnet18")
    assert base.key() == zt.recipe("resnet18").key()
    others = [zt.recipe("resnet34"), zt.recipe("resnet18", steps=base.steps + 1), zt.recipe("resnet18", batch=32),
              zt.recipe("resnet18", lr=3e-4), zt.recipe("resnet18", seed=1), zt.recipe("resnet18", width=0.5),
              zt.recipe("resnet18", blocks=2)]
    keys = {r.key() for r in others}
    assert len(keys) == len(others) and base.key() not in keys
    assert base.path(Path("/c")) == Path(f"/c/resnet18-{base.key()}.pt")
    assert zt.recipe("vgg16_bn").steps == zt.STEPS["vgg16_bn"] and zt.recipe("vgg16_bn").lr == zt.LR["vgg16_bn"]
    assert zt.recipe("vgg16_bn", steps=7, lr=0.5).steps == 7 and zt.recipe("vgg16_bn", lr=0.5).lr == 0.5
    with pytest.raises(KeyError, match="unknown architecture"):
        zt.recipe("resnet9")


def test_cache_round_trip_skips_training(zt, tmp_path):
    calls = []

    def stand_in(r, data):  # the architecture as initialized, with one changed weight: no training
        calls.append(r)
        torch.manual_seed(123)
        m = zt.ARCHITECTURES[r.arch](num_classes=10, width=r.width, blocks=r.blocks)
        with torch.no_grad():
            next(m.parameters()).add_(1.0)
        return m

    g = torch.Generator().manual_seed(0)
    data = zt.Digits(torch.rand(4, 3, 32, 32, generator=g), torch.arange(4), torch.rand(6, 3, 32, 32, generator=g),
                     torch.tensor([0, 1, 2, 3, 4, 5]))
    r = zt.recipe("squeezenet1_1", steps=1, width=0.25, blocks=1)
    first = zt.load_or_train(r, data, root=tmp_path, trainer=stand_in)
    assert not first.cached and len(calls) == 1 and r.path(tmp_path).is_file()
    assert 0.0 <= first.test_accuracy <= 1.0
    second = zt.load_or_train(r, data, root=tmp_path, trainer=stand_in)
    assert second.cached and len(calls) == 1 and second.test_accuracy == first.test_accuracy
    for (k, a), (_, b) in zip(first.model.state_dict().items(), second.model.state_dict().items()):
        assert torch.equal(a, b), k
    assert not second.model.training
    r.path(tmp_path).write_bytes(b"not a state dict")  # a corrupt entry is retrained
    assert not zt.load_or_train(r, data, root=tmp_path, trainer=stand_in).cached and len(calls) == 2


def test_digits_become_normalized_rgb32(zt):
    x = torch.rand(5, 1, 8, 8)
    out = zt.to_rgb32(x, 0.25, 0.5)
    assert out.shape == (5, 3, 32, 32)
    assert torch.equal(out[:, 0], out[:, 2])
    up = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    assert torch.allclose(out[:, 1:2], (up - 0.25) / 0.5)


def test_trained_section_keeps_the_random_one(zoo, tmp_path):
    class T:  # a zoo_trained.Trained stand-in
        def __init__(self, cached):
            self.recipe = zoo.zoo_trained.recipe("resnet18", steps=200, lr=1e-3)
            self.train_seconds, self.test_accuracy, self.cached = 53.2, 0.9644, cached

    lines = zoo.training_lines({"resnet18": T(False), "resnet34": T(True)}, 450)
    assert lines[0] == ("- resnet18: 200 Adam steps (lr 0.001, batch 64, seed 0), 53 s; "
                        "ANN test accuracy 96.4% on the 450 digits test images")
    assert "loaded from the cache now" in lines[1]
    path = tmp_path / "RESULTS.md"
    path.write_text(f"# R\n\n{zoo.HEADING}\n\nrandom table\n\n## other\n\nkept\n")
    args = argparse.Namespace(weights="trained", width=1.0, blocks=None, calib=256, images=64)
    sec = zoo.section(args, ["--weights", "trained"], {}, (4,), 0.0, 0.0, done=True)
    assert sec[0] == zoo.HEADING_TRAINED and "digits test images" in sec[4] and "random weights" not in sec[4]
    zoo.write_markdown(path, [*sec, "first"])
    zoo.write_markdown(path, [*sec, "second"])  # replaces its own section only
    text = path.read_text()
    assert "random table" in text and "kept" in text and "second" in text and "first" not in text
    assert text.count(zoo.HEADING_TRAINED) == 1 and text.index(zoo.HEADING) < text.index(zoo.HEADING_TRAINED)
    args.weights = "random"
    assert zoo.section(args, [], {}, (4,), 0.0, 0.0, done=True)[0] == zoo.HEADING


def test_weights_option_is_checked(zoo, capsys):
    with pytest.raises(SystemExit):
        zoo.main(["--weights", "pretrained"])
    assert "invalid choice: 'pretrained'" in capsys.readouterr().err
