"""SpikingJelly 2.0 zoo models beyond the general zoo table (issue 18), against SJ's own forward.

MS-ResNet and Max-ResNet average their classifier over T (`head(x).mean(0)`), which becomes a
TimeMean (the running mean; its last step is SJ's output). Att-MS-ResNet and MA-SNN weigh every
time step by the whole sequence and are refused naming the module and the line. The OTTT VGGs
(OTTTLIFNode = LIF in eval mode, WSConv2d folded, Scale = x * c) are single-step networks run in
the user's time loop; SNASNet runs its own time loop, which folds into one multi-step network.
Weights are random, with BatchNorm statistics set so that every layer fires (no training).
The last tests run the zoo models that run on cpu on the lynxi and triton targets: outputs within 1e-5
of the cpu reference, or a first differing spike that tests/spike_ties.py proves a rounding tie.
"""

from __future__ import annotations

import os
import types
import warnings
from unittest import mock

import pytest
import torch
import torch.nn as nn

pytestmark = pytest.mark.spikingjelly
sj_model = pytest.importorskip("spikingjelly.activation_based.model")

from spikingjelly.activation_based import functional, neuron, surrogate  # noqa: E402
from spikingjelly.activation_based.model import masnn, ms_resnet, parametric_lif_net  # noqa: E402
from spikingjelly.activation_based.model import spiking_vggws_ottt as ottt  # noqa: E402
from spikingjelly.activation_based.model.snas_net import SNASNet  # noqa: E402

import snnc  # noqa: E402
from snnc.backends.lynxi import Runner  # noqa: E402
from snnc.core.errors import LoweringError, UnsupportedAttributeError, UnsupportedOpError  # noqa: E402
from snnc.frontends import trace  # noqa: E402
from snnc.ir import NeuronOp  # noqa: E402
from snnc.passes import PIPELINES, PassManager, parse_pipeline  # noqa: E402
from snnc.runtime import Session  # noqa: E402
from tests import spike_ties  # noqa: E402

T, N = 2, 2


def _fire(net: nn.Module, linear_gain: float = 8.0) -> nn.Module:
    """Constructed statistics: BN layers amplify and linear layers are scaled up, so that every layer fires."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_var.fill_(0.05)
                m.weight.fill_(2.0)
            if isinstance(m, nn.Linear):
                m.weight.mul_(linear_gain)
    return net.eval()


def _sj_spikes(net: nn.Module, run) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """SJ's output and every neuron module's spikes [T, N, *] (a single-step module's calls stacked)."""
    seen: dict[str, list[torch.Tensor]] = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, p=path: seen.setdefault(p, []).append(o.detach().clone()))
             for path, m in net.named_modules() if isinstance(m, neuron.BaseNode)]
    try:
        with torch.no_grad():
            functional.reset_net(net)
            out = run()
    finally:
        for h in hooks:
            h.remove()
    return out, {p: (v[0] if v[0].dim() > 1 and len(v) == 1 and getattr(dict(net.named_modules())[p], "step_mode",
                                                                         "s") == "m" else torch.stack(v))
                 for p, v in seen.items()}


def _compare(net: nn.Module, g, x: torch.Tensor, run, steps: int | None = None) -> torch.Tensor:
    """Every neuron's spikes equal SJ's (0 mismatching); returns snnc's output [T, N, *] (SJ's is checked by
    the caller, which knows how the model reads it out)."""
    want, sj = _sj_spikes(net, run)
    names = {op.loc.module_path: op.name for op in g if op.kind in ("if", "lif")}
    assert set(names) == set(sj), f"neuron modules differ: {sorted(set(names) ^ set(sj))}"
    res = Session(g, channels_last=False, event_conv=False).observe(x, steps, probes=list(names.values()), stats=False)
    mismatches = {p: int((res.probes[names[p]] != s).sum()) for p, s in sj.items()}
    assert not any(mismatches.values()), f"mismatching spikes per module: {mismatches}"
    fired = sum(float(s.sum()) for s in sj.values()) / sum(s.numel() for s in sj.values())
    assert 0.02 < fired < 0.98, f"the layers fire at a rate of {fired:.3f}; the test would be weak"
    (out,) = res.outputs.values()
    return out, want


