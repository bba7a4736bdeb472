"""chunk/split (Slice) and sum over feature dims inside multi-step SNNs: the spikformer QKV split and the
spike-driven transformer's token sum, against a hand-written forward-Euler reference, through torch.fx and
through the torch.export capture (a shape check in forward), on every target (Lynxi computes them, NIR and
Lava refuse them by name) and through .snnir."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import snnc
from snnc.backends.lynxi import Runner
from snnc.core.errors import LoweringError
from snnc.frontends import trace
from snnc.ir import load, save
from snnc.nn.neuron import IFNode
from snnc.passes import PIPELINES, PassManager, parse_pipeline
from snnc.runtime import Session
from tests.frontends.models import RefIF

T, N, C, L = 4, 2, 6, 5


class QKVSplit(nn.Module):
    """[T, N, C, L] -> one linear map to 3C channels, split into Q, K, V; SDT's K*V summed over tokens; a short
    last chunk (7 channels in 3 parts: 3, 3, 1) and torch.split with sizes."""

    def __init__(self, neuron, check_shape: bool = False):
        super().__init__()
        self.qkv = nn.Linear(C, 3 * C)
        self.qkv_sn, self.kv_sn, self.out_sn = neuron(), neuron(), neuron()
        self.check_shape = check_shape
        with torch.no_grad():
            self.qkv.weight.uniform_(-0.3, 0.7)

    def forward(self, x):
        if self.check_shape and x.dim() != 4:  # torch.fx cannot trace this: snnc.trace captures with torch.export
            raise ValueError("expected [T, N, C, L]")
        c = x.shape[2]
        s = self.qkv_sn(self.qkv(x.transpose(-1, -2)).transpose(-1, -2))  # [T, N, 3C, L]
        q, k, v = s.chunk(3, dim=2)
        kv = self.kv_sn((k * v).sum(dim=-1, keepdim=True) * 0.5)  # [T, N, C, 1]
        a, b, rest = q[:, :, :7 - 1].chunk(3, dim=2)  # 5 channels: parts of 2, 2, 1
        head, tail = torch.split(v, [2, c - 2], dim=2)
        y = (q * kv).sum(-1) * (0.5 + torch.cat([a.sum(-1), b.sum(-1), rest.sum(-1)], dim=2).mean(-1, keepdim=True))
        return self.out_sn(y * 0.4 + torch.cat([tail, head], dim=2).sum(-1) * 0.2)


def _model(neuron, check_shape=False):
    torch.manual_seed(0)
    return QKVSplit(neuron, check_shape).eval()


def _ref(x):
    ref = _model(RefIF)
    with torch.no_grad():
        return ref(x)


@pytest.mark.parametrize("check_shape", [False, True], ids=["fx", "export-capture"])
def test_chunk_split_and_sum_match_a_hand_written_reference(check_shape, tmp_path):
    x = torch.rand(T, N, C, L) * 1.5
    want = _ref(x)
    assert 0.05 < float(want.mean()) < 0.95, "the reference barely (or always) fires; the test would be weak"
    g = trace(_model(lambda: IFNode(step_mode="m"), check_shape), (C, L))
    kinds = [op.kind for op in g]
    assert kinds.count("slice") >= 8 and kinds.count("sum") >= 4
    got = Session(g, channels_last=False, event_conv=False).run(x)
    assert torch.equal(got, want), f"{int((got != want).sum())} of {want.numel()} spikes differ"
    save(g, tmp_path / "g.snnir")
    back = load(tmp_path / "g.snnir")
    assert list(back) == list(g) and torch.equal(Session(back).run(x), want)


def test_a_split_of_the_time_dim_is_refused_naming_the_module():
    class SplitT(nn.Module):
        def __init__(self):
            super().__init__()
            self.sn = IFNode(step_mode="m")

        def forward(self, x):
            a, b = self.sn(x).chunk(2, dim=0)
            return a + b

    with pytest.raises(Exception, match=r"touches the time dim") as e:
        trace(SplitT(), (4,))
    assert "SplitT" in str(e.value)


def test_a_slice_changes_the_output():
    """Each part is its own slice: swapping two parts gives another output (the lowering cannot ignore them)."""
    g = trace(_model(lambda: IFNode(step_mode="m")), (C, L))
    narrows = [op for op in g if op.kind == "slice" and op.end - op.start == C]
    assert [op.start for op in narrows[:3]] == [0, C, 2 * C]
    x = torch.rand(T, N, C, L) * 1.5
    swapped = g.copy()
    a, b = narrows[1], narrows[2]  # K and V
    swapped.replace_op(a.model_copy(update={"start": b.start, "end": b.end}))
    swapped.replace_op(b.model_copy(update={"start": a.start, "end": a.end}))
    assert not torch.equal(Session(swapped).run(x), Session(g).run(x))


def test_lynxi_computes_them_and_nir_and_lava_refuse_by_name(tmp_path):
    g = trace(_model(lambda: IFNode(step_mode="m")), (C, L))
    x = torch.rand(T, N, C, L) * 1.5
    want = Session(g, channels_last=False, event_conv=False).run(x)
    lowered = PassManager(parse_pipeline(PIPELINES["lynxi"]), verify_each=True).run(g)
    art = snnc.compile(lowered, "lynxi", tmp_path / "ly", time_steps=T, batch_size=N, input_kind="sequence")
    for engine in ("onnx", "torch"):
        (got,) = Runner(art, engine).run(x.reshape(T * N, C, L)).values()
        assert torch.equal(got.reshape(want.shape), want), engine
    with pytest.raises(LoweringError, match=r"\((slice|sum|permute|mul|concat)\) .*has no NIR equivalent"):
        snnc.compile(g, "nir", tmp_path / "nir")
    with pytest.raises(LoweringError, match=r"no NetX layer for (slice|sum|permute|mul|concat)"):
        snnc.compile(g, "lava", tmp_path / "lava", time_steps=T)


def test_triton_accepts_them_as_torch_ops():
    from snnc.backends.triton import legalize as triton_legalize

    g = trace(_model(lambda: IFNode(step_mode="m")), (C, L))
    assert {"slice", "sum"} <= {op.kind for op in g} and triton_legalize(g) is g
