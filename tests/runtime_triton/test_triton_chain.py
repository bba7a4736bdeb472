"""The "elementwise chain + neuron" kernel vs the CPU reference, alone and as the triton runtime runs it."""

import pytest
import torch

pytest.importorskip("triton", reason="triton is not installed (Linux wheels only); the Triton kernels cannot be tested")

from snnc.core import dynamics  # noqa: E402
from snnc.core.dynamics import NeuronKind, NeuronParams, ResetMode  # noqa: E402
from snnc.ir import Graph, Layout, TensorType, ops  # noqa: E402
from snnc.passes.fuse import fuse  # noqa: E402
from snnc.runtime import Session  # noqa: E402
from snnc.runtime.triton import chain  # noqa: E402
from snnc.runtime.triton.chain import STAGE_ADD, STAGE_MUL, STAGE_MUL_CHANNEL, STAGE_RELU, Stage  # noqa: E402
from snnc.runtime.triton.errors import KernelInputError  # noqa: E402
from snnc.runtime.triton.session import ChainNode  # noqa: E402

from .cases import random_input  # noqa: E402

LIF = NeuronParams(NeuronKind.LIF, 0.7, ResetMode.SOFT, -0.2, tau=1.7)
IF_HARD = NeuronParams(NeuronKind.IF, 0.7, ResetMode.HARD, -0.1)
SHAPE = (2, 3, 4)  # [N, C, inner]: channel of neuron n is (n // 4) % 3


def _w(seed):
    return torch.rand(3, generator=torch.Generator().manual_seed(seed)) + 0.5


def _reference(x, static, T, stages, operands):
    """The chain as the unfused torch ops of the CPU runtime compute it."""
    u = x.unsqueeze(0).expand(T, *x.shape) if static else x
    for st in stages:
        if st.op == STAGE_MUL:
            u = u * st.factor
        elif st.op == STAGE_MUL_CHANNEL:
            u = u * st.weight.view(3, 1).to(u.dtype)
        elif st.op == STAGE_ADD:
            u = u + operands[st.operand][0]
        else:
            u = torch.relu(u)
    return u


CHAINS = {
    "none": lambda: ((), ()),
    "scale": lambda: ((Stage(STAGE_MUL, 0.8),), ()),
    "scale-channel": lambda: ((Stage(STAGE_MUL, 1.3), Stage(STAGE_MUL_CHANNEL, weight=_w(1))), ()),
    "add-dynamic": lambda: ((Stage(STAGE_ADD, operand=0),), ((random_input(5, SHAPE, 2) - 0.3, False),)),
    "add-static-relu": lambda: ((Stage(STAGE_ADD, operand=0), Stage(STAGE_RELU)), ((random_input(1, SHAPE, 3)[0], True),)),
    "four-stages-two-adds": lambda: ((Stage(STAGE_RELU), Stage(STAGE_ADD, operand=1), Stage(STAGE_MUL, 0.6),
                                      Stage(STAGE_ADD, operand=0)),
                                     ((random_input(5, SHAPE, 4), False), (random_input(1, SHAPE, 5)[0], True))),
}  # fmt: skip


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
@pytest.mark.parametrize("chain_name", list(CHAINS))
@pytest.mark.parametrize("params", [LIF, IF_HARD], ids=["lif-soft", "if-hard"])
def test_chain_matches_unfused(params, chain_name, static, device):
    T = 5
    x = random_input(T, SHAPE, 1)
    x_in = x[0] if static else x
    stages, operands = CHAINS[chain_name]()
    u = _reference(x_in, static, T, stages, operands)
    ref_s, ref_v = dynamics.multi_step(params, u, torch.full(SHAPE, params.initial_v))
    assert 0 < ref_s.mean() < 1
    dev_stages = tuple(Stage(s.op, s.factor, None if s.weight is None else s.weight.to(device), s.operand) for s in stages)
    s, v = chain.chain_multi_step(params, x_in.to(device), dev_stages, tuple((y.to(device), st) for y, st in operands),
                                  steps=T, x_static=static, channels=3, inner=4)  # fmt: skip
    assert torch.equal(s.cpu(), ref_s) and torch.equal(v.cpu(), ref_v)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_half_inputs_round_after_every_stage(dtype, device):
    """Each stage rounds to the storage dtype as torch's half ops do; the state stays fp32."""
    T = 4
    x = random_input(T, SHAPE, 6).to(dtype)
    y = (random_input(T, SHAPE, 7) - 0.3).to(dtype)
    stages = (Stage(STAGE_MUL, 0.7), Stage(STAGE_MUL_CHANNEL, weight=_w(8).to(dtype)), Stage(STAGE_ADD, operand=0))
    u = _reference(x, False, T, stages, ((y, False),))
    ref_s, ref_v = dynamics.multi_step(LIF, u.float(), torch.full(SHAPE, LIF.initial_v))
    s, v = chain.chain_multi_step(LIF, x.to(device), tuple(Stage(st.op, st.factor, None if st.weight is None else
                                  st.weight.to(device), st.operand) for st in stages), ((y.to(device), False),),
                                  v0=None, channels=3, inner=4, spike_dtype=torch.uint8)  # fmt: skip
    assert s.dtype == torch.uint8 and torch.equal(s.cpu(), ref_s.to(torch.uint8)) and torch.equal(v.cpu(), ref_v)