# ---------------------------------------------------------------- MS-ResNet: a mean over time
def _ms(ctor, **kw) -> nn.Module:
    torch.manual_seed(0)
    net = _fire(ctor(T=T, num_classes=10, **{"base_channels": 8, **kw}))
    functional.set_step_mode(net, "m")
    return net


@pytest.mark.parametrize("name", ["ms_resnet18", "max_resnet18"])
def test_ms_resnets_match_spikingjelly_through_a_time_mean(name):
    net = _ms(getattr(ms_resnet, name))
    x = torch.rand(T, N, 3, 16, 16)
    g = trace(net, (3, 16, 16))
    kinds = [op.kind for op in g]
    assert kinds.count("time_mean") == 1 and kinds[-2] == "time_mean"  # head(x).mean(0), before the output
    out, want = _compare(net, g, x, lambda: net(x))
    assert want.shape == (N, 10) and out.shape == (T, N, 10)
    assert (out[-1] - want).abs().max() <= 1e-5
    assert float(want.abs().mean()) > 0.05
    # the time mean changes the output: a graph without it reads each step's logits instead
    assert (out[0] - want).abs().max() > 1e-3
    assert torch.equal(Session(g).predict(x), want.argmax(-1))


def test_ms_resnet34_traces_with_one_time_mean():
    g = trace(_ms(ms_resnet.ms_resnet34), (3, 16, 16))
    assert [op.kind for op in g].count("time_mean") == 1
    assert sum(op.kind == "lif" for op in g) == 33  # 16 blocks of 2, and the head


# ---------------------------------------------------------------- temporal attention: refused
@pytest.mark.parametrize("ctor,shape,kw,path", [
    (masnn.att_ms_resnet18, (3, 32, 32), dict(T=2, num_classes=10), "layer1.0.attention"),
    (masnn.masnn_dvs128_gesture, (2, 32, 32), dict(T=8), "conv_blocks.0.attn"),
])
def test_temporal_attention_is_refused_naming_the_module_and_line(ctor, shape, kw, path):
    net = ctor(**kw).eval()
    with pytest.raises(UnsupportedOpError, match=rf"MultiDimensionalAttention at '{path}' is not supported: it "
                                                 r"weighs each time step by scores computed from the whole "
                                                 r"sequence.*depends on later steps.*\[.*attention\.py:\d+\]"):
        trace(net, shape)


# ---------------------------------------------------------------- OTTT: single-step VGG in the user's time loop
def _ottt(name: str) -> nn.Module:
    torch.manual_seed(0)
    net = getattr(ottt, name)().eval()
    with torch.no_grad():
        for m in net.modules():
            if getattr(m, "gain", None) is not None:
                m.gain.fill_(2.0)
            if isinstance(m, nn.Linear):
                m.weight.mul_(100.0)
    return net


def test_ottt_vggws_matches_spikingjelly_step_by_step():
    net = _ottt("ottt_spiking_vggws")
    g = trace(net, (3, 32, 32))
    kinds = {op.kind for op in g}
    assert "lif" in kinds and "scale" in kinds and "time_mean" not in kinds
    x = torch.rand(3, 1, 3, 32, 32)
    out, want = _compare(net, g, x, lambda: torch.stack([net(x[t]) for t in range(3)]))
    assert float(want.abs().mean()) > 1.0
    assert ((out - want).abs().max() / want.abs().max()) <= 1e-6  # logits of ~100 differ in the last bits


def test_wsconv_is_folded_into_the_conv_weight():
    net = _ottt("ottt_spiking_vggws")
    g = trace(net, (3, 32, 32))
    conv = next(op for op in g if op.kind == "conv2d")
    m = net.features[0]
    assert torch.equal(g.params[conv.weight], m.get_weight().detach())
    assert not torch.allclose(g.params[conv.weight], m.weight.detach())  # the standardization changes it


def test_an_ottt_neuron_is_the_lif_it_runs_in_eval_mode():
    net = nn.Sequential(nn.Linear(4, 4), neuron.OTTTLIFNode(tau=3.0, v_threshold=0.5))
    with pytest.raises(UnsupportedAttributeError, match=r"'1' .*OTTTLIFNode.* is in training mode.*trace"):
        trace(net, (4,))  # training adds the eligibility trace as a second output
    g = trace(net.eval(), (4,))
    op = next(op for op in g if op.kind == "lif")
    assert (op.tau, op.v_threshold, op.decay_input) == (3.0, 0.5, False)


