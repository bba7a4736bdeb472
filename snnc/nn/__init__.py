"""snnc.nn: a PyTorch library for writing and training spiking neural networks.

The API follows SpikingJelly's `activation_based` package, so most code ports by
changing the import:

    from snnc.nn import neuron, surrogate, layer, functional, monitor, encoding

See docs/nn.md for the module list and the differences from SpikingJelly.
"""

from snnc.nn import (
    base,
    container,
    encoding,
    errors,
    functional,
    layer,
    monitor,
    neuron,
    surrogate,
    tensor_cache,
)
from snnc.nn.base import MemoryModule, StepMode, StepModule

__all__ = [
    "base", "container", "encoding", "errors", "functional", "layer", "monitor", "neuron", "surrogate",
    "tensor_cache", "MemoryModule", "StepMode", "StepModule",
]
