"""SpikingJelly 2.0's model zoo (`spikingjelly.activation_based.model`) through `snnc.trace` (issue 18).

Every public constructor of the package (each module's `__all__`: the network classes and their builder
functions) has an entry in EXPECTED, and a test fails when one has none. An entry is

- `Ok`: the model traces, compiles for `--target cpu`, and runs with 0 mismatching spikes at every neuron
  module and outputs within 1e-5 of SJ's own multi-step forward;
- `SameAs(builder)`: a network class whose builder's entry covers it (the builder returns that class);
- `Elsewhere(test_file)`: checked by another test file;
- `NotANetwork(why)`: no network to build here (the name is a component or a config), checked to be so.

spiking_resnet, sew_resnet and spiking_vgg import torchvision for `load_state_dict_from_url` alone (used for
pretrained=True only); torchvision does not install beside our CPU torch, so these modules are imported with a
stand-in for that one function, `torch.hub.load_state_dict_from_url` (tests/zoo/torchvision_stub.py), and SJ's
own model code runs. Their builders take the neuron as an argument: an entry names it (`spiking_neuron="IFNode"`,
`surrogate_function="ATan"`, resolved in SJ's neuron and surrogate modules). An entry can have variants (sew_resnet's
connect functions ADD/AND/IAND), each checked. ResNets of depth 18, 34 and 50, one ResNeXt, one wide ResNet (at 3x16x16: every block
still runs, layer3 and layer4 at 1x1) and the two VGG-11s (3x32x32: five 2x2 max pools) run by default; the
other depths are `opt_in` and run with SNNC_SNN_ZOO_ALL=1 (skipped otherwise; all of them matched when run so).

Models are built by the builder itself, with random weights; the widths of the transformers are shrunk by
replacing the sizes the builder passes to its class (SMALL: same blocks, patch sizes, heads per stage
structure and neuron settings, fewer channels and blocks), so that each model runs in about a second.
BatchNorm statistics are set from the test input itself (one pass in train mode with momentum=None) and
every BN maps to N(0.8, 1), which makes every layer fire: constructed, not trained. In networks without BN
(`calibrate`: spiking_vgg) each conv and linear gets the same in its weights instead: in that pass, each output
channel's weights and bias are rescaled so that its output on the test input has mean 0.8 and std 1.

The transformers that average over T before their classifier (`head(x.mean(0))`: sdt, qkformer, maxformer)
trace that mean as a `time_mean` (the running mean over T): the last step of snnc's [T, N, classes] output
is SJ's [N, classes]. test_transformer_body_matches_spikingjelly also checks the same modules with the
classifier applied per step, whose mean over T is SJ's output to 1e-5.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import pytest
import torch
import torch.nn as nn

import snnc
from snnc.frontends import trace
from snnc.ir import ops
from snnc.runtime import Interpreter
from tests.zoo.torchvision_stub import import_sj_model

pytestmark = [pytest.mark.spikingjelly,
              pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning",
                                         "ignore::UserWarning")]

PACKAGE = "spikingjelly.activation_based.model"
T, N = 2, 2


@dataclass(frozen=True)
class Ok:
    shape: tuple[int, ...] = (3, 32, 32)
    kwargs: dict[str, Any] = field(default_factory=dict)
    linear_gain: float = 1.0  # Linear weights scaled by this (layers without a BN after them)
    calibrate: bool = False  # every conv/linear output channel to N(0.8, 1) on the test input (_fire)
    opt_in: bool = False  # run only with SNNC_SNN_ZOO_ALL=1 (the larger models: time)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> kwargs replaced, each a case


@dataclass(frozen=True)
class NotANetwork:
    why: str


@dataclass(frozen=True)
class SameAs:
    builder: str  # a builder function of the same module that returns this class (its entry covers both)


@dataclass(frozen=True)
class Elsewhere:
    test_file: str  # the test file that checks it (another branch's, merged by the lead)


N_OWNS = Elsewhere("tests/zoo/test_snn_zoo_extra.py")
PLIF = dict(channels=8, detach_reset=True)  # + spiking_neuron=LIFNode, surrogate_function=ATan() (_build)
DHS = NotANetwork("a SpikeDHS component (the module exports the search-space parts, no network builder)")
# the torchvision-style zoo (spiking_resnet, sew_resnet, spiking_vgg): full widths (their builders take no sizes)
IF = dict(spiking_neuron="IFNode", surrogate_function="ATan", detach_reset=True, num_classes=10)
LIF = dict(spiking_neuron="LIFNode", tau=2.0, surrogate_function="ATan", detach_reset=True, num_classes=10)
CNF = {cnf: dict(cnf=cnf) for cnf in ("ADD", "AND", "IAND")}  # sew_resnet's connect functions, each a case
RES = (3, 16, 16)  # the ResNets reach 1x1 at layer3 from 16x16 (every block still runs): less time
VGG = dict(kwargs=LIF, calibrate=True)
VGG_BN = dict(kwargs=IF, calibrate=True)  # BN after each conv; the classifier's linears calibrated

# module -> constructor -> entry; a module that cannot be imported has one entry under the key None
EXPECTED: dict[str, dict[str | None, object]] = {
    "spikformer": {
        "Spikformer": SameAs("spikformer_cifar10"),
        "spikformer_cifar10": Ok(kwargs=dict(T=T)),
        "spikformer_ti": Ok(kwargs=dict(T=T, img_size_h=32, img_size_w=32, num_classes=10)),
        "spikformer_s": Ok(kwargs=dict(T=T, img_size_h=32, img_size_w=32, num_classes=10)),
        "SpikformerConfig": NotANetwork("a pydantic config of the distributed builder"),
        "SpikformerCIFAR10Config": NotANetwork("a pydantic config of the distributed builder"),
    },
    "spike_driven_transformer": {
        "SpikeDrivenTransformer": SameAs("sdt_8_384"),
        "sdt_8_384": Ok(kwargs=dict(T=T)),
    },
    "qkformer": {
        "QKFormer": SameAs("qkformer_10_384"),
        "qkformer_10_384": Ok(kwargs=dict(T=T)),
    },
    "maxformer": {
        "MaxFormer": SameAs("maxformer_10_384"),
        "maxformer_10_384": Ok(kwargs=dict(T=T)),
        "maxformer_cifar": Ok(kwargs=dict(T=T)),
    },
    "parametric_lif_net": {
        "MNISTNet": Ok((1, 28, 28), PLIF, 8.0), "FashionMNISTNet": Ok((1, 28, 28), PLIF, 8.0),
        "NMNISTNet": Ok((2, 34, 34), PLIF, 8.0), "CIFAR10Net": Ok((3, 32, 32), PLIF, 8.0),
        "CIFAR10DVSNet": Ok((2, 128, 128), PLIF, 8.0), "DVSGestureNet": Ok((2, 128, 128), PLIF, 8.0),
    },
    # helper N's models: their support and their checks against SJ are tests/zoo/test_snn_zoo_extra.py's
    # (branch sj-msresnet-ottt). On this branch: ms_resnet/max_resnet stop at x.mean(0) (a mean over time),
    # att_ms_resnet at aten.transpose in layer1.0.attention, masnn at its T == self.T check, OTTT at OTTTLIFNode.
    "ms_resnet": {n: N_OWNS for n in ("MSResNet", "MaxResNet", "ms_resnet18", "ms_resnet34", "max_resnet18")},
    "masnn": {n: N_OWNS for n in ("MASNN", "masnn_dvs128_gesture", "AttMSResNet", "att_ms_resnet18")},
    "spiking_vggws_ottt": {n: N_OWNS for n in (
        "OTTTSpikingVGG", "ottt_spiking_vggws", "ottt_spiking_vgg11", "ottt_spiking_vgg11_ws", "ottt_spiking_vgg13",
        "ottt_spiking_vgg13_ws", "ottt_spiking_vgg16", "ottt_spiking_vgg16_ws", "ottt_spiking_vgg19",
        "ottt_spiking_vgg19_ws")},
    "snas_net": {"SNASNet": N_OWNS},
    "spike_dhs": {name: DHS for name in ("DSpike", "save_v_LIFNode", "SpikingConv2d", "SpikingLinear",
                                         "SpikingAvgPool2d", "SpikingAdaptiveAvgPool2d",
                                         "SearchSpikingConv2d_stem", "SearchSpikingConv2d_cell")},
    "spiking_resnet": {
        "SpikingResNet": SameAs("spiking_resnet18"),
        "spiking_resnet18": Ok(RES, kwargs=LIF), "spiking_resnet34": Ok(RES, kwargs=LIF),
        "spiking_resnet50": Ok(RES, kwargs=LIF), "spiking_resnet101": Ok(RES, kwargs=LIF, opt_in=True),
        "spiking_resnet152": Ok(RES, kwargs=LIF, opt_in=True),
        "spiking_resnext50_32x4d": Ok(RES, kwargs=LIF), "spiking_resnext101_32x8d": Ok(RES, kwargs=LIF, opt_in=True),
        "spiking_wide_resnet50_2": Ok(RES, kwargs=LIF), "spiking_wide_resnet101_2": Ok(RES, kwargs=LIF, opt_in=True),
    },
    "sew_resnet": {
        "SEWResNet": SameAs("sew_resnet18"),
        "SEWResNet34Config": NotANetwork("a config of the distributed builder (SEWResNet34Builder)"),
        "sew_resnet18": Ok(RES, kwargs=IF, variants=CNF), "sew_resnet34": Ok(RES, kwargs=IF, variants=CNF),
        "sew_resnet50": Ok(RES, kwargs=IF, variants=CNF), "sew_resnet101": Ok(RES, kwargs=IF, variants=CNF, opt_in=True),
        "sew_resnet152": Ok(RES, kwargs=IF, variants=CNF, opt_in=True),
        "sew_resnext50_32x4d": Ok(RES, kwargs={**IF, "cnf": "IAND"}),
        "sew_resnext101_32x8d": Ok(RES, kwargs=IF, variants=CNF, opt_in=True),
        "sew_wide_resnet50_2": Ok(RES, kwargs={**IF, "cnf": "AND"}),
        "sew_wide_resnet101_2": Ok(RES, kwargs=IF, variants=CNF, opt_in=True),
    },
    "spiking_vgg": {
        "SpikingVGG": SameAs("spiking_vgg11"),
        "spiking_vgg11": Ok(**VGG), "spiking_vgg11_bn": Ok(**VGG_BN),
        "spiking_vgg13": Ok(**VGG, opt_in=True), "spiking_vgg13_bn": Ok(**VGG_BN, opt_in=True),
        "spiking_vgg16": Ok(**VGG, opt_in=True), "spiking_vgg16_bn": Ok(**VGG_BN, opt_in=True),
        "spiking_vgg19": Ok(**VGG, opt_in=True), "spiking_vgg19_bn": Ok(**VGG_BN, opt_in=True),
    },
}
OPT_IN = "SNNC_SNN_ZOO_ALL"  # set (to 1) to run the entries marked opt_in too

# builder -> the sizes it passes to its class, replaced (fewer channels and blocks; the same kinds of blocks)
SMALL: dict[str, dict[str, Any]] = {
    "spikformer_cifar10": dict(embed_dims=32, num_heads=4, mlp_ratio=2.0, depths=1),
    "spikformer_ti": dict(embed_dims=32, num_heads=4, mlp_ratio=2.0, depths=1),
    "spikformer_s": dict(embed_dims=48, num_heads=4, mlp_ratio=2.0, depths=1),
    "sdt_8_384": dict(embed_dims=32, num_heads=4, depths=1, mlp_ratio=2.0),
    "qkformer_10_384": dict(embed_dims=32, num_heads=(2, 2, 2), depths=(1, 1, 1), mlp_ratio=2.0),
    "maxformer_10_384": dict(embed_dims=32, depths=(1, 1, 1), mlp_ratio=2.0),
    "maxformer_cifar": dict(embed_dims=32, depths=(1, 1, 1), mlp_ratio=2.0),
}


def _sj():
    pytest.importorskip("spikingjelly.activation_based.neuron")
    from spikingjelly.activation_based import functional, neuron
    return functional, neuron


def _constructors() -> dict[str, dict[str | None, Any]]:
    """module -> {public name in __all__: object} (or {None: the ImportError})."""
    pkg = importlib.import_module(PACKAGE)
    out: dict[str, dict[str | None, Any]] = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        try:
            mod = import_sj_model(f"{PACKAGE}.{info.name}")
        except ImportError as e:
            out[info.name] = {None: e}
            continue
        out[info.name] = {n: getattr(mod, n) for n in getattr(mod, "__all__", ())
                          if isinstance(getattr(mod, n), type) or callable(getattr(mod, n))}
    return out


def test_every_constructor_has_an_entry():
    _sj()
    found = _constructors()
    missing = sorted(f"{m}.{n}" for m, names in found.items() for n in names if n not in EXPECTED.get(m, {}))
    stale = sorted(f"{m}.{n}" for m, names in EXPECTED.items() for n in names if n not in found.get(m, {}))
    assert not missing, f"constructors without an EXPECTED entry: {missing}"
    assert not stale, f"EXPECTED entries for names the package does not have: {stale}"


def _cases(kind) -> list:
    return [pytest.param(m, n, id=f"{m}.{n}") for m, names in EXPECTED.items() for n, e in names.items()
            if isinstance(e, kind)]


def _variants(entry: Ok) -> dict[str, Ok]:
    """variant id ('' when it has none) -> the entry with that variant's kwargs."""
    if not entry.variants:
        return {"": entry}
    return {v: Ok(entry.shape, {**entry.kwargs, **kw}, entry.linear_gain, entry.calibrate, entry.opt_in)
            for v, kw in entry.variants.items()}


