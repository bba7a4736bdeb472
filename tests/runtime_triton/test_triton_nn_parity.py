"""The kernels vs the torch backend of snnc.nn's neurons: same spikes, same gradients.

This is the contract for `backend="triton"`: called with a node's
`neuron_params()`, initial `v`, surrogate function and detach_reset (and
`decay=w.sigmoid()` for ParametricLIF), `neuron.multi_step` must reproduce the
node's torch multi-step forward and backward.
"""

import pytest
import torch

pytest.importorskip("triton", reason="triton is not installed (Linux wheels only); the Triton kernels cannot be tested")
nn_neuron = pytest.importorskip("snnc.nn.neuron")
nn_surrogate = pytest.importorskip("snnc.nn.surrogate")

from snnc.runtime.triton import neuron  # noqa: E402

from .cases import random_input  # noqa: E402

NODES = {
    "if-soft-sigmoid": lambda: nn_neuron.IFNode(v_threshold=0.7, v_reset=None),
    "if-hard-atan-detach": lambda: nn_neuron.IFNode(v_threshold=0.7, v_reset=-0.2, detach_reset=True,
                                                    surrogate_function=nn_surrogate.ATan()),
    "lif-hard-decay_input": lambda: nn_neuron.LIFNode(tau=1.7, v_threshold=0.7, v_reset=-0.2),
    "lif-soft-no_decay_input-atan": lambda: nn_neuron.LIFNode(tau=1.7, decay_input=False, v_threshold=0.7,
                                                              v_reset=None, surrogate_function=nn_surrogate.ATan()),
    "plif-hard": lambda: nn_neuron.ParametricLIFNode(init_tau=1.7, v_threshold=0.7, v_reset=-0.2),
    "plif-soft-no_decay_input-detach": lambda: nn_neuron.ParametricLIFNode(
        init_tau=1.7, decay_input=False, v_threshold=0.7, v_reset=None, detach_reset=True),
}  # fmt: skip


@pytest.mark.parametrize("name", list(NODES))
def test_kernels_reproduce_the_torch_backend(name, device):
    node = NODES[name]()
    node.step_mode = "m"
    x = random_input(T=5)
    weight = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))

    xt = x.clone().requires_grad_()
    spikes_torch = node(xt)
    v_torch = node.v
    params = [p for p in node.parameters()]
    grads_torch = torch.autograd.grad((spikes_torch * weight).sum() + v_torch.sum(), [xt, *params])

    node.reset()
    xk = x.clone().to(device).requires_grad_()
    leak = {"decay": node.w.sigmoid()} if hasattr(node, "w") else {}
    spikes, v = neuron.multi_step(node.neuron_params(), xk, node.v, surrogate=node.surrogate_function,
                                  detach_reset=node.detach_reset, **leak)  # fmt: skip
    grads = torch.autograd.grad((spikes.cpu() * weight).sum() + v.cpu().sum(), [xk, *params])

    assert torch.equal(spikes.cpu(), spikes_torch.detach())
    assert torch.equal(v.cpu(), v_torch.detach())
    for a, b in zip(grads, grads_torch):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-4, atol=1e-5)
