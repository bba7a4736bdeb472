"""Conversion fidelity of the zoo architectures grows with T (issue 19) at the tests' tiny sizes: the SNN's
mean output over T steps approaches the ANN's logits (cosine), so the error is not a plateau. The fidelity
at real sizes and at T up to 256 is benchmarks/conversion_zoo.py's."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import snnc
from snnc.runtime import Session
from tests.zoo.ann import build, images

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning")


def test_shufflenet_v2_cosine_to_the_ann_improves_with_T():
    """Channel split (Slice), concat and channel shuffle are exact layout ops on rates: nothing caps the
    fidelity, which grows from T=8 to T=64 (measured 0.65 -> 0.87 -> 0.96 at T=256)."""
    model = build("shufflenet_v2_x1_0", width=1 / 8, blocks=2, calib_images=16)
    x = images(8, seed=2)
    with torch.no_grad():
        ann = model(x)
    snn = snnc.convert(model, images(16, seed=1), show_progress=False)
    assert any(op.kind == "slice" for op in snn)
    session = Session(snn)
    cos = [float(F.cosine_similarity(session.run(x, t).mean(0).flatten(), ann.flatten(), 0)) for t in (8, 64)]
    assert cos[1] > cos[0] + 0.1, cos