def _ok_cases() -> list:
    """(module, name, entry) of every Ok entry and variant; opt_in ones skipped unless SNNC_SNN_ZOO_ALL is set."""
    out = []
    for m, names in EXPECTED.items():
        for n, e in names.items():
            if not isinstance(e, Ok):
                continue
            marks = [pytest.mark.skipif(not os.environ.get(OPT_IN), reason=f"a larger model: set {OPT_IN}=1")
                     ] if e.opt_in else []
            out += [pytest.param(m, n, v, id=f"{m}.{n}" + (f"[{vid}]" if vid else ""), marks=marks)
                    for vid, v in _variants(e).items()]
    return out


def _build(module: str, name: str, kwargs: dict[str, Any]) -> nn.Module:
    """The constructor called as a user would, the sizes it passes to its class shrunk (SMALL)."""
    mod = import_sj_model(f"{PACKAGE}.{module}")
    ctor = getattr(mod, name)
    torch.manual_seed(0)
    if module == "parametric_lif_net":  # these take the neuron and surrogate as required arguments
        from spikingjelly.activation_based import neuron, surrogate
        kwargs = {**kwargs, "spiking_neuron": neuron.LIFNode, "surrogate_function": surrogate.ATan()}
    if isinstance(kwargs.get("spiking_neuron"), str):  # named in the entry: SJ's class, a new surrogate object
        from spikingjelly.activation_based import neuron, surrogate
        kwargs = {**kwargs, "spiking_neuron": getattr(neuron, kwargs["spiking_neuron"])}
        if isinstance(kwargs.get("surrogate_function"), str):
            kwargs["surrogate_function"] = getattr(surrogate, kwargs["surrogate_function"])()
    if name in SMALL:
        cls_name = next(n for n in mod.__all__ if isinstance(getattr(mod, n), type)
                        and issubclass(getattr(mod, n), nn.Module))
        cls = getattr(mod, cls_name)
        with mock.patch.object(mod, cls_name, lambda **kw: cls(**{**kw, **SMALL[name]})):
            return ctor(**kwargs)
    return ctor(**kwargs)


