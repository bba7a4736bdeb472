"""Spiking modules for the torch.fx frontend: neurons, step-mode layers and containers.

Two libraries are understood: `snnc.nn` and SpikingJelly's `activation_based`
(only when the user has imported it; it is never a dependency). Neurons are
leaves that become IF/LIF ops with every parameter explicit; containers are
unwrapped into their children; `step_mode` decides which dims the code sees.
"""

from __future__ import annotations

import sys
import warnings
from typing import Iterator

import torch
import torch.fx as fx
import torch.nn as nn

from snnc.core.dynamics import FireCompare, NeuronKind, NeuronParams, reset_from_v_reset
from snnc.core.errors import UnsupportedAttributeError, UnsupportedOpError
from snnc.frontends import source_lines
from snnc.frontends.fx_lowering import STATEFUL_TYPES, _Ctx, lower_children, lowers_module, type_name
from snnc.ir import ops
from snnc.ir.ops import SourceLoc
from snnc.nn import container
from snnc.nn.base import MemoryModule
from snnc.nn.errors import NoNeuronParamsError
from snnc.nn.layer import Dropout
from snnc.nn.neuron import BaseNode, ParametricLIFNode, SignedIFNode

_REGISTERED: set[str] = set()
# Containers whose children run once per time step (the children see [N, *] or [T*N, *]).
PER_STEP_CONTAINERS: list[type] = []
# Containers that run their children in the mode of the container ('s': as is; 'm': per step).
MODE_CONTAINERS: list[type] = []
NEURON_TYPES: list[type] = []
# What torch.export capture (snnc.frontends.torch_capture) keeps whole, as one opaque call: the
# stateful modules (neurons, other memory modules, dropout); it runs the children of these
# per-step containers on [T*N, *] (their stateful children see each step in turn, as in the IR);
# and it refuses these containers as the fx path does.
CAPTURE_OPAQUE: list[type] = []
CAPTURE_PER_STEP: list[type] = []
CAPTURE_REFUSED: list[type] = []
# Modules that drop values at random in training mode and are the identity in eval mode.
DROPOUT_TYPES: list[type] = [nn.modules.dropout._DropoutNd]


# Neuron modules of other SNN libraries, by a base class (module, name), which snnc does not trace: each
# library exports its models to NIR, which snnc reads (docs/nir.md).
FOREIGN_NEURONS: dict[tuple[str, str], tuple[str, str]] = {
    ("snntorch._neurons.neurons", "SpikingNeuron"): ("snnTorch", "snntorch.export_nir.export_to_nir(model, sample)"),
    **{("norse.torch.module.snn", base): ("Norse", "norse.torch.to_nir(model, sample)")
       for base in ("SNNCell", "SNN", "SNNRecurrentCell", "SNNRecurrent")},
    ("sinabs.layers.stateful_layer", "StatefulLayer"): ("sinabs", "sinabs.to_nir(model, sample)"),
}


def refuse_foreign_neurons(model: nn.Module) -> None:
    """One line naming the first neuron module of snnTorch, Norse or sinabs, and the NIR route instead."""
    for path, m in model.named_modules():
        for base in type(m).__mro__:
            known = FOREIGN_NEURONS.get((base.__module__, base.__qualname__))
            if known is not None:
                library, export = known
                raise UnsupportedOpError(
                    f"'{path or type(m).__name__}' ({type_name(type(m))}) is a {library} neuron, which snnc does "
                    "not trace (its state and time loop live in the library's own Python code)",
                    hint=f"export the model to NIR with {export}, then compile or load the .nir file "
                         "(docs/nir.md)")


def register_available() -> None:
    """Register the lowerings of snnc.nn, and of SpikingJelly if the user has imported it."""
    if "snnc.nn" not in _REGISTERED:
        _REGISTERED.add("snnc.nn")
        _try(_register_snnc_nn, "snnc.nn")
    if "spikingjelly" not in _REGISTERED and "spikingjelly.activation_based.neuron" in sys.modules:
        _REGISTERED.add("spikingjelly")
        _try(_register_spikingjelly, "SpikingJelly")


def _try(register, library: str) -> None:
    """Plain ANNs must trace even when a modelling library is missing or of an unexpected version."""
    try:
        register()
    except (ImportError, AttributeError) as e:
        warnings.warn(f"cannot trace {library} modules: {type(e).__name__}: {e}", stacklevel=3)


def neuron_op(name: str, x: str, loc: SourceLoc, p: NeuronParams, state_from: str | None = None) -> ops.NeuronOp:
    """The IR op for neuron parameters `p` (starting from neuron %state_from's final state when given)."""
    common = dict(name=name, inputs=(x,), loc=loc, v_threshold=float(p.v_threshold),
                  reset=ops.reset_of(p.reset, p.v_reset), fire=p.compare, state_from=state_from)
    if p.kind is NeuronKind.IF:
        return ops.IF(**common)
    return ops.LIF(**common, tau=float(p.tau), decay_input=bool(p.decay_input))