# ---------------------------------------------------------------- SNASNet: its own time loop
def _con_mat() -> torch.Tensor:
    """A hand-made cell: every op kind (0 zero, 1 identity, 2 LIF-conv1x1-BN, 3 LIF-conv3x3-BN, 4 avgpool)."""
    c = torch.zeros(4, 4, dtype=torch.long)
    c[0, 1], c[0, 2], c[1, 2], c[0, 3], c[1, 3], c[2, 3] = 3, 1, 2, 4, 0, 3
    return c


def _snasnet(celltype: str, timestep: int = 2) -> nn.Module:
    torch.manual_seed(0)
    # cifar100 is the narrowest configuration (128 channels in the first cell, 256 in the second)
    args = types.SimpleNamespace(threshold=0.5, tau=2.0, timestep=timestep, second_avgpooling=4, dataset="cifar100",
                                 celltype=celltype)
    return _fire(SNASNet(args, _con_mat()))


def test_snasnet_time_loop_folds_and_matches_spikingjelly():
    net = _snasnet("forward")
    x = torch.rand(1, 3, 32, 32)
    with pytest.warns(UserWarning, match="runs its own time loop"):
        g = trace(net, (3, 32, 32))
    assert sum(op.kind == "lif" for op in g) == sum(isinstance(m, neuron.LIFNode) for m in net.modules())
    out, want = _compare(net, g, x, lambda: net(x), steps=2)
    assert (out.sum(0) - want).abs().max() <= 1e-5  # the model sums its steps' (scaled) outputs
    assert float(want.abs().mean()) > 0.05


def test_snasnet_backward_cell_is_refused_naming_its_modules():
    # its cells carry values to the next step in Python attributes (self.last_xin = ...): no fold
    with pytest.raises(UnsupportedOpError, match=r"'cell1\.cell_architecture\.0\.0'.*called 2 times.*read as a Python "
                                                 r"time loop, it cannot be folded either: the 2 calls of "
                                                 r"'cell1\.cell_architecture\.0\.0' read values that change.*"
                                                 r"snas_net\.py:\d+"):
        trace(_snasnet("backward"), (3, 32, 32))


# ---------------------------------------------------------------- Lynxi and Triton on the zoo models
TARGET_T = 4  # the targets' checks run T=4, N=2 (the time loop of the lynxi neurons unrolled 4 times)


def _plif(name: str = "MNISTNet"):
    def make():
        torch.manual_seed(0)
        net = getattr(parametric_lif_net, name)(channels=4, spiking_neuron=neuron.LIFNode,
                                                surrogate_function=surrogate.ATan(), detach_reset=True)
        functional.set_step_mode(_fire(net), "m")
        return net
    return make


def _ms_small() -> nn.Module:
    return _ms(ms_resnet.ms_resnet18, stage_channels=(4, 4, 4, 4), base_channels=4)


def _max_small() -> nn.Module:
    """max_resnet18's own builder, its stages shrunk to one block of 4 channels each (the builder fixes
    layers=(3, 3, 2) and stage_channels=(128, 256, 512) when it calls MaxResNet)."""
    cls = ms_resnet.MaxResNet
    with mock.patch.object(ms_resnet, "MaxResNet",
                           lambda **kw: cls(**{**kw, "layers": (1, 1, 1), "stage_channels": (4, 4, 4)})):
        net = _ms(ms_resnet.max_resnet18, base_channels=4)
    assert [len(getattr(net, f"layer{i}")) for i in (1, 2, 3)] == [1, 1, 1]
    return net


def _transformer(module: str, name: str):
    """A transformer of test_snn_zoo's table, built and fired there (SMALL widths, one block per stage)."""
    def make():
        from tests.zoo import test_snn_zoo as zoo
        entry = zoo.EXPECTED[module][name]
        net = zoo._build(module, name, {**entry.kwargs, "T": TARGET_T})
        functional.set_step_mode(net, "m")
        x = torch.rand(TARGET_T, N, *entry.shape, generator=torch.Generator().manual_seed(1))
        return zoo._fire(net, x, functional)
    return make


