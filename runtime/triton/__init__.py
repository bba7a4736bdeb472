"""Triton GPU kernels for spiking neurons (issue 7).

Modules, each one concept:

- `spec`       NeuronParams -> the constexpr flags and scalars the kernels take
- `surrogate`  surrogate-gradient specs and their Triton device functions
- `dynamics`   charge / fire / reset as Triton device functions (mirrors snnc.core.dynamics)
- `launch`     block sizes, device checks, [T, N] flattening
- `forward`    the multi-step forward kernel (with the fused prologue and epilogues)
- `backward`   the multi-step backward kernel (BPTT with surrogate gradients)
- `neuron`     `multi_step`: the differentiable entry point (torch.autograd.Function)
- `fused`      fusion groups: scale/bias + neuron, neuron + spike count
- `chain`      fusion group: elementwise chain (scale, channel scale, add, relu) + neuron
- `linear`     fusion group: linear + neuron, the weight tile on chip across T (option fused_linear)
- `options`    RuntimeOptions (fused_linear, cuda_graphs, ...), also the triton target's options
- `graphs`     CUDA graph capture/replay of small-batch runs: decision logic and cache
- `session`    TritonInterpreter: plans whose neuron groups run in the kernels (Session(neuron_impl="triton"))
- `errors`     TritonRuntimeError (an SnncError) > KernelInputError (also InputError, ValueError)

Importing this package does not import triton; the modules above do. Use
`is_available()` to ask first. On a machine without a GPU, set
`TRITON_INTERPRET=1` before the kernel modules are imported to run them on
the CPU through Triton's interpreter (slow; for tests).
"""

from __future__ import annotations

import importlib.util


def is_available() -> bool:
    """True when the `triton` package can be imported."""
    return importlib.util.find_spec("triton") is not None
