import os
from pathlib import Path

import pytest
import torch
import torch.nn as nn

# Without CUDA the Triton kernels run in Triton's CPU interpreter; the variable must be
# set before any kernel module is imported, whichever test imports one first.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

GOLDEN = Path(__file__).parent / "golden"


def pytest_addoption(parser):
    parser.addoption("--update-goldens", action="store_true", help="rewrite tests/golden/*.txt from the current output")


@pytest.fixture
def golden(request):
    """golden('name.txt', text): compare text with the golden file (or rewrite it with --update-goldens)."""

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if request.config.getoption("--update-goldens") or not path.exists() and os.environ.get("SNNC_NEW_GOLDENS"):
            path.write_text(text)
        assert path.exists(), f"golden file {path} is missing; run pytest --update-goldens"
        assert text == path.read_text(), f"output differs from {path}; if intended, run pytest --update-goldens"

    return check


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _cache_dir(tmp_path_factory):
    # never touch the user's cache from tests
    os.environ.setdefault("SNNC_CACHE_DIR", str(tmp_path_factory.mktemp("snnc-cache")))


class SmallCNN(nn.Module):
    """conv-bn-relu-pool -> conv-bn-relu -> adaptive pool -> flatten -> linear."""

    def __init__(self, c: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(1, c, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c)
        self.pool = nn.AvgPool2d(2)
        self.conv2 = nn.Conv2d(c, 2 * c, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(2 * c)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * c, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(torch.flatten(self.gap(x), 1))


def randomize_bn(model: nn.Module) -> nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine parameters."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.data.copy_(torch.randn(c, generator=g) * 0.2)
    return model.eval()


@pytest.fixture
def small_cnn():
    return randomize_bn(SmallCNN())