def _check_step_mode(ctx: _Ctx, m: nn.Module, loc: SourceLoc) -> None:
    mode = getattr(m, "step_mode", "s")
    if mode == "s" and not ctx.per_step:
        raise UnsupportedAttributeError(
            f"{loc.describe()} is in single-step mode but receives the whole sequence [T, N, *] of a multi-step "
            "network", hint="set step_mode='m' on it (functional.set_step_mode(net, 'm')) or wrap it in a "
                            "MultiStepContainer")
    if mode == "m" and ctx.per_step:
        raise UnsupportedAttributeError(
            f"{loc.describe()} is in multi-step mode but receives one time step [N, *] (it is inside a "
            "single-step network or a per-step container)", hint="set its step_mode to 's'")


def _emit_neuron(ctx: _Ctx, m: nn.Module, node: fx.Node, loc: SourceLoc, p: NeuronParams) -> str:
    _check_step_mode(ctx, m, loc)
    x = ctx.value(node.args[0], node, loc)
    state_from = ctx.stateful_call(m, node, loc, x)  # a module called again continues its state
    name = ctx.emit(neuron_op(ctx.fresh(node.name), x, loc, p, state_from))
    ctx.name_call(m, name)
    return name


def _plif_warning(loc: SourceLoc, tau: float) -> None:
    warnings.warn(f"{loc.describe()}: ParametricLIFNode becomes LIF with its current tau={tau!r}; the module "
                  "multiplies by sigmoid(w) where the IR divides by tau, so membrane potentials may differ "
                  "in the last bit", stacklevel=4)


def _refuse(what: str, hint: str):
    def lower(ctx: _Ctx, m: nn.Module, node: fx.Node, loc: SourceLoc) -> str:
        raise UnsupportedOpError(f"{type_name(type(m))} at '{loc.module_path}' is not supported: {what}",
                                 hint=hint)
    lower.refuses = True
    return lower


def _container(per_step: bool):
    def lower(ctx: _Ctx, m: nn.Module, node: fx.Node, loc: SourceLoc) -> str:
        return lower_children(ctx, m, node, loc, per_step=per_step or getattr(m, "step_mode", "s") == "m")
    return lower


def _identity(ctx: _Ctx, m: nn.Module, node: fx.Node, loc: SourceLoc) -> str:
    return ctx.value(node.args[0], node, loc)  # inference: dropout is the identity


# ---------------------------------------------------------------- snnc.nn
def _register_snnc_nn() -> None:
    @lowers_module(BaseNode)
    def _snnc_neuron(ctx: _Ctx, m: nn.Module, node: fx.Node, loc: SourceLoc) -> str:
        try:
            p = m.neuron_params()
        except NoNeuronParamsError as e:
            raise UnsupportedOpError(f"{type_name(type(m))} at '{loc.module_path}' is not supported: {e.message}",
                                     hint="use IFNode, LIFNode or ParametricLIFNode") from None
        if isinstance(m, ParametricLIFNode):
            _plif_warning(loc, p.tau)
        return _emit_neuron(ctx, m, node, loc, p)

    @lowers_module(SignedIFNode)
    def _signed_if(ctx: _Ctx, m: nn.Module, node: fx.Node, loc: SourceLoc) -> str:
        _check_step_mode(ctx, m, loc)
        x = ctx.value(node.args[0], node, loc)
        if ctx.stateful_call(m, node, loc, x) is not None:  # the IR's signed_if starts from v_init only
            raise UnsupportedOpError(f"{loc.describe()} is called again on a new sequence, continuing its state; "
                                     "the IR's signed_if starts every sequence from v_init",
                                     hint="give each call its own SignedIFNode")
        name = ctx.emit(ops.SignedIF(name=ctx.fresh(node.name), inputs=(x,), loc=loc,
                                     v_threshold=m.v_threshold, v_init=m.v_init))
        ctx.name_call(m, name)
        return name

    _register_library(BaseNode, MemoryModule, Dropout, container)
    NEURON_TYPES.append(SignedIFNode)


# ---------------------------------------------------------------- SpikingJelly
_SJ_DYNAMICS = ("neuronal_charge", "neuronal_fire", "neuronal_reset", "single_step_forward", "multi_step_forward",
                "single_step_functional_forward", "multi_step_functional_forward")


