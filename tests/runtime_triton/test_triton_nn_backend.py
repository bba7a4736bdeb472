"""snnc.nn neurons with backend='triton' equal backend='torch' (forward and gradients)."""

import pytest
import torch

pytest.importorskip("triton")

from snnc.nn import neuron, surrogate  # noqa: E402


@pytest.mark.parametrize("make", [
    lambda: neuron.IFNode(step_mode="m", surrogate_function=surrogate.ATan()),
    lambda: neuron.LIFNode(tau=3.0, v_reset=None, step_mode="m", detach_reset=True),
    lambda: neuron.ParametricLIFNode(init_tau=2.5, step_mode="m", store_v_seq=True),
])
def test_triton_backend_matches_torch(make):
    torch.manual_seed(0)
    x = (torch.rand(6, 3, 5) * 1.5).requires_grad_()
    ref, tri = make(), make()
    tri.backend = "triton"
    assert "triton" in tri.supported_backends
    y_ref, y_tri = ref(x), tri(x)
    assert torch.equal(y_ref, y_tri) and torch.equal(ref.v, tri.v)
    g = torch.randn_like(y_ref)
    (gx_ref,) = torch.autograd.grad((y_ref * g).sum(), x)
    (gx_tri,) = torch.autograd.grad((y_tri * g).sum(), x)
    torch.testing.assert_close(gx_tri, gx_ref, rtol=1e-4, atol=1e-5)
    if ref.store_v_seq:
        torch.testing.assert_close(tri.v_seq, ref.v_seq)


def test_unsupported_surrogate_is_refused_clearly():
    node = neuron.IFNode(step_mode="m", surrogate_function=surrogate.PiecewiseQuadratic())
    assert "triton" not in node.supported_backends
    with pytest.raises(Exception, match="'triton' is not available; supported: \\['torch'\\]"):
        node.backend = "triton"