def _calibrate(m: nn.Module, inputs, out: torch.Tensor) -> torch.Tensor:
    """A forward hook of a conv or linear: rescale each output channel's weights and bias so that its output
    on this input has mean 0.8 and std 1 (the BN of _fire, folded into the layer); returns that output."""
    cdim = out.dim() - 3 if isinstance(m, nn.Conv2d) else out.dim() - 1  # [T, N, C, H, W] or [T, N, C]
    if m.bias is None:
        raise AssertionError(f"calibrate needs a bias: {m}")
    dims = [d for d in range(out.dim()) if d != cdim]
    mean, std = out.mean(dims), out.std(dims)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))  # a constant channel: shifted only
    m.weight.div_(std.view(-1, *[1] * (m.weight.dim() - 1)))
    m.bias.copy_((m.bias - mean) / std + 0.8)
    shape = [1] * out.dim()
    shape[cdim] = -1
    return (out - mean.view(shape)) / std.view(shape) + 0.8


def _fire(net: nn.Module, x: torch.Tensor, functional, calibrate: bool = False) -> nn.Module:
    """BN statistics of x itself, then each BN maps to N(0.8, 1): every layer fires (nothing trained).
    calibrate: first (in eval mode, one pass) every conv's and linear's output channels to N(0.8, 1)."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if calibrate:
        hooks = [m.register_forward_hook(_calibrate) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        with torch.no_grad():
            net.eval()
            functional.reset_net(net)
            net(x)
            functional.reset_net(net)
        for h in hooks:
            h.remove()
    with torch.no_grad():
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
            m.weight.fill_(1.0)
            m.bias.fill_(0.8)
        net.train()
        functional.reset_net(net)
        net(x)
        functional.reset_net(net)
    return net.eval()


def _prepared(module: str, name: str, entry) -> tuple[nn.Module, torch.Tensor]:
    functional, _ = _sj()
    net = _build(module, name, entry.kwargs)
    functional.set_step_mode(net, "m")
    x = torch.rand(T, N, *entry.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Linear):
                m.weight.mul_(getattr(entry, "linear_gain", 1.0))
    return _fire(net, x, functional, getattr(entry, "calibrate", False)), x


def _last_if_time_mean(graph, got: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    """A graph whose output comes from a mean over T (time_mean, the running mean) gives [T, N, *]: its last
    step is SJ's x.mean(0) result."""
    if got.dim() == want.dim() + 1:
        assert any(op.kind == "time_mean" for op in graph)
        return got[-1]
    return got


