import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from snnc.frontends import trace
from snnc.passes import fuse_bn
from snnc.runtime import Interpreter


def _run(g, x):
    return Interpreter(g).run({g.inputs[0].name: x})[g.outputs[0].name]


@settings(max_examples=25, deadline=None)
@given(cin=st.integers(1, 4), cout=st.integers(1, 5), k=st.sampled_from([1, 3]), hw=st.integers(3, 7),
       bias=st.booleans(), affine=st.booleans(), eps=st.sampled_from([1e-5, 1e-3, 0.1]), seed=st.integers(0, 2**16))
def test_conv_bn_fusion_is_equivalent(cin, cout, k, hw, bias, affine, eps, seed):
    g = torch.Generator().manual_seed(seed)
    conv, bn = nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias), nn.BatchNorm2d(cout, eps=eps, affine=affine)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
        bn.running_mean.copy_(torch.randn(cout, generator=g) * 2)
        bn.running_var.copy_(torch.rand(cout, generator=g) * 3 + 1e-3)
        if affine:
            bn.weight.copy_(torch.randn(cout, generator=g))
            bn.bias.copy_(torch.randn(cout, generator=g))
    model = nn.Sequential(conv, bn).eval()
    graph = trace(model, (cin, hw, hw))
    fused = fuse_bn(graph)
    assert [op.kind for op in fused] == ["input", "conv2d", "output"]
    x = torch.randn(3, cin, hw, hw, generator=g)
    torch.testing.assert_close(_run(fused, x), model(x), rtol=1e-4, atol=1e-4)


@settings(max_examples=15, deadline=None)
@given(fin=st.integers(1, 8), fout=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_linear_bn1d_fusion_is_equivalent(fin, fout, seed):
    g = torch.Generator().manual_seed(seed)
    lin, bn = nn.Linear(fin, fout), nn.BatchNorm1d(fout)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(fout, generator=g))
        bn.running_var.copy_(torch.rand(fout, generator=g) + 0.1)
        bn.weight.copy_(torch.randn(fout, generator=g))
    model = nn.Sequential(lin, bn).eval()
    fused = fuse_bn(trace(model, (fin,)))
    assert "batch_norm" not in [op.kind for op in fused]
    x = torch.randn(4, fin, generator=g)
    torch.testing.assert_close(_run(fused, x), model(x), rtol=1e-4, atol=1e-4)


def test_bn_after_shared_conv_output_is_kept():
    class Fork(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y

    graph = trace(Fork().eval(), (1, 3, 3))
    assert "batch_norm" in [op.kind for op in fuse_bn(graph)]


def test_fuse_bn_does_not_mutate_its_input(small_cnn):
    graph = trace(small_cnn, (1, 8, 8))
    before = str(graph)
    fuse_bn(graph)
    assert str(graph) == before