def _sew(cnf: str):
    """sew_resnet's connect functions on a block of SJ layers (sew_resnet itself imports torchvision, which
    does not import on this torch)."""
    from spikingjelly.activation_based import layer

    class SEWBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.sn1 = layer.Conv2d(4, 4, 3, padding=1, bias=False), neuron.IFNode()
            self.conv2, self.sn2 = layer.Conv2d(4, 4, 3, padding=1, bias=False), neuron.IFNode()
            with torch.no_grad():
                self.conv1.weight.uniform_(-0.05, 0.3)
                self.conv2.weight.uniform_(-0.1, 0.15)  # the second layer fires about half the time

        def forward(self, x):
            out = self.sn2(self.conv2(self.sn1(self.conv1(x))))
            return {"ADD": out + x, "AND": out * x, "IAND": x * (1.0 - out)}[cnf]

    def make():
        torch.manual_seed(0)
        net = SEWBlock().eval()
        functional.set_step_mode(net, "m")
        return net
    return make


PLIF_NETS = {"MNISTNet": (1, 28, 28), "FashionMNISTNet": (1, 28, 28), "NMNISTNet": (2, 34, 34),
             "CIFAR10Net": (3, 32, 32), "CIFAR10DVSNet": (2, 128, 128), "DVSGestureNet": (2, 128, 128)}
TRANSFORMERS = [("spikformer", "spikformer_cifar10"), ("spikformer", "spikformer_ti"), ("spikformer", "spikformer_s"),
                ("spike_driven_transformer", "sdt_8_384"), ("qkformer", "qkformer_10_384"),
                ("maxformer", "maxformer_10_384"), ("maxformer", "maxformer_cifar")]

def _tv(module: str, name: str, variant: str = ""):
    """A torchvision-style zoo model of test_snn_zoo's table (spiking_resnet, sew_resnet, spiking_vgg) at full
    width, built by its own builder with that entry's neuron (and connect function), fired there."""
    def make():
        from tests.zoo import test_snn_zoo as zoo
        entry = zoo._variants(zoo.EXPECTED[module][name])[variant]
        net = zoo._build(module, name, entry.kwargs)
        functional.set_step_mode(net, "m")
        x = torch.rand(TARGET_T, N, *_tv_shape(module), generator=torch.Generator().manual_seed(1))
        return zoo._fire(net, x, functional, entry.calibrate)
    return make


def _tv_shape(module: str) -> tuple[int, ...]:
    """The smallest input that runs every block: VGG's five 2x2 max pools need 32x32; the ResNets' stride-32
    stem and stages reach 1x1 from 16x16 (every block still runs)."""
    return (3, 32, 32) if module == "spiking_vgg" else (3, 16, 16)


def _tv_models() -> dict[str, tuple]:
    """name (as test_snn_zoo ids it, variant in brackets) -> (make, features, input, opt_in)."""
    from tests.zoo import test_snn_zoo as zoo
    out = {}
    for m in TV_MODULES:
        for n, e in zoo.EXPECTED[m].items():
            if isinstance(e, zoo.Ok):
                for vid in zoo._variants(e):
                    key = f"{m}.{n}" + (f"[{vid}]" if vid else "")
                    out[key] = (_tv(m, n, vid), _tv_shape(m), "sequence", key not in TV_DEFAULT)
    return out


TV_MODULES = ("spiking_resnet", "sew_resnet", "spiking_vgg")
# run by default on the targets: each family, each sew connect function, VGG with and without BN (4-17 s each
# on 2 cores, 14-60 s when they are busy: full widths, the lynxi export and the triton interpreter); the rest with
# SNNC_SNN_ZOO_ALL=1. SEW's connect functions also run as the sew_ADD/AND/IAND blocks above.
TV_DEFAULT = {"spiking_resnet.spiking_resnet18", "sew_resnet.sew_resnet18[ADD]", "sew_resnet.sew_resnet18[AND]",
              "sew_resnet.sew_resnet18[IAND]", "spiking_vgg.spiking_vgg11", "spiking_vgg.spiking_vgg11_bn"}