def _register_spikingjelly() -> None:
    from spikingjelly.activation_based import base, layer, neuron

    known = [neuron.ParametricLIFNode, neuron.LIFNode, neuron.IFNode]
    # OTTT's and SLTT's neurons (online learning) run LIFNode's lif_step with the heaviside in eval mode;
    # only training adds a trace (an extra output) and detaches v
    online = tuple(getattr(neuron, n) for n in ("OTTTLIFNode", "SLTTLIFNode") if hasattr(neuron, n))
    known = list(online) + known

    def same_dynamics(m: nn.Module, cls: type) -> bool:
        return all(getattr(type(m), a, None) is getattr(cls, a, None) for a in _SJ_DYNAMICS)

    @lowers_module(neuron.BaseNode)
    def _sj_neuron(ctx: _Ctx, m: nn.Module, node: fx.Node, loc: SourceLoc) -> str:
        cls = next((c for c in known if isinstance(m, c) and same_dynamics(m, c)), None)
        if cls is None:
            raise UnsupportedOpError(f"{type_name(type(m))} at '{loc.module_path}' is not supported: its dynamics "
                                     "are not those of IFNode, LIFNode or ParametricLIFNode",
                                     hint="supported SpikingJelly neurons: IFNode, LIFNode, ParametricLIFNode")
        v_reset = getattr(m, "v_reset", 0.0)
        if isinstance(v_reset, torch.Tensor) or isinstance(m.v_threshold, torch.Tensor):
            raise UnsupportedAttributeError(f"{loc.describe()} has a tensor v_threshold or v_reset",
                                            hint="IR neurons take one float threshold and reset value per layer")
        reset, v_reset = reset_from_v_reset(v_reset)
        common = dict(v_threshold=float(m.v_threshold), reset=reset, v_reset=v_reset,
                      compare=FireCompare.GE)  # SpikingJelly's heaviside fires at equality
        if cls in online and m.training:
            raise UnsupportedAttributeError(f"{loc.describe()} is in training mode, where it also returns its "
                                            "eligibility trace", hint="call model.eval() before tracing")
        if cls is neuron.IFNode:
            p = NeuronParams(NeuronKind.IF, **common)
        else:
            if cls is neuron.ParametricLIFNode:
                tau = float(1.0 / torch.sigmoid(m.w.detach().double()))
                _plif_warning(loc, tau)
            else:
                tau = float(m.tau)
            p = NeuronParams(NeuronKind.LIF, **common, tau=tau, decay_input=bool(m.decay_input))
        return _emit_neuron(ctx, m, node, loc, p)

    _register_library(neuron.BaseNode, base.MemoryModule, layer.Dropout, layer)
    CAPTURE_REFUSED.extend([layer.ElementWiseRecurrentContainer, layer.LinearRecurrentContainer])
    lowers_module(layer.ElementWiseRecurrentContainer, layer.LinearRecurrentContainer)(
        _refuse("recurrent containers are not supported", "unroll the recurrence or remove it"))
    lowers_module(layer.VotingLayer)(_voting)
    ws = [getattr(layer, n) for n in ("WSConv2d", "WSLinear") if hasattr(layer, n)]
    lowers_module(*ws)(_weight_standardized)
    mixing = [getattr(layer, n) for n in ("TemporalWiseAttention", "MultiDimensionalAttention") if hasattr(layer, n)]
    CAPTURE_REFUSED.extend(mixing)
    lowers_module(*mixing)(_mixes_time)


def _weight_standardized(ctx: _Ctx, m: nn.Module, node: fx.Node, loc: SourceLoc) -> str:
    """SpikingJelly's WSConv2d/WSLinear: the weight standardized per output channel (times its gain), folded
    once at trace time from get_weight(); the layer is then a plain Conv2d/Linear."""
    x = ctx.value(node.args[0], node, loc)
    key = (id(m), "standardized_weight")  # a module used twice shares its weight
    if key not in ctx.param_cache:
        with torch.no_grad():
            w = m.get_weight().detach().clone().contiguous()
        ctx.param_cache[key] = ctx.graph.add_param(f"{loc.module_path}.weight", w)
    weight, bias = ctx.param_cache[key], ctx.param(m, "bias", loc.module_path)
    if not isinstance(m, nn.Conv2d):
        return ctx.emit(ops.Linear(name=ctx.fresh(node.name), inputs=(x,), loc=loc, weight=weight, bias=bias))
    if m.padding_mode != "zeros" or isinstance(m.padding, str):
        raise UnsupportedAttributeError(f"{loc.describe()} uses padding={m.padding!r}, "
                                        f"padding_mode={m.padding_mode!r}", hint="use numeric zero padding")
    return ctx.emit(ops.Conv2d(name=ctx.fresh(node.name), inputs=(x,), loc=loc, weight=weight, bias=bias,
                               stride=tuple(m.stride), padding=tuple(m.padding), dilation=tuple(m.dilation),
                               groups=m.groups))


