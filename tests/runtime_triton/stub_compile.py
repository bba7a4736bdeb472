"""Compile the kernels with the real Triton compiler for a stub CUDA target (no GPU needed).

Run as `python -m tests.runtime_triton.stub_compile` with TRITON_INTERPRET unset;
prints one JSON object: variant name -> facts about its PTX. The launchers
(`run_forward`, `run_backward`) are called with small CPU tensors while the
kernel object is replaced by a recorder, so the compiled signature is exactly
what the launcher passes.
"""

from __future__ import annotations

import json
import os
import re
import sys

import torch

_TYPES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16", torch.uint8: "u8",
          torch.int8: "i8", torch.bool: "i1", torch.int32: "i32"}  # fmt: skip


class _Recorder:
    """Stands in for a JITFunction: `kernel[grid](*args, **kwargs)` records the call."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.calls = []

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.calls.append((args, kwargs))


def _compile(kernel, args, kwargs):
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    names = kernel.arg_names
    values = dict(zip(names, args))
    options = {k: kwargs.pop(k) for k in ("num_warps", "enable_fp_fusion") if k in kwargs}
    values.update(kwargs)
    signature, constexprs, attrs = {}, {}, {}
    for i, name in enumerate(names):
        value = values[name]
        specialize = not kernel.params[i].do_not_specialize
        if i in kernel.constexprs or value is None or (specialize and type(value) is int and value == 1):  # as the JIT
            signature[name] = "constexpr"
            constexprs[(i,)] = value
        elif isinstance(value, torch.Tensor):
            signature[name] = "*" + _TYPES[value.dtype]
            attrs[(i,)] = [["tt.divisibility", 16]]
        elif isinstance(value, bool):
            signature[name] = "i1"
        elif isinstance(value, int):
            signature[name] = "i32" if abs(value) < 2**31 else "i64"
            if specialize and value % 16 == 0:  # what the JIT's specialization would record at launch
                attrs[(i,)] = [["tt.divisibility", 16]]
        else:
            signature[name] = "fp32"
    src = ASTSource(fn=kernel, signature=signature, constexprs=constexprs, attrs=attrs)
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options=options).asm["ptx"]


def _facts(ptx: str) -> dict:
    return {
        "div_rn": len(re.findall(r"\bdiv\.rn\.f32", ptx)),
        "div_inexact": len(re.findall(r"\bdiv\.(full|approx)\.f32", ptx)),
        "fma_f32": len(re.findall(r"\bfma\.rn\.f32", ptx)),
        "vector_loads": len(re.findall(r"\bld\.global\.v[24]", ptx)),
    }


def main() -> int:
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("run with TRITON_INTERPRET unset", file=sys.stderr)
        return 2
    from snnc.core.dynamics import FireCompare, NeuronKind, NeuronParams, ResetMode
    from snnc.runtime.triton import backward, forward, launch
    from snnc.runtime.triton.forward import Affine
    from snnc.runtime.triton.spec import Leak, NeuronSpec
    from snnc.runtime.triton.surrogate import parse_surrogate

    fwd, bwd = _Recorder(forward.neuron_forward_kernel), _Recorder(backward.neuron_backward_kernel)
    forward.neuron_forward_kernel, backward.neuron_backward_kernel = fwd, bwd
    T, N = 4, 4096
    lif = NeuronParams(NeuronKind.LIF, 1.0, ResetMode.SOFT, compare=FireCompare.GT, tau=2.0)
    variants = {}

    def x(dtype=torch.float32):
        return torch.zeros(T, N, dtype=dtype)

    one = torch.ones(1)
    with launch.override(launch.LaunchConfig(block=1024, num_warps=4)):
        with launch.override(launch.LaunchConfig(block=256, num_warps=2, prefetch=4)):  # the small-N config
            forward.run_forward(NeuronSpec(NeuronParams()), x(), 0.0)
        variants["fwd-if-inference-fp32-prefetch4"] = fwd
        forward.run_forward(NeuronSpec(lif), x(torch.float16), torch.zeros(N), store_v_seq=True, store_h_seq=True)
        variants["fwd-lif-train-fp16"] = fwd
        none_nodecay = NeuronParams(NeuronKind.LIF, reset=ResetMode.NONE, decay_input=False)
        forward.run_forward(NeuronSpec(none_nodecay, Leak.TAU), x(torch.bfloat16), 0.0, one,
                            affine=Affine(torch.ones(64), one, channels=64, inner=16), spike_dtype=torch.uint8,
                            store_count=True, count_dtype=torch.int32)  # fmt: skip
        variants["fwd-plif-tau-affine-count-bf16"] = fwd
        forward.run_forward(NeuronSpec(NeuronParams(NeuronKind.LIF), Leak.DECAY), x(), 0.0, one,
                            affine=Affine(0.5, 0.1), spike_dtype=torch.bool, store_count=True)  # fmt: skip
        variants["fwd-plif-decay-affine-bool"] = fwd
        g = x()
        backward.run_backward(NeuronSpec(NeuronParams()), parse_surrogate("sigmoid"), True, g, g, 0.0, None,
                              g, None, None, want_grad_v0=False, want_grad_leak=False)  # fmt: skip
        variants["bwd-if-sigmoid-detach"] = bwd
        backward.run_backward(NeuronSpec(lif, Leak.TAU), parse_surrogate("atan"), False, g, x(torch.float16),
                              torch.zeros(N), one, g, torch.zeros(N), g, want_grad_v0=True, want_grad_leak=True)  # fmt: skip
        variants["bwd-plif-tau-all-grads-fp16"] = bwd
        hard_nodecay = NeuronParams(NeuronKind.LIF, decay_input=False)
        backward.run_backward(NeuronSpec(hard_nodecay, Leak.DECAY), parse_surrogate("sigmoid"), False, g,
                              x(torch.bfloat16), 0.0, one, g, None, None, want_grad_v0=False, want_grad_leak=True)  # fmt: skip
        variants["bwd-plif-decay-bf16"] = bwd
        tiny = torch.zeros(1, 1)  # T = N = 1: the JIT turns both into constexprs
        forward.run_forward(NeuronSpec(lif), tiny, 0.0, store_h_seq=True)
        variants["fwd-T1-N1"] = fwd
        backward.run_backward(NeuronSpec(lif, Leak.TAU), parse_surrogate("atan"), False, tiny, tiny, 0.0, one,
                              tiny, None, None, want_grad_v0=False, want_grad_leak=True)  # fmt: skip
        variants["bwd-T1-N1"] = bwd
    report = {}
    # the fused groups (chain.py, linear.py)
    from snnc.runtime.triton import chain, linear

    chn, lin = _Recorder(chain.chain_neuron_kernel), _Recorder(linear.linear_neuron_kernel)
    chain.chain_neuron_kernel, linear.linear_neuron_kernel = chn, lin
    launch.interpreting = lambda: True  # CPU tensors pass the launchers' device check; nothing runs
    stages = (chain.Stage(chain.STAGE_MUL, 0.5), chain.Stage(chain.STAGE_MUL_CHANNEL, weight=torch.ones(64)),
              chain.Stage(chain.STAGE_ADD, operand=0), chain.Stage(chain.STAGE_RELU))  # fmt: skip
    with launch.override(launch.LaunchConfig(block=1024, num_warps=4)):
        chain.chain_multi_step(lif, x(), stages, ((torch.zeros(N), True),), channels=64, inner=16)
        chain.chain_multi_step(lif, torch.zeros(N, dtype=torch.bfloat16), stages[:3], ((x(torch.bfloat16), False),),
                               steps=T, x_static=True, v0=torch.zeros(N), channels=64, inner=16)  # fmt: skip
    linear.linear_multi_step(lif, torch.zeros(T, 64, 96), torch.zeros(128, 96), torch.zeros(128))
    linear.linear_multi_step(lif, torch.zeros(T, 64, 512, dtype=torch.float16), torch.zeros(128, 512))
    for name, call in zip(("chain-fp32-static-operand", "chain-bf16-static-input"), chn.calls, strict=True):
        report[name] = _facts(_compile(chn.kernel, call[0], dict(call[1])))
    for name, call in zip(("linear-fp32-resident", "linear-fp16-k-chunks"), lin.calls, strict=True):
        report[name] = _facts(_compile(lin.kernel, call[0], dict(call[1])))
    fwd_names = [n for n, r in variants.items() if r is fwd]
    bwd_names = [n for n, r in variants.items() if r is bwd]
    for names, recorder in ((fwd_names, fwd), (bwd_names, bwd)):
        for name, (args, kwargs) in zip(names, recorder.calls, strict=True):
            report[name] = _facts(_compile(recorder.kernel, args, dict(kwargs)))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
