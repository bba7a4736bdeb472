"""Count the kernels Triton would compile for a series of launches (no GPU needed).

Run as `python -m tests.runtime_triton.jit_keys` with TRITON_INTERPRET unset;
prints one JSON object. Each kernel is replaced by a recorder, the launchers
run on small CPU tensors (the device check is told it is interpreting), and
every recorded launch is bound with Triton's own binder for a stub sm_90
target: its cache key (`compute_cache_key`) is what decides whether a launch
reuses a compiled kernel or compiles a new one.
"""

from __future__ import annotations

import json
import os
import sys

import torch

from tests.runtime_triton.stub_compile import _Recorder


def _keys(recorder) -> list[str]:
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend
    from triton.runtime.jit import compute_cache_key, create_function_from_signature

    kernel = recorder.kernel
    binder = create_function_from_signature(kernel.signature, kernel.params, make_backend(GPUTarget("cuda", 90, 32)))
    keys = []
    for args, kwargs in recorder.calls:
        _, specialization, options = binder(*args, **kwargs)
        keys.append(compute_cache_key({}, specialization, options))
    return keys


def main() -> int:
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("run with TRITON_INTERPRET unset", file=sys.stderr)
        return 2
    from snnc.core.dynamics import NeuronKind, NeuronParams, ResetMode
    from snnc.runtime.triton import chain, forward, launch, linear, neuron

    launch.interpreting = lambda: True  # CPU tensors pass the device check; the kernels never run
    rec = {"forward": _Recorder(forward.neuron_forward_kernel), "chain": _Recorder(chain.chain_neuron_kernel),
           "linear": _Recorder(linear.linear_neuron_kernel)}  # fmt: skip
    forward.neuron_forward_kernel = rec["forward"]
    chain.chain_neuron_kernel = rec["chain"]
    linear.linear_neuron_kernel = rec["linear"]
    lif = NeuronParams(NeuronKind.LIF, 1.0, ResetMode.SOFT, tau=2.0)
    report = {}
    Ts = (2, 3, 16, 17, 33)
    for T in Ts:  # fresh tensors every call: new pointer values, same shapes otherwise
        neuron.multi_step(lif, torch.zeros(T, 4, 64), 0.0)
        chain.chain_multi_step(lif, torch.zeros(T, 4, 8, 8), (chain.Stage(chain.STAGE_MUL, 0.5),
                               chain.Stage(chain.STAGE_ADD, operand=0)), ((torch.zeros(T, 4, 8, 8), False),),
                               channels=8, inner=8)  # fmt: skip
        linear.linear_multi_step(lif, torch.zeros(T, 32, 64), torch.zeros(48, 64), torch.zeros(48))
    report["over_T"] = {name: len(set(_keys(r))) for name, r in rec.items()}
    report["launches"] = {name: len(r.calls) for name, r in rec.items()}
    for r in rec.values():
        r.calls.clear()

    # a whole triton session: runs at several T and with fresh inputs, one batch size (the block
    # size, a constexpr, follows the number of neurons, so another batch may pick another block)
    import snnc
    from snnc.runtime import Session
    from tests.conftest import SmallCNN

    g = snnc.convert(SmallCNN().eval(), torch.rand(16, 1, 8, 8), "99%")
    s = Session(g, neuron_impl="triton", triton_options={"cuda_graphs": False})
    first = None
    for T in (3, 3, 5, 16, 7):
        s.run(torch.rand(4, 1, 8, 8), T)
        if first is None:
            first = len(set(_keys(rec["chain"])))
    report["session"] = {"after_first_run": first, "after_all_runs": len(set(_keys(rec["chain"]))),
                         "launches": len(rec["chain"].calls)}  # fmt: skip
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
