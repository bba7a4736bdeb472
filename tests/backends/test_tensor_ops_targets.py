"""The tensor and layout ops on every target: Lynxi computes them (<= 4-D, matching the CPU reference) or
refuses them by name; NIR and Lava (NetX) refuse them by name; Triton runs them through the torch kernels."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import snnc
from snnc.backends.lynxi import Runner
from snnc.backends.triton import legalize as triton_legalize
from snnc.core.errors import LoweringError
from snnc.frontends import trace
from snnc.nn.neuron import IFNode
from snnc.passes import PIPELINES, PassManager, parse_pipeline
from snnc.runtime import Session

T, N = 4, 2


class ShuffleAttention(nn.Module):
    """Multi-step: channel shuffle through 5-D (compact-layout makes it 4-D), a spike x spike matmul of
    per-channel rows, a mean over them, and products of spikes."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.sn1, self.sn2, self.sn3 = IFNode(step_mode="m"), IFNode(step_mode="m"), IFNode(step_mode="m")
        with torch.no_grad():
            self.conv.weight.uniform_(-0.2, 0.6)

    def forward(self, x):  # [T, N, 2, 4, 4]
        s = self.sn1(self.conv(x))
        t, n, c, h, w = s.shape
        s = s.view(t, n, 2, c // 2, h, w).transpose(2, 3).flatten(2, 3)  # channel shuffle
        rows = s.flatten(3)  # [T, N, 4, 16]
        att = self.sn2(rows @ rows.transpose(-2, -1) * 0.25)  # [T, N, 4, 4]
        return self.sn3((att @ rows).mean(-1) * (1.0 - att.mean(-1)) + s.mean((3, 4)))


def _graph():
    torch.manual_seed(0)
    return trace(ShuffleAttention().eval(), (2, 4, 4))


def test_lynxi_matches_the_cpu_reference(tmp_path):
    g = _graph()
    kinds = {op.kind for op in g}
    assert {"reshape", "permute", "matmul", "mean", "mul", "add_scalar"} <= kinds
    x = torch.rand(T, N, 2, 4, 4)
    want = Session(g, channels_last=False, event_conv=False).run(x)
    assert 0.05 < float(want.mean()) < 0.95
    lowered = PassManager(parse_pipeline(PIPELINES["lynxi"]), verify_each=True).run(g)
    art = snnc.compile(lowered, "lynxi", tmp_path / "ly", time_steps=T, batch_size=N, input_kind="sequence",
                       passes="")  # lowered above
    for engine in ("onnx", "torch"):
        (got,) = Runner(art, engine).run(x.reshape(T * N, 2, 4, 4)).values()
        assert torch.equal(got.reshape(want.shape), want), engine


def test_python_compile_runs_the_lynxi_pipeline(tmp_path):
    g = _graph()  # snnc.compile runs the target's pipeline, as `snnc compile` does: compact-layout makes it 4-D
    art = snnc.compile(g, "lynxi", tmp_path / "ly", time_steps=T, batch_size=N, input_kind="sequence")
    x = torch.rand(T, N, 2, 4, 4)
    want = Session(g, channels_last=False, event_conv=False).run(x)
    (got,) = Runner(art, "torch").run(x.reshape(T * N, 2, 4, 4)).values()
    assert torch.equal(got.reshape(want.shape), want)


def test_lynxi_refuses_a_5d_value_naming_the_node(tmp_path):
    g = _graph()  # without the lynxi pipeline's compact-layout the shuffle stays 5-D
    with pytest.raises(LoweringError, match=r"%\w+ \(reshape\).*5-D tensor"):
        snnc.compile(g, "lynxi", tmp_path / "ly", time_steps=T, batch_size=N, passes="")


def test_nir_and_lava_refuse_the_ops_by_name(tmp_path):
    g = _graph()
    with pytest.raises(LoweringError, match=r"\(reshape\) .*has no NIR equivalent"):
        snnc.compile(g, "nir", tmp_path / "nir")
    with pytest.raises(LoweringError, match=r"no NetX layer for (reshape|permute|matmul)"):
        snnc.compile(g, "lava", tmp_path / "lava", time_steps=T)


def test_triton_accepts_them_as_torch_ops():
    g = _graph()
    assert triton_legalize(g) is g


class ChunkSwap(nn.Module):
    """Multi-step: ShuffleNetV2's channel split (chunk, one half through a neuron), joined by a concat in
    swapped order."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.sn1, self.sn2, self.sn3 = IFNode(step_mode="m"), IFNode(step_mode="m"), IFNode(step_mode="m")
        with torch.no_grad():
            self.conv.weight.uniform_(-0.2, 0.6)

    def forward(self, x):  # [T, N, 2, 4, 4]
        a, b = self.sn1(self.conv(x)).chunk(2, dim=2)
        return self.sn3(torch.cat([self.sn2(b * 0.75 + a * 0.5), a], 2).mean((3, 4)) * 1.5)


def _chunk_graph():
    torch.manual_seed(0)
    return trace(ChunkSwap().eval(), (2, 4, 4))


def test_slice_on_lynxi_matches_the_cpu_reference_and_nir_lava_refuse_it(tmp_path):
    g = _chunk_graph()
    assert sum(op.kind == "slice" for op in g) == 2
    x = torch.rand(T, N, 2, 4, 4)
    want = Session(g, channels_last=False, event_conv=False).run(x)
    assert 0.05 < float(want.mean()) < 0.95
    lowered = PassManager(parse_pipeline(PIPELINES["lynxi"]), verify_each=True).run(g)
    art = snnc.compile(lowered, "lynxi", tmp_path / "ly", time_steps=T, batch_size=N, input_kind="sequence",
                       passes="")  # lowered above
    for engine in ("onnx", "torch"):
        (got,) = Runner(art, engine).run(x.reshape(T * N, 2, 4, 4)).values()
        assert torch.equal(got.reshape(want.shape), want), engine
    assert triton_legalize(g) is g
    with pytest.raises(LoweringError, match=r"(?s)\(slice\) .*has no NIR equivalent.*no slice"):
        snnc.compile(g, "nir", tmp_path / "nir")
    with pytest.raises(LoweringError, match=r"no NetX layer for slice"):
        snnc.compile(g, "lava", tmp_path / "lava", time_steps=T)