# name: (model, features, input): "sequence" feeds [T, N, *features]; "constant" feeds [N, *features] that the
# graph repeats over T (SNASNet runs its own time loop on one image)
TARGET_MODELS = {
    **{f"parametric_lif_net.{n}": (_plif(n), shape, "sequence") for n, shape in PLIF_NETS.items()},
    **{f"sew_{cnf}": (_sew(cnf), (4, 8, 8), "sequence") for cnf in ("ADD", "AND", "IAND")},
    "ms_resnet18": (_ms_small, (3, 16, 16), "sequence"),
    "max_resnet18": (_max_small, (3, 16, 16), "sequence"),
    "ottt_spiking_vggws": (lambda: _ottt("ottt_spiking_vggws"), (3, 16, 16), "sequence"),
    **{f"{m}.{n}": (_transformer(m, n), (3, 32, 32), "sequence") for m, n in TRANSFORMERS},
    "SNASNet": (lambda: _snasnet("forward", timestep=TARGET_T), (3, 32, 32), "constant"),
}
TV_MODELS = _tv_models()
TARGET_MODELS.update({k: v[:3] for k, v in TV_MODELS.items()})


def test_the_target_table_covers_every_model_the_cpu_target_runs():
    """Every zoo model that test_snn_zoo.py checks on cpu (its Ok entries) is in TARGET_MODELS."""
    from tests.zoo import test_snn_zoo as zoo
    ok = {f"{m}.{n}" + (f"[{vid}]" if vid else "") for m, names in zoo.EXPECTED.items() for n, e in names.items()
          if isinstance(e, zoo.Ok) for vid in zoo._variants(e)}
    assert ok and not ok - set(TARGET_MODELS), sorted(ok - set(TARGET_MODELS))
    assert {"spiking_resnet.spiking_resnet50", "sew_resnet.sew_resnet18[IAND]", "spiking_vgg.spiking_vgg11_bn"} <= ok
    # every family and every sew connect function runs on the targets by default
    default = {k for k, v in TV_MODELS.items() if not v[3]}
    assert {k.split(".")[0] for k in default} == set(TV_MODULES)
    assert {k[-5:].strip("[]") for k in default if k.startswith("sew")} == {"ADD", "AND", "IAND"}
    assert {k for k in default if k.startswith("spiking_vgg")} == {"spiking_vgg.spiking_vgg11",
                                                                  "spiking_vgg.spiking_vgg11_bn"}


def _target_cases() -> list:
    from tests.zoo import test_snn_zoo as zoo
    out = []
    for name in TARGET_MODELS:
        opt_in = name in TV_MODELS and TV_MODELS[name][3]
        marks = [pytest.mark.skipif(not os.environ.get(zoo.OPT_IN), reason=f"a larger model: set {zoo.OPT_IN}=1")
                 ] if opt_in else []
        out.append(pytest.param(name, id=name, marks=marks))
    return out


def _same_or_tie(target: str, got: torch.Tensor, want: torch.Tensor, tol: float, cpu_art, x, steps, got_run) -> None:
    """`got` (a target's output) is the cpu reference's `want` within `tol`, or the first spike where the two
    runs differ is a rounding tie (tests/spike_ties.py: a neuron whose potential lies within float32
    rounding of its threshold, in the reference, the target and a float64 run of the cpu artifact, with
    every earlier spike the same), which deep nets turn into other logits. A tie is reported as a warning."""
    assert got.numel() == want.numel()
    if (got.reshape(want.shape) - want).abs().max() <= tol:
        return
    graph = cpu_art.graph()
    T = want.shape[0]

    def observe(**kw) -> spike_ties.Run:
        r = Session(cpu_art, **kw).observe(x, steps, probes=spike_ties.probes(graph), stats=False)
        if not kw:  # probing changes nothing: the reference run is the one that gave `want`
            (out,) = r.outputs.values()
            assert torch.equal(out, want), "the probed cpu run differs from the cpu reference"
        return spike_ties.from_values(graph, r.probes, T)

    ref, exact = observe(), observe(dtype=torch.float64, channels_last=False, event_conv=False)
    tie = spike_ties.explain(graph, ref, got_run(), exact)
    assert tie is not None, (f"{target}: outputs differ from the cpu reference by "
                             f"{float((got.reshape(want.shape) - want).abs().max()):.3g} with every spike the same")
    warnings.warn(f"{target} vs the cpu reference: {tie}", stacklevel=2)