def spikes_match(net: nn.Module, graph, x: torch.Tensor) -> dict[str, float]:
    """Run SJ and the IR; assert every neuron module's spikes are equal and the outputs within 1e-5."""
    functional, neuron = _sj()
    paths = {m: p for p, m in net.named_modules()}
    calls: dict[str, list[torch.Tensor]] = {}
    hooks = [m.register_forward_hook(lambda m, i, o: calls.setdefault(paths[m], []).append(o.detach()))
             for m in net.modules() if isinstance(m, neuron.BaseNode)]
    functional.reset_net(net)
    with torch.no_grad():
        want = net(x)
    for h in hooks:
        h.remove()
    neurons = {op.loc.module_path: op.name for op in graph if isinstance(op, ops.NeuronOp)}
    assert set(neurons) == set(calls) and all(len(v) == 1 for v in calls.values())
    out = Interpreter(graph).run({graph.inputs[0].name: x}, keep=set(neurons.values()))
    for path, value in neurons.items():
        diff = int((out[value] != calls[path][0]).sum())
        assert diff == 0, f"{diff} of {out[value].numel()} spikes of {path} differ"
    got = _last_if_time_mean(graph, out[graph.outputs[0].name], want)
    assert got.shape == want.shape and (got - want).abs().max() <= 1e-5
    return {p: float(v[0].mean()) for p, v in calls.items()}


