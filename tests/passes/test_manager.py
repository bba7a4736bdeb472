"""The pass manager: pipeline parsing, options, print-after, verify-each, timing."""

import pytest

from snnc.core.errors import PassError, VerifyError
from snnc.ir import Graph, Layout, TensorType, ops
from snnc.passes import PASSES, PIPELINES, PassManager, parse_pipeline, register_pass


def _g() -> Graph:
    g = Graph("m")
    g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", 3), layout=Layout.TNX)))
    g.add(ops.Identity(name="i", inputs=("x",)))
    g.add(ops.Scale(name="s", inputs=("i",), factor=2.0))
    g.add(ops.IF(name="n", inputs=("s",)))
    g.add(ops.Output(name="out", inputs=("n",)))
    return g


def test_every_pipeline_parses_and_names_registered_passes():
    for target, spec in PIPELINES.items():
        assert parse_pipeline(spec), target
    assert {"cpu", "triton"} <= set(PIPELINES)
    assert {"layout", "fold-scales", "fuse", "remove-identities", "fold-constants", "hoist-constant-input",
            "cancel-casts", "dce", "fuse-bn"} <= set(PASSES)
    assert all(info.doc for info in PASSES.values())  # `snnc passes` shows a line for each


def test_options_are_validated():
    with pytest.raises(PassError, match="bad options for pass 'layout'"):
        parse_pipeline("layout{to=XYZ}")
    with pytest.raises(PassError, match="takes no options"):
        parse_pipeline("dce{x=1}")
    with pytest.raises(PassError, match="unknown pass 'nope'"):
        parse_pipeline("dce,nope")


def test_print_after_verify_each_and_report():
    printed = []
    pm = PassManager(parse_pipeline("remove-identities,fold-scales,fuse"), verify_each=True,
                     print_after={"fold-scales"}, printer=printed.append)
    out = pm.run(_g())
    assert len(printed) == 1 and printed[0].startswith("// after fold-scales\ngraph m(")
    assert [n for n, _ in pm.timings] == ["remove-identities", "fold-scales", "fuse"]
    assert pm.sizes == [(5, 4), (4, 3), (3, 3)] and out["n"].v_threshold == 0.5
    report = pm.report()
    assert "pass fold-scales" in report and "4 -> 3 nodes" in report and "total" in report
    with pytest.raises(PassError, match="does not run"):
        PassManager(parse_pipeline("dce"), print_after={"fuse"})


def test_verify_each_names_the_pass_that_broke_the_graph():
    name = "test-break-types"
    if name not in PASSES:
        @register_pass(name)
        def breaks(graph):
            """Drop the neuron's time layout (for this test only)."""
            g = graph.copy()
            g.replace_op(g["x"].replace(type=TensorType(shape=("N", 3), layout=Layout.NX)))
            return g
    try:
        with pytest.raises(VerifyError, match=f"after pass '{name}': .*needs a layout with time"):
            PassManager(parse_pipeline(f"dce,{name}"), verify_each=True).run(_g())
    finally:
        PASSES.pop(name)