@pytest.mark.parametrize("name", _target_cases())
def test_lynxi_and_triton_run_the_zoo_models_like_the_cpu_reference(name, tmp_path):
    make, shape, kind = TARGET_MODELS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = trace(make(), shape)
    sequence = kind == "sequence"
    x = torch.rand(TARGET_T, N, *shape) if sequence else torch.rand(N, *shape)
    steps = None if sequence else TARGET_T
    cpu_art = snnc.compile(g, "cpu", tmp_path / "cpu")
    want = snnc.load(cpu_art).run(x, steps)
    assert want.shape[:2] == (TARGET_T, N) and float(want.abs().mean()) > 0.01
    tol = 1e-5 * max(1.0, float(want.abs().max()))
    tri = snnc.compile(g, "triton", tmp_path / "triton")
    got = snnc.load(tri).run(x, steps)
    assert got.shape == want.shape

    def triton_run() -> spike_ties.Run:
        probes = Session(tri).observe(x, steps, probes=spike_ties.probes(tri.graph()), stats=False).probes
        return spike_ties.from_values(tri.graph(), probes, TARGET_T)
    _same_or_tie("triton", got, want, tol, cpu_art, x, steps, triton_run)
    lowered = PassManager(parse_pipeline(PIPELINES["lynxi"]), verify_each=True).run(g)
    try:
        art = snnc.compile(lowered, "lynxi", tmp_path / "ly", time_steps=TARGET_T, batch_size=N, input_kind=kind,
                           passes="")  # the pipeline ran above, checked after each pass
    except LoweringError as e:  # a refusal names the node and its op
        pytest.fail(f"lynxi refused {name}: {e}")
    runner = Runner(art, "torch")
    x_ly = x.reshape(TARGET_T * N, *shape) if sequence else x
    (ly,) = runner.run(x_ly).values()

    def lynxi_run() -> spike_ties.Run:  # every value of the lowered program, time folded into batch
        return spike_ties.from_values(art.graph(), runner.values(x_ly), TARGET_T, folded=True)
    _same_or_tie("lynxi", ly, want, tol, cpu_art, x, steps, lynxi_run)


def test_a_target_that_differs_by_more_than_a_tie_fails(tmp_path):
    """The check above on its failing branch, on the SEW ADD block: a lynxi artifact with the first threshold
    changed (1.0 -> 0.9) differs from the cpu reference, and its first differing spike is not a tie."""
    make, shape, _ = TARGET_MODELS["sew_ADD"]
    g = trace(make(), shape)
    x = torch.rand(TARGET_T, N, *shape)
    cpu_art = snnc.compile(g, "cpu", tmp_path / "cpu")
    want = snnc.load(cpu_art).run(x)
    tol = 1e-5 * max(1.0, float(want.abs().max()))
    lowered = PassManager(parse_pipeline(PIPELINES["lynxi"])).run(g)
    first = next(op for op in lowered if isinstance(op, NeuronOp))
    lowered.replace_op(first.model_copy(update={"v_threshold": 0.9}))
    art = snnc.compile(lowered, "lynxi", tmp_path / "ly", time_steps=TARGET_T, batch_size=N, input_kind="sequence",
                       passes="")
    runner, x_ly = Runner(art, "torch"), x.reshape(TARGET_T * N, *shape)
    (ly,) = runner.run(x_ly).values()
    assert (ly.reshape(want.shape) - want).abs().max() > tol

    def lynxi_run() -> spike_ties.Run:
        return spike_ties.from_values(art.graph(), runner.values(x_ly), TARGET_T, folded=True)
    with pytest.raises(AssertionError, match=f"%{first.name} .*step 0.*not a rounding tie"):
        _same_or_tie("lynxi", ly, want, tol, cpu_art, x, None, lynxi_run)
    _same_or_tie("lynxi", want, want, tol, cpu_art, x, None, lynxi_run)  # the same outputs pass at once
