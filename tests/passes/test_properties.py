"""Every pass and every pipeline keeps the CPU-runtime outputs, and the verifier passes after each pass.

Exactness: on dyadic graphs (tests/passes/random_graphs.py) float32 arithmetic is
exact, so the outputs must be bit-identical. On ordinary float graphs folding
rounds differently; the stated tolerance there is rtol = atol = 1e-4 on every
output (a spike flipped by a last-bit change would break it; their thresholds and
starting potentials are generic floats, so that no input meets a threshold exactly:
with dyadic ones pooled spikes did, and folding flipped the tie).
"""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnc.ir import Layout, verify
from snnc.passes import PIPELINES, PassManager, hoist_constant_input, parse_pipeline
from snnc.runtime import Session
from snnc.runtime.layouts import to_tnx
from tests.passes.random_graphs import graphs, inputs

# every registered pass that keeps the graph's interface, with its options
PASSES = ["fuse-bn", "fold-scales", "fold-constants", "remove-identities", "cancel-casts", "dce", "fuse",
          "layout{to=TNX}", "layout{to=NXT}", "layout{to=TN}", "layout{to=TN;keep_outputs=false}",
          "layout{to=NXT;keep_outputs=false}"]
OWN = {"fuse-bn", "fold-scales", "fold-constants", "remove-identities", "cancel-casts", "dce", "fuse", "layout",
       "hoist-constant-input", "to-time-layout"}


def _pipeline_names(spec: str) -> set[str]:
    return {name for name, _ in parse_pipeline(spec)}


# pipelines built only of the passes above (a target's own passes, e.g. quantization, are its backend's tests)
PIPES = sorted(k for k, v in PIPELINES.items() if _pipeline_names(v) <= OWN)
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outputs(graph, x, T, dtype=torch.float32) -> dict[str, torch.Tensor]:
    """Every output of the graph on the CPU runtime, as [T, N, *] whatever its layout."""
    s = Session(graph, dtype=dtype)
    out = s.run(x.to(dtype), T)
    out = out if isinstance(out, dict) else {s.output_names[0]: out}
    types = graph.types
    return {k: to_tnx(v, types[k].layout, T if x.dim() == len(graph.inputs[0].type.features) + 1 else x.shape[0])
            if types[k].layout is not Layout.TNX else v for k, v in out.items()}


def check(before, after, x, T, exact: bool) -> None:
    # Non-dyadic floats run in float64: a pass may reorder float ops (x*a*b -> x*(a*b)), and in
    # float32 that can flip a spike whose input is within rounding of the threshold. The folded
    # parameters themselves are stored in the graph's float32, so they carry float32 rounding
    # (relative ~6e-8 per weight, 1.4e-6 absolute measured on an output summing many of them):
    # the stated tolerance is 1e-4 (module docstring). Dyadic graphs run in float32, exactly.
    dtype = torch.float32 if exact else torch.float64
    a, b = outputs(before, x, T, dtype), outputs(after, x, T, dtype)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].shape == b[k].shape, k
        if exact:
            assert torch.equal(a[k], b[k]), (k, (a[k] - b[k]).abs().max())
        else:
            torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-4)


def apply(spec: str, graph):
    return PassManager(parse_pipeline(spec), verify_each=True).run(graph)


def test_every_pipeline_is_checked():
    assert {"cpu", "triton"} <= set(PIPES)


@pytest.mark.parametrize("spec", PASSES + [f"pipeline:{p}" for p in PIPES])
@SETTINGS
@given(data=st.data())
def test_pass_is_exact_on_dyadic_graphs(spec, data):
    g = data.draw(graphs(dyadic=True))
    x, T = data.draw(inputs(g, dyadic=True))
    before = str(g)
    h = apply(PIPELINES[spec.split(":")[1]] if spec.startswith("pipeline:") else spec, g)
    assert str(g) == before  # passes never mutate their input
    check(g, h, x, T, exact=True)


@pytest.mark.parametrize("spec", ["fold-scales", "fold-constants", "layout{to=TN}"] + [f"pipeline:{p}" for p in PIPES])
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_pass_is_within_tolerance_on_float_graphs(spec, data):
    g = data.draw(graphs(dyadic=False))
    x, T = data.draw(inputs(g, dyadic=False))
    h = apply(PIPELINES[spec.split(":")[1]] if spec.startswith("pipeline:") else spec, g)
    check(g, h, x, T, exact=False)


@SETTINGS
@given(data=st.data())
def test_hoisting_is_exact_for_constant_inputs(data):
    g = data.draw(graphs(dyadic=True))
    x, T = data.draw(inputs(g, dyadic=True, constant=True))
    h = verify(hoist_constant_input(g))
    assert h.inputs[0].type.layout is Layout.NX
    check(g, h, x, T, exact=True)
    # and after the cpu pipeline too (the order a user would run them in)
    check(g, apply(PIPELINES["cpu"], h), x, T, exact=True)
