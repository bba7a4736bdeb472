"""The "triton" backend of `snnc.nn` neurons: multi-step forward/backward in the Triton kernels of
`snnc.runtime.triton` (imported on first use: triton is an optional heavy dependency)."""

from __future__ import annotations

from torch import Tensor

from snnc.nn.errors import NoNeuronParamsError


def supports(node) -> bool:
    """IF/LIF/PLIF with a Sigmoid or ATan surrogate (custom neurons stay on torch)."""
    from snnc.runtime.triton.surrogate import is_supported_surrogate  # lazy: imports triton

    try:
        node.neuron_params()
    except NoNeuronParamsError:
        return False
    return is_supported_surrogate(node.surrogate_function)


def multi_step(node, x_seq: Tensor) -> Tensor:
    from snnc.runtime.triton.neuron import multi_step as kernel  # lazy: imports triton

    decay = node.w.sigmoid() if hasattr(node, "w") and isinstance(getattr(node, "w"), Tensor) else None
    v0 = node.v if isinstance(node.v, Tensor) else float(node.v)
    out = kernel(node.neuron_params(), x_seq, v0, decay=decay, surrogate=node.surrogate_function,
                 detach_reset=node.detach_reset, return_v_seq=node.store_v_seq)
    if node.store_v_seq:
        spikes, v, v_seq = out
        node.v_seq = v_seq
    else:
        spikes, v = out
    node.v = v
    return spikes