def _mixes_time(ctx: _Ctx | None, m: nn.Module, node: fx.Node | None, loc: SourceLoc) -> str:
    """SpikingJelly's temporal attention (MA-SNN, Att-MS-ResNet): each step is weighted by all T steps."""
    where = source_lines.of_function(type(m).forward)
    raise UnsupportedOpError(
        f"{type_name(type(m))} at '{loc.module_path}' is not supported: it weighs each time step by scores "
        "computed from the whole sequence (its forward pools over the time axis and mixes the T steps in a "
        "layer over time), so its output at step t depends on later steps; snnc's IR runs a network one time "
        "step after the other and cannot represent it",
        hint="remove the temporal attention (SpikingJelly: use_temporal=False still pools over time in the "
             "channel and spatial attention), or run the model in PyTorch").at_source(where)


_mixes_time.refuses = True


def _voting(ctx: _Ctx, m: nn.Module, node: fx.Node, loc: SourceLoc) -> str:
    """SpikingJelly's VotingLayer: avg_pool1d(x.unsqueeze(1), v, v).squeeze(1) over features [F]."""
    x = ctx.value(node.args[0], node, loc)
    feats = ctx.type_of(x).features
    v = int(m.voting_size)
    if len(feats) != 1 or feats[0] < v:
        raise UnsupportedAttributeError(f"{loc.describe()} votes over features {list(feats)} in groups of {v}",
                                        hint="VotingLayer takes [N, C * voting_size] (flatten before it)")
    row = ctx.emit(ops.Reshape(name=ctx.fresh(f"{node.name}_row"), inputs=(x,), loc=loc, shape=(1, feats[0])))
    pooled = ctx.emit(ops.AvgPool1d(name=ctx.fresh(f"{node.name}_pool"), inputs=(row,), loc=loc, kernel_size=v,
                                    stride=v))
    return ctx.emit(ops.Reshape(name=ctx.fresh(node.name), inputs=(pooled,), loc=loc, shape=(feats[0] // v,)))


def _register_library(neuron_base: type, memory_module: type, dropout: type, containers) -> None:
    """What snnc.nn and SpikingJelly share: neurons, the step-mode containers (from the
    `containers` module), dropout as identity, and refusals of time-last containers and of
    unknown stateful modules (lowerings are found along the MRO, so known subclasses win)."""
    NEURON_TYPES.append(neuron_base)
    STATEFUL_TYPES.extend([neuron_base, memory_module])
    CAPTURE_OPAQUE.extend([memory_module, dropout])
    DROPOUT_TYPES.append(dropout)
    CAPTURE_PER_STEP.extend([containers.MultiStepContainer, containers.StepModeContainer])
    CAPTURE_REFUSED.extend([containers.TLastMultiStepContainer, containers.TLastSeqToANNContainer])
    PER_STEP_CONTAINERS.extend([containers.MultiStepContainer, containers.SeqToANNContainer])
    MODE_CONTAINERS.append(containers.StepModeContainer)
    lowers_module(containers.MultiStepContainer, containers.SeqToANNContainer)(_container(True))
    lowers_module(containers.StepModeContainer)(_container(False))
    lowers_module(dropout)(_identity)
    lowers_module(containers.TLastMultiStepContainer, containers.TLastSeqToANNContainer)(
        _refuse("time-last [N, *, T] sequences are not traced", "use the time-first containers "
                "(MultiStepContainer, SeqToANNContainer) with inputs [T, N, *]"))
    lowers_module(memory_module)(_refuse("stateful module without a known lowering",
                                         "supported neurons: IFNode, LIFNode, ParametricLIFNode"))


# ---------------------------------------------------------------- model-level queries
def _top_level(model: nn.Module) -> Iterator[nn.Module]:
    """The model's modules, not descending into containers (whose children are per-step by design)."""
    stack = [model]
    containers = tuple(PER_STEP_CONTAINERS + MODE_CONTAINERS)
    while stack:
        m = stack.pop()
        yield m
        if not (containers and isinstance(m, containers)):
            stack.extend(m.children())


def model_step_mode(model: nn.Module) -> str | None:
    """'m' if any top-level step-mode module is multi-step, 's' if all are single-step, None if it has none."""
    modes = {str(getattr(m, "step_mode")) for m in _top_level(model)
             if hasattr(m, "step_mode") and isinstance(getattr(m, "step_mode"), str)}
    if "m" in modes:
        return "m"
    return "s" if "s" in modes else None


def has_neurons(model: nn.Module) -> bool:
    kinds = tuple(NEURON_TYPES)
    return bool(kinds) and any(isinstance(m, kinds) for m in model.modules())