@pytest.mark.parametrize("module,name,entry", _ok_cases())
def test_model_matches_spikingjelly(module, name, entry, tmp_path):
    net, x = _prepared(module, name, entry)
    g = trace(net, entry.shape)
    rates = spikes_match(net, g, x)
    assert sum(0.01 < r < 0.99 for r in rates.values()) >= 0.8 * len(rates), rates  # most layers are active
    # and the compiled cpu artifact runs it (NCHW, dense convs: the settings under which every value is
    # bit-identical to eager torch)
    with torch.no_grad():
        _sj()[0].reset_net(net)
        want = net(x)
    # passes="": the cpu pipeline's fuse-bn folds BatchNorm into the conv weights, which rounds differently; a
    # potential then at the threshold can flip one spike, and deep nets (sew_resnet50) carry it to the output
    session = snnc.load(snnc.compile(g, "cpu", tmp_path / "art", passes=""), channels_last=False, event_conv=False)
    got = _last_if_time_mean(g, session.run(x), want)
    assert got.shape == want.shape and (got - want).abs().max() <= 1e-5


@pytest.mark.parametrize("module,name", _cases(SameAs))
def test_class_is_what_its_builder_builds(module, name):
    """The builder's checked model is an instance of this class (built on the meta device: no weights)."""
    _sj()
    mod = import_sj_model(f"{PACKAGE}.{module}")
    builder = EXPECTED[module][name].builder
    with torch.device("meta"):
        net = _build(module, builder, next(iter(_variants(EXPECTED[module][builder]).values())).kwargs)
    assert type(net) is getattr(mod, name)