def test_state_carries_over(device):
    """Two windows with v0 = the first's v_final give the one-window result."""
    x = random_input(6, SHAPE, 9)
    stages = (Stage(STAGE_MUL, 0.9),)
    s, v = chain.chain_multi_step(LIF, x.to(device), stages, v0=0.05)
    s1, v1 = chain.chain_multi_step(LIF, x[:2].to(device), stages, v0=0.05)
    s2, v2 = chain.chain_multi_step(LIF, x[2:].to(device), stages, v0=v1)
    assert torch.equal(torch.cat([s1, s2]), s) and torch.equal(v2, v)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"stages": (Stage(STAGE_ADD, operand=1),)}, "operand 1"),
        ({"stages": (Stage(STAGE_RELU),) * 5}, "at most"),
        ({"stages": (Stage(STAGE_MUL_CHANNEL, weight=torch.ones(2)),), "channels": 3}, "per-channel"),
        ({"operands": ((torch.ones(3, 2), False),)}, "operand 0 has shape"),
        ({"x_static": True}, "steps"),
    ],
    ids=["operand-index", "too-long", "weight-size", "operand-shape", "static-needs-steps"],
)
def test_bad_chain_arguments(kwargs, message):
    kwargs = {"stages": (), "operands": (), **kwargs}
    with pytest.raises(KernelInputError, match=message):
        chain.chain_multi_step(LIF, torch.ones(4, 2, 3), kwargs.pop("stages"), kwargs.pop("operands"), **kwargs)


# -- the chains the fuse pass groups, run by the triton runtime --------------------------------------
def _graph(chain_ops: str) -> Graph:
    """x -> conv -> <chain> -> if -> out, the chain given as kinds; 'add' adds a second conv of x."""
    g = Graph("chain")
    g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", 2, 5, 5), layout=Layout.TNX)))
    gen = torch.Generator().manual_seed(0)
    g.params["w"] = torch.randn(3, 2, 3, 3, generator=gen) * 0.4
    g.params["w2"] = torch.randn(3, 2, 3, 3, generator=gen) * 0.4
    g.params["cw"] = torch.rand(3, generator=gen) + 0.5
    g.add(ops.Conv2d(name="conv", inputs=("x",), weight="w", padding=(1, 1)))
    g.add(ops.Conv2d(name="side", inputs=("x",), weight="w2", padding=(1, 1)))
    cur = "conv"
    for i, kind in enumerate(chain_ops.split("+") if chain_ops else []):
        name = f"{kind}{i}"
        if kind == "scale":
            g.add(ops.Scale(name=name, inputs=(cur,), factor=1.7))
        elif kind == "cscale":
            g.add(ops.Scale(name=name, inputs=(cur,), factor=0.9, weight="cw"))
        elif kind == "relu":
            g.add(ops.ReLU(name=name, inputs=(cur,)))
        elif kind == "identity":
            g.add(ops.Identity(name=name, inputs=(cur,)))
        elif kind == "add":
            g.add(ops.Add(name=name, inputs=(cur, "side")))
        cur = name
    g.add(ops.IF(name="n", inputs=(cur,), v_threshold=0.8, reset=ops.SoftReset()))
    g.add(ops.Output(name="out", inputs=("n",)))
    return g


@pytest.mark.parametrize("chain_ops", ["", "scale", "cscale+relu", "add", "relu+add+scale", "identity+scale+add",
                                       "scale+cscale+add+relu+scale"])  # fmt: skip
@pytest.mark.parametrize("recorded", [True, False], ids=["fuse-pass", "computed"])
def test_runtime_runs_fuse_pass_chains_in_one_kernel(chain_ops, recorded):
    g = _graph(chain_ops)
    if recorded:
        g = fuse(g)
    x = torch.rand(6, 2, 2, 5, 5) * 2 - 0.5
    ref = Session(g).run(x)
    s = Session(g, neuron_impl="triton")
    out = s.run(x)
    assert torch.equal(out, ref) and 0 < ref.mean() < 1
    plan = next(iter(s._interp._plans.values()))
    node = next(n for n in plan.nodes if n.name == "n")
    assert isinstance(node, ChainNode)
    members = [m for m in chain_ops.split("+") if m] if chain_ops else []
    fused = len(node.members) - 1
    if chain_ops == "scale+cscale+add+relu+scale":  # 6 stages > 4: scale and cscale (2 stages) run on their own
        assert fused == 3
    else:
        assert fused == len(members)
    # chunked and step-by-step runs give the same spikes
    assert torch.equal(s.run(x, chunk=4), ref)


def test_observed_chain_members_stay_unfused():
    g = fuse(_graph("scale+add"))
    x = torch.rand(4, 2, 2, 5, 5)
    res = Session(g, neuron_impl="triton").observe(x, probes=["scale0", "n:v"], stats=False)
    ref = Session(g).observe(x, probes=["scale0", "n:v"], stats=False)
    assert torch.equal(res.outputs["out"], ref.outputs["out"])
    assert torch.equal(res.probes["scale0"], ref.probes["scale0"])
    torch.testing.assert_close(res.probes["n:v"], ref.probes["n:v"], rtol=0, atol=0)