@pytest.mark.parametrize("module,name", _cases(NotANetwork))
def test_name_is_no_network_builder(module, name):
    """A config, a component, or a class that needs a search result: not callable as a network without one."""
    _sj()
    mod = import_sj_model(f"{PACKAGE}.{module}")
    obj = getattr(mod, name)
    if module == "spike_dhs":  # components (neurons, surrogates, layers, search cells); the network is not exported
        assert name in mod.__all__ and "SpikeDHS" not in mod.__all__
    else:
        assert not (isinstance(obj, type) and issubclass(obj, nn.Module))


# ---------------------------------------------------------------- the transformers up to their mean over time
class Body(nn.Module):
    """A transformer's own modules, in its forward's order, with the classifier applied per step instead of
    after the mean over T (head is affine: mean_T(head(x)) = head(mean_T(x)) up to rounding)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        n = self.net
        if hasattr(n, "stage1"):
            for embed, stage in ((n.patch_embed1, n.stage1), (n.patch_embed2, n.stage2), (n.patch_embed3, n.stage3)):
                x = embed(x)
                for block in stage:
                    x = block(x)
        else:
            x = n.patch_embed(x)
            for block in n.blocks:
                x = block(x)
        x = x.flatten(3).mean(-1)
        if hasattr(n, "head_lif"):
            x = n.head_lif(x)
        return n.head(x)


BODIES = [("spike_driven_transformer", "sdt_8_384"), ("qkformer", "qkformer_10_384"),
          ("maxformer", "maxformer_10_384"), ("maxformer", "maxformer_cifar")]


@pytest.mark.parametrize("module,name", [pytest.param(m, n, id=n) for m, n in BODIES])
def test_transformer_body_matches_spikingjelly(module, name):
    functional, _ = _sj()
    net, x = _prepared(module, name, EXPECTED[module][name])
    body = Body(net)
    g = trace(body, (3, 32, 32))
    kinds = {op.kind for op in g}
    assert {"slice", "matmul"} & kinds or "sum" in kinds  # the attention: chunked QKV (or SDT's token sum)
    rates = spikes_match(body, g, x)
    assert sum(0.01 < r < 0.99 for r in rates.values()) >= 0.8 * len(rates), rates
    functional.reset_net(net)
    with torch.no_grad():
        per_step = body(x)
        functional.reset_net(net)
        full = net(x)  # SJ's own forward: head(x.mean(0))
    assert (per_step.mean(0) - full).abs().max() <= 1e-5
