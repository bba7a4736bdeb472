"""The NetX hdf5 format (lava-dl 0.6), written with h5py, read through snnc.core.safety.open_hdf5 (bounded).

Layout, as `lava.lib.dl.netx.hdf5.Network` reads it (LAVA_NETX.md section 3):

    /layer/<i>/type       b'input' | b'conv' | b'dense' | b'dense_rec' | b'flatten'   (S10, shape (1,))
    /layer/<i>/shape      output shape in torch order: (C, H, W) or (n,)
    /layer/<i>/weight     integers; conv (out, in/groups, kH, kW) as torch Conv2d.weight (netx flips it
                          for Lava's true convolution), dense (out, in)
    /layer/<i>/bias       optional integer mantissa per channel (conv) or neuron (dense); Loihi adds bias << 6
    /layer/<i>/weight_rec dense_rec only: (out, out) recurrent weights; the layer's spikes at step t reach its
                          own neurons at t + 1 (netx's RecurrentDense: a second dense synapse from s_out to a_in)
    /layer/<i>/delay      optional axonal delay of the layer's output spikes, in steps (0..62): a scalar or one
                          per neuron (slayer's axonal delay; netx realises it as a synaptic delay)
    /layer/<i>/delay_shift  optional flag slayer may record; netx ignores it (its synapse always adds the one
                          step of latency that slayer's delay_shift models), and so does snnc
    /layer/<i>/stride, padding, dilation (H, W), groups         conv only
    /layer/<i>/neuron/{type, iDecay, vDecay, vThMant, refDelay, gradedSpike}
    /simulation/{Ts, tSample}                                   ignored by netx

Layers run in sequence; a `flatten` marks the next dense as reading its input in
(C, H, W) order. Root attributes (snnc_*) record the host-side input scaling,
which netx never reads.

The codec is read by the loader (snnc.frontends.loader), the Loihi emulator
(snnc.runtime.loihi) and the lava target (snnc.backends.lava), which makes the
quantized graph that `network_from_graph` turns into a network.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch

from snnc.core.errors import LoweringError, MalformedFileError, SnncError, UnsupportedAttributeError
from snnc.core.fileio import refuse_lfs_pointer
from snnc.core.safety import H5Group, open_hdf5
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.ops import LoihiInfo
from snnc.ir.types import DType, Layout, TensorType
from snnc.ir.verify import verify

READABLE = ("input", "conv", "dense", "dense_rec", "flatten")
MAX_DELAY = 62  # Loihi's largest synaptic delay, as netx clips it
SYNAPTIC = ("conv", "dense", "dense_rec")
DEFAULT_DENSE_NEURON = (0, 4096, 1 << 17)  # netx's neuron for a dense without one: a non-spiking integrator
# What a file may hold (Loihi's registers): decays are 12-bit fractions of 4096, vThMant a 17-bit mantissa
# (2^17 is netx's own "never fires"), weights and biases fit the 24-bit accumulator (so they are exact in
# float32), graded input messages have at most 24 bits.
_NEURON_RANGES = {"iDecay": (0, 4096), "vDecay": (0, 4096), "vThMant": (0, 1 << 17)}
_VALUE_MAX = (1 << 24) - 1
_MESSAGE_BITS_MAX = 24


@dataclass(frozen=True)
class NetxNeuron:
    """A CUBA neuron in Loihi integers: spikes when v > v_th_mant << 6, then v = 0."""

    i_decay: int
    v_decay: int
    v_th_mant: int
    type: str = "CUBA"
    ref_delay: int = 1
    graded_spike: bool = False
    sigma_output: bool = False  # SDNN only: the layer sends its decoded sigma (netx's Sigma process)

    @property
    def sdnn(self) -> bool:
        """A sigma-delta neuron (snnc.core.sigma_delta): graded messages, no decays."""
        return self.type == "SDNN"


@dataclass
class NetxLayer:
    """One /layer/<i> group. Shapes and weights in torch order (C, H, W)."""

    type: str
    shape: tuple[int, ...]
    neuron: NetxNeuron | None = None
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    name: str = ""
    weight_rec: np.ndarray | None = None  # dense_rec: (out, out), W_rec s[t - 1] joins the synaptic input
    delay: np.ndarray | None = None  # axonal delay of the output spikes in steps: shape (1,) or one per neuron
    out_name: str = ""  # graph -> network only: the value that is this layer's output
    meta_rec: tuple = ()  # graph -> network only: (recurrent linear's name, its recur op)


@dataclass
class NetxNetwork:
    """A NetX network plus how the host feeds it (netx itself does not record the latter)."""

    layers: list[NetxLayer]
    input_shape: tuple[int, ...]
    input_message_bits: int = 0  # 0: binary spikes into the first synapse; > 0: graded integers
    input_scale: float = 1.0  # the host sends round(x * input_scale)
    time_steps: int | None = None
    name: str = "net"
    meta: dict = field(default_factory=dict)

    @property
    def synaptic_layers(self) -> int:
        """Layers with a synapse; each delays spikes by one time step in Lava."""
        return sum(lay.type in SYNAPTIC for lay in self.layers)

    @property
    def input_neuron(self) -> bool:
        return bool(self.layers) and self.layers[0].type == "input" and self.layers[0].neuron is not None

    @property
    def output_shape(self) -> tuple[int, ...]:
        return next(lay.shape for lay in reversed(self.layers) if lay.type != "flatten")


# -- graph -> network --------------------------------------------------------------
def _ints(t: torch.Tensor, what: str) -> np.ndarray:
    a = t.detach().double().numpy()
    if not np.array_equal(a, np.round(a)):
        raise LoweringError(f"{what} is not on Loihi's integer grid", hint="run the quantize-loihi pass first")
    return a.astype(np.int64)


def _neuron(op: ops.CubaLIF) -> NetxNeuron:
    vals = (op.current_decay * 4096, op.voltage_decay * 4096, op.v_threshold)
    if any(v != round(v) for v in vals) or op.fire.value != "gt":
        raise LoweringError(f"{op.where()} is not quantized for Loihi", hint="run the quantize-loihi pass first")
    return NetxNeuron(int(vals[0]), int(vals[1]), int(vals[2]))


def _sdnn_neuron(graph: Graph, op: ops.SigmaDelta) -> tuple[NetxNeuron, np.ndarray | None]:
    """The NetX SDNN neuron (and the layer's bias mantissa) of a SigmaDelta op on netx's grid."""
    if (op.spike_exp, op.state_exp) != (6, 6) or op.activation != "relu":
        raise LoweringError(f"{op.where()}: netx runs sigma-delta neurons with spike_exp = state_exp = 6 and ReLU "
                            f"only, this one has {op.spike_exp}, {op.state_exp}, {op.activation}")
    th = op.threshold / _SD_SCALE
    bias = None
    if op.bias is not None:
        b = graph.params[op.bias].detach().double().numpy() / _SD_SCALE
        if not np.array_equal(b, np.round(b)):
            raise LoweringError(f"{op.where()}: its bias is not a whole multiple of 2^12 (netx's bias << 12)")
        bias = b.astype(np.int64)
    if th != round(th):
        raise LoweringError(f"{op.where()}: threshold {op.threshold} is not a whole multiple of 2^12 "
                            "(netx's vThMant << 12)")
    return NetxNeuron(0, 0, int(th), "SDNN", 1, True, sigma_output=op.mode == "sigma"), bias


def network_from_graph(graph: Graph) -> NetxNetwork:
    """The NetX layers of a graph quantized by quantize-loihi (snnc.backends.lava)."""
    info = LoihiInfo.of(graph)
    if not info.quantized:
        raise LoweringError(f"graph {graph.name} is not quantized for Loihi", hint="run the quantize-loihi pass")
    types = graph.types
    inp = graph.inputs[0]
    in_shape = tuple(inp.type.features)
    layers = [NetxLayer("input", in_shape, name=inp.name)]
    pending_synapse: NetxLayer | None = None
    pending_out = ""  # the value the pending synapse's neuron must read (the synapse, or its sum with W_rec)
    recurs = {op.name: op for op in graph.back_edges()}
    for op in graph:
        if isinstance(op, (ops.Input, ops.Output, ops.Recur)):
            continue
        if isinstance(op, ops.Linear) and op.inputs[0] in recurs:  # dense_rec: W_rec s[t - 1] of its own neurons
            if pending_synapse is None or pending_synapse.type != "dense" or pending_synapse.weight_rec is not None:
                raise LoweringError(f"{op.where()} reads a recurrent edge but does not follow a linear synapse",
                                    hint="NetX holds recurrence only as dense_rec: linear + linear(recur) -> add -> "
                                         "cuba_lif")
            if op.bias is not None:
                raise LoweringError(f"{op.where()}: a recurrent synapse with a bias has no NetX layer")
            pending_synapse.weight_rec = _ints(graph.params[op.weight], f"{op.where()} weight")
            pending_synapse.type = "dense_rec"
            pending_synapse.meta_rec = (op.name, recurs[op.inputs[0]])
            continue
        if isinstance(op, ops.Add) and pending_synapse is not None and pending_synapse.type == "dense_rec" \
                and sorted(op.inputs) == sorted((pending_synapse.name, pending_synapse.meta_rec[0])):
            pending_out = op.name
            continue
        if isinstance(op, ops.Delay):
            if not layers or layers[-1].type != "dense" or layers[-1].out_name != op.inputs[0]:
                raise LoweringError(f"{op.where()} does not follow the neuron of a dense layer", hint="NetX holds "
                                    "axonal delays per dense layer, on the neurons' output")
            d = np.full(layers[-1].shape if layers[-1].type != "input" else in_shape, op.steps, dtype=np.int64)
            if op.delays is not None:
                d = np.broadcast_to(_ints(graph.params[op.delays], f"{op.where()} delays"), d.shape).copy()
            if (d > MAX_DELAY).any():
                raise LoweringError(f"{op.where()}: a delay of {int(d.max())} steps is above Loihi's {MAX_DELAY}")
            layers[-1].delay = d.reshape(-1) if (d != d.reshape(-1)[0]).any() else d.reshape(-1)[:1]
            layers[-1].out_name = op.name
            continue
        if isinstance(op, ops.Flatten):
            layers.append(NetxLayer("flatten", tuple(types[op.name].features), name=op.name))
        elif isinstance(op, ops.Conv2d):
            pending_synapse = NetxLayer(
                "conv", tuple(types[op.name].features), weight=_ints(graph.params[op.weight], f"{op.where()} weight"),
                bias=None if op.bias is None else _ints(graph.params[op.bias], f"{op.where()} bias"),
                stride=op.stride, padding=op.padding, dilation=op.dilation, groups=op.groups, name=op.name)
        elif isinstance(op, ops.Linear):
            pending_synapse = NetxLayer(
                "dense", tuple(types[op.name].features), weight=_ints(graph.params[op.weight], f"{op.where()} weight"),
                bias=None if op.bias is None else _ints(graph.params[op.bias], f"{op.where()} bias"), name=op.name)
        elif isinstance(op, ops.SigmaDelta):
            neuron, bias = _sdnn_neuron(graph, op)
            if op.inputs[0] == inp.name and op.mode == "delta":
                layers[0].neuron = neuron
            elif op.mode == "delta" or pending_synapse is None or pending_synapse.name != op.inputs[0]:
                raise LoweringError(f"{op.where()} does not follow a conv2d/linear synapse (or, as delta, the input)")
            else:
                pending_synapse.neuron, pending_synapse.bias = neuron, bias
                layers.append(pending_synapse)
                pending_synapse = None
        elif isinstance(op, ops.CubaLIF):
            if op.inputs[0] == inp.name:
                layers[0].neuron = _neuron(op)
                layers[0].out_name = op.name
            else:
                if pending_synapse is None or (pending_out or pending_synapse.name) != op.inputs[0]:
                    raise LoweringError(f"{op.where()} does not follow a conv2d/linear synapse")
                if pending_synapse.type == "dense_rec" and pending_synapse.meta_rec[1].inputs[0] != op.name:
                    raise LoweringError(f"{pending_synapse.meta_rec[1].where()} must read %{op.name}, the "
                                        "neurons of its dense_rec layer")
                if pending_synapse.type == "dense_rec" and not pending_out:
                    raise LoweringError(f"{op.where()}: the recurrent synapse of its dense_rec layer is not added "
                                        "to its input")
                pending_synapse.neuron = _neuron(op)
                pending_synapse.out_name = op.name
                layers.append(pending_synapse)
                pending_synapse, pending_out = None, ""
        else:
            raise LoweringError(f"{op.where()} has no NetX layer", hint="run the quantize-loihi pass first")
    return NetxNetwork(layers, in_shape, int(info.input_message_bits or 0),
                       float(1.0 if info.input_scale is None else info.input_scale), name=graph.name)


# -- writing ----------------------------------------------------------------------
def write_netx(net: NetxNetwork, path: str | os.PathLike, time_steps: int | None = None) -> Path:
    """Write `net` as a NetX hdf5 file at `path` (not atomic; callers write into a temporary folder)."""
    path = Path(path)
    with h5py.File(path, "w", track_order=True) as f:
        f.attrs["snnc_format"] = "netx"
        f.attrs["snnc_input_scale"] = float(net.input_scale)
        f.attrs["snnc_input_message_bits"] = int(net.input_message_bits)
        sim = f.create_group("simulation")
        sim.create_dataset("Ts", data=1)
        sim.create_dataset("tSample", data=int(time_steps or net.time_steps or 0))
        group = f.create_group("layer", track_order=True)
        for i, lay in enumerate(net.layers):
            _write_layer(group.create_group(str(i)), lay)
    return path


def _write_layer(h: h5py.Group, lay: NetxLayer) -> None:
    h.create_dataset("type", (1,), "S10", [lay.type.encode("ascii")])
    h.create_dataset("shape", data=np.array(lay.shape, dtype=np.int64))
    if lay.weight is not None:
        h.create_dataset("weight", data=lay.weight.astype(np.float32))  # integer values, float like slayer
    if lay.bias is not None:
        h.create_dataset("bias", data=lay.bias.astype(np.float32))
    if lay.weight_rec is not None:
        h.create_dataset("weight_rec", data=lay.weight_rec.astype(np.float32))
    if lay.delay is not None:
        h.create_dataset("delay", data=lay.delay.astype(np.float32))  # float32 like slayer's export
    if lay.type == "conv":
        h.create_dataset("stride", data=np.array(lay.stride, dtype=np.int64))
        h.create_dataset("padding", data=np.array(lay.padding, dtype=np.int64))
        h.create_dataset("dilation", data=np.array(lay.dilation, dtype=np.int64))
        h.create_dataset("groups", data=np.int64(lay.groups))
    if lay.neuron is not None and lay.neuron.sdnn:
        _write_sdnn_neuron(h, lay.neuron)
    elif lay.neuron is not None:
        n = lay.neuron
        h.create_dataset("neuron/type", data=n.type)
        for key, value in (("iDecay", n.i_decay), ("vDecay", n.v_decay), ("vThMant", n.v_th_mant),
                           ("refDelay", n.ref_delay)):
            h.create_dataset(f"neuron/{key}", data=np.int64(value))
        h.create_dataset("neuron/gradedSpike", data=bool(n.graded_spike))


def _write_sdnn_neuron(h: h5py.Group, n: NetxNeuron) -> None:
    """An SDNN neuron as slayer's sigma-delta blocks write it (netx reads vThMant and sigma_output)."""
    h.create_dataset("neuron/type", data="SDNN")
    h.create_dataset("neuron/activation", data="relu")
    h.create_dataset("neuron/vThMant", data=np.int64(n.v_th_mant))
    if n.sigma_output:
        h.create_dataset("neuron/sigma_output", data=True)


# -- reading ----------------------------------------------------------------------
def _str(v) -> str:
    v = v[()]
    if isinstance(v, np.ndarray):
        v = v.reshape(-1)[0]
    return v.decode("ascii") if isinstance(v, bytes) else str(v)


def _pair(v, name: str, low: int) -> tuple[int, int]:
    a = _integers(v, name, 1 << 31).reshape(-1)
    if a.size not in (1, 2) or (a < low).any():
        raise MalformedFileError(f"{name} must be a scalar or (H, W) of integers >= {low}, got {a.tolist()[:4]}")
    return (int(a[0]), int(a[0])) if a.size == 1 else (int(a[0]), int(a[1]))


def _integers(v, name: str, bound: int) -> np.ndarray:
    """The dataset's numbers truncated to int64 (as netx reads them); refused if not finite numbers within +-bound."""
    a = np.asarray(v[()])
    if a.dtype.kind not in "biuf":
        raise MalformedFileError(f"{name} holds {a.dtype} values, not numbers")
    if a.size and not (np.isfinite(a).all() and np.abs(a).max() <= bound):
        raise MalformedFileError(f"{name} holds values outside +-{bound} (or NaN/Inf), e.g. "
                                 f"{a.reshape(-1)[~(np.abs(a.reshape(-1)) <= bound)][:1].tolist()}")
    return a.astype(np.int64)


def _number(v, name: str) -> float:
    """A scalar attribute or dataset as a float; MalformedFileError when it is not one number."""
    a = np.asarray(v)
    if a.size != 1 or a.dtype.kind not in "biuf":
        raise MalformedFileError(f"{name} is not a number: {str(v)[:40]}")
    return float(a.reshape(-1)[0])


def read_network(path: str | os.PathLike) -> NetxNetwork:
    """Parse a NetX hdf5 file with netx 0.6's reading rules (weights truncated to int, shapes in C,H,W)."""
    path = Path(path)
    refuse_lfs_pointer(path)
    with open_hdf5(path, "NetX") as f:  # no links or external storage into other files, no oversized claims
        if "layer" not in f:
            raise MalformedFileError(f"{path}: no /layer group, so not a NetX network")
        group = f["layer"]
        n = len(group)
        missing = [str(i) for i in range(n) if str(i) not in group]
        if missing:
            raise MalformedFileError(f"{path}: /layer must hold 0..{n - 1}; missing {', '.join(missing)}")
        try:
            layers = [_read_layer(group[str(i)], f"{path}:/layer/{i}") for i in range(n)]
        except (ValueError, TypeError, IndexError, KeyError, AttributeError) as e:  # a reshape, a group for a dataset
            raise MalformedFileError(f"{path}: a layer is damaged: {type(e).__name__}: "
                                     f"{(str(e).splitlines() or [''])[0]}") from None
        scale = _number(f.attrs.get("snnc_input_scale", 1.0), f"{path}: attribute snnc_input_scale")
        bits = _number(f.attrs.get("snnc_input_message_bits", 0), f"{path}: attribute snnc_input_message_bits")
        t = _number(f["simulation/tSample"][()], f"{path}:/simulation/tSample") if "simulation/tSample" in f else 0
    if not (math.isfinite(scale) and scale > 0):
        raise MalformedFileError(f"{path}: input scale {scale} is not a positive number")
    if not (bits in range(_MESSAGE_BITS_MAX + 1) and math.isfinite(t) and t == int(t) and t >= 0):
        raise MalformedFileError(f"{path}: input message bits {bits} (0..{_MESSAGE_BITS_MAX}) or tSample {t} "
                                 "(a count of steps) is out of range")
    if not layers:
        raise MalformedFileError(f"{path}: the network has no layers")
    if layers[0].type == "input":
        in_shape = layers[0].shape
    elif layers[0].type in ("dense", "dense_rec"):
        in_shape = (int(layers[0].weight.shape[1]),)
    else:
        raise MalformedFileError(f"{path}: layer 0 is '{layers[0].type}'; without an input layer netx cannot "
                                 "infer the input shape")
    net = NetxNetwork(layers, tuple(in_shape), int(bits), float(scale), int(t) or None, name=path.stem)
    _check_shapes(net, path)
    return net


def _check_shapes(net: NetxNetwork, path: Path) -> None:
    """Every layer's shape must be what its synapse makes of the previous one (the emulator trusts them)."""
    try:
        graph = verify(network_to_graph(net))
    except SnncError:
        raise
    except Exception as e:  # noqa: BLE001 - weights that do not reshape, a parameter an op refuses
        raise MalformedFileError(f"{path}: the layers do not fit together: {type(e).__name__}: "
                                 f"{(str(e).splitlines() or [''])[0]}") from None
    for i, lay in enumerate(net.layers):
        name = f"layer{i}"
        if lay.type in SYNAPTIC and tuple(graph.types[name].features) != tuple(lay.shape):
            raise MalformedFileError(f"{path}:/layer/{i}: shape {list(lay.shape)} does not match what its "
                                     f"{lay.type} synapse makes, {list(graph.types[name].features)}")


# The keys of a NetX layer that snnc reads (or knows to be redundant: the channel/feature counts and the
# kernel size are the weight's shape; an all-zero 'delay' is none; netx ignores 'delay_shift').
_LAYER_KEYS = frozenset({"type", "shape", "neuron", "weight", "bias", "inFeatures", "outFeatures", "inChannels",
                         "outChannels", "kernelSize", "stride", "padding", "dilation", "groups", "delay",
                         "weight_rec", "delay_shift"})


def _read_layer(h: H5Group, where: str) -> NetxLayer:
    if "type" not in h:
        raise MalformedFileError(f"{where}: no 'type'")
    kind = _str(h["type"])
    if kind not in READABLE:
        raise MalformedFileError(f"{where}: layer type '{kind}' is not read by netx 0.6 (it reads "
                                 f"{', '.join(READABLE)})", hint="pool/average/concat raise NotImplementedError in "
                                 "netx; lower pooling into the next synapse")
    shape = tuple(int(s) for s in _integers(h["shape"], f"{where}/shape", 1 << 31).reshape(-1)) if "shape" in h else ()
    if any(d < 1 for d in shape):
        raise MalformedFileError(f"{where}: shape {list(shape)} has a dimension below 1")
    unknown = sorted(set(h) - _LAYER_KEYS)
    if unknown:  # never dropped silently: each changes what the layer computes, or may
        raise UnsupportedAttributeError(f"{where}: snnc does not model {', '.join(map(repr, unknown))} of a NetX "
                                        f"{kind} layer", hint="it reads " + ", ".join(sorted(_LAYER_KEYS)))
    lay = NetxLayer(kind, shape, name=h.name.rsplit("/", 1)[-1])
    if "delay" in h:
        lay.delay = _read_delay(h["delay"], f"{where}/delay", shape)
        if lay.delay is not None and kind != "dense":  # LAVA_NETX.md: netx 0.6 reads it on dense layers
            raise UnsupportedAttributeError(f"{where}: an axonal 'delay' on a {kind} layer is not modelled",
                                            hint="snnc reads the delays of dense layers, as netx 0.6 does")
    if "neuron" in h:
        lay.neuron = _read_neuron(h["neuron"], where)
    if "weight" in h:
        lay.weight = _integers(h["weight"], f"{where}/weight", _VALUE_MAX)
    if "bias" in h:
        lay.bias = _integers(h["bias"], f"{where}/bias", _VALUE_MAX)
    if "weight_rec" in h:
        if kind != "dense_rec":
            raise UnsupportedAttributeError(f"{where}: 'weight_rec' belongs to a dense_rec layer, not to {kind}")
        lay.weight_rec = _integers(h["weight_rec"], f"{where}/weight_rec", _VALUE_MAX)
    if kind in ("dense", "dense_rec"):
        if lay.weight is None:
            raise MalformedFileError(f"{where}: {kind} layer without weight")
        n_out = int(np.prod(shape))
        lay.weight = lay.weight.reshape(n_out, -1)
        lay.shape = (n_out,)
        if kind == "dense_rec":
            if lay.weight_rec is None or lay.weight_rec.size != n_out * n_out:
                raise MalformedFileError(f"{where}: a dense_rec layer needs 'weight_rec' of shape ({n_out}, {n_out})"
                                         + ("" if lay.weight_rec is None else f", got {list(lay.weight_rec.shape)}"))
            lay.weight_rec = lay.weight_rec.reshape(n_out, n_out)
        if lay.neuron is None:
            lay.neuron = NetxNeuron(*DEFAULT_DENSE_NEURON)
    elif kind == "conv":
        if lay.weight is None or lay.neuron is None:
            raise MalformedFileError(f"{where}: conv layer needs 'weight' and 'neuron'")
        lay.weight = lay.weight.reshape(lay.weight.shape[:4])
        lay.stride, lay.padding = _pair(h["stride"], f"{where}/stride", 1), _pair(h["padding"], f"{where}/padding", 0)
        lay.dilation = _pair(h["dilation"], f"{where}/dilation", 1)
        lay.groups = int(_integers(h["groups"], f"{where}/groups", 1 << 31).reshape(-1)[0])
        if lay.groups < 1:
            raise MalformedFileError(f"{where}/groups is {lay.groups}, below 1")
        if lay.bias is not None and lay.bias.ndim == 3:  # a full bias is stored in Lava's (W, H, C) order
            lay.bias = lay.bias.transpose(2, 1, 0)
    return lay


def _read_delay(v, where: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """The axonal delay in whole steps, (1,) or one per neuron (flattened); None when all zero."""
    a = np.asarray(v[()])
    if a.dtype.kind not in "biuf" or not np.isfinite(a).all():
        raise MalformedFileError(f"{where} holds {a.dtype} values, not numbers")
    a = a.reshape(-1)
    if not np.array_equal(a, np.round(a)) or (a < 0).any() or (a > MAX_DELAY).any():
        raise MalformedFileError(f"{where}: delays must be whole steps in 0..{MAX_DELAY} (Loihi's range), got "
                                 f"{a.min()}..{a.max()}")
    if not a.any():  # no delay, however many zeros
        return None
    n = int(np.prod(shape)) if shape else a.size
    if a.size not in (1, n):
        raise MalformedFileError(f"{where}: {a.size} delays for a layer of {n} neurons (one, or one per neuron)")
    return a.astype(np.int64)


def _read_neuron(h: H5Group, where: str) -> NetxNeuron:
    kind = _str(h["type"]) if "type" in h else "?"
    if kind == "SDNN":
        return _read_sdnn_neuron(h, where)
    if kind not in ("CUBA", "LOIHI"):
        raise MalformedFileError(f"{where}/neuron: neuron type '{kind}' is not supported by snnc (CUBA/LOIHI only)")
    if "messageBits" in h:
        raise MalformedFileError(f"{where}/neuron: 'messageBits' makes netx 0.6 fail (it reads it as a group)")
    def get(key: str, default=None):
        return int(_integers(h[key], f"{where}/neuron/{key}", 1 << 31).reshape(-1)[0]) if key in h else default

    for key, (low, high) in _NEURON_RANGES.items():
        if key not in h:
            raise MalformedFileError(f"{where}/neuron: missing {key}")
        if not low <= get(key) <= high:
            raise MalformedFileError(f"{where}/neuron/{key} is {get(key)}, outside Loihi's range {low}..{high}")
    return NetxNeuron(get("iDecay"), get("vDecay"), get("vThMant"), kind, get("refDelay", 1),
                      bool(get("gradedSpike", 0)))


# What netx 0.6 reads of an SDNN neuron (get_neuron_params): vThMant, and whether 'sigma_output' exists;
# 'activation' is ignored there (SigmaDelta runs ReLU), so snnc accepts only 'relu'.
_SDNN_KEYS = frozenset({"type", "vThMant", "activation", "sigma_output", "gradedSpike", "refDelay"})


def _read_sdnn_neuron(h: H5Group, where: str) -> NetxNeuron:
    """A sigma-delta neuron: vThMant (the delta threshold, << 12 in Lava's state units), sigma_output."""
    unknown = sorted(set(h) - _SDNN_KEYS)
    if unknown:  # messageBits makes netx 0.6 fail; anything else would be dropped
        raise UnsupportedAttributeError(f"{where}/neuron: snnc does not model {', '.join(map(repr, unknown))} of "
                                        "an SDNN neuron", hint="it reads " + ", ".join(sorted(_SDNN_KEYS)))
    activation = _str(h["activation"]).lower() if "activation" in h else "relu"
    if activation != "relu":
        raise UnsupportedAttributeError(f"{where}/neuron: SDNN activation '{activation}': netx 0.6 runs every "
                                        "sigma-delta neuron with ReLU whatever this field says, so snnc refuses it "
                                        "rather than run a different function")
    if "vThMant" not in h:
        raise MalformedFileError(f"{where}/neuron: an SDNN neuron without vThMant")
    th = int(_integers(h["vThMant"], f"{where}/neuron/vThMant", 1 << 31).reshape(-1)[0])
    if not 0 <= th <= _NEURON_RANGES["vThMant"][1]:
        raise MalformedFileError(f"{where}/neuron/vThMant is {th}, outside 0..{_NEURON_RANGES['vThMant'][1]}")
    return NetxNeuron(0, 0, th, "SDNN", 1, True, sigma_output="sigma_output" in h)


# -- network -> graph -------------------------------------------------------------
def _cuba(name: str, src: str, n: NetxNeuron) -> ops.CubaLIF:
    return ops.CubaLIF(name=name, inputs=(src,), v_threshold=float(n.v_th_mant),
                       current_decay=min(max(n.i_decay, 0), 4096) / 4096, voltage_decay=min(max(n.v_decay, 0), 4096) / 4096)


_SD_SCALE = 1 << 12  # netx's sigma-delta state units: spike_exp + state_exp = 6 + 6 bits


def _neuron_op(g: Graph, name: str, src: str, lay: NetxLayer, input_layer: bool = False) -> ops.OpBase:
    """The IR neuron of a NetX layer: CubaLIF, or SigmaDelta (threshold and bias in Lava's state units)."""
    n = lay.neuron
    if not n.sdnn:
        return _cuba(name, src, n)
    if n.sigma_output and lay.bias is not None:
        raise MalformedFileError(f"NetX layer {lay.name}: a sigma_output (Sigma) layer has no bias in netx; "
                                 "this one has one")
    bias = None
    if lay.bias is not None and not input_layer:
        b = lay.bias.reshape(-1) if lay.bias.size == lay.shape[0] else lay.bias.reshape(lay.shape)
        bias = g.add_param(f"{name}.bias", torch.from_numpy((b * _SD_SCALE).astype(np.float32)))
    mode = "delta" if input_layer else ("sigma" if n.sigma_output else "sigma_delta")
    return ops.SigmaDelta(name=name, inputs=(src,), mode=mode, threshold=float(n.v_th_mant * _SD_SCALE), bias=bias)


def network_to_graph(net: NetxNetwork) -> Graph:
    """The IR graph of a NetX network: integer weights, CubaLIF neurons, time-major spikes."""
    g = Graph(net.name.replace("-", "_") or "netx")
    dtype = DType.F32 if (net.input_message_bits or net.input_neuron) else DType.SPIKE
    prev = g.add(ops.Input(name="x", type=TensorType(shape=("T", "N", *net.input_shape), dtype=dtype,
                                                     layout=Layout.TNX)))
    flat = False
    for i, lay in enumerate(net.layers):
        if lay.type == "input":
            if lay.neuron is not None:
                prev = g.add(_neuron_op(g, "input_neuron", prev, lay, input_layer=True))
            continue
        if lay.type == "flatten":
            flat = True
            continue
        base = f"layer{i}"
        w = g.add_param(f"{base}.weight", torch.from_numpy(lay.weight.astype(np.float32)))
        b = None
        sdnn = lay.neuron is not None and lay.neuron.sdnn  # its bias belongs to the neuron (act = relu(sigma + b))
        if lay.type == "conv":
            if lay.bias is not None and not sdnn:
                bias = lay.bias.reshape(-1) if lay.bias.size == lay.weight.shape[0] else None
                if bias is None:
                    raise MalformedFileError(f"layer {i}: a conv bias per neuron is not supported (per channel only)")
                b = g.add_param(f"{base}.bias", torch.from_numpy(bias.astype(np.float32)))
            syn = ops.Conv2d(name=base, inputs=(prev,), weight=w, bias=b, stride=lay.stride, padding=lay.padding,
                             dilation=lay.dilation, groups=lay.groups)
        else:
            if flat or len(g.types[prev].features) != 1:
                prev = g.add(ops.Flatten(name=f"{base}_flatten", inputs=(prev,)))
                flat = False
            if lay.bias is not None and not sdnn:
                bias = np.broadcast_to(lay.bias.reshape(-1), (lay.weight.shape[0],))
                b = g.add_param(f"{base}.bias", torch.from_numpy(bias.astype(np.float32)))
            syn = ops.Linear(name=base, inputs=(prev,), weight=w, bias=b)
        g.add(syn)
        z = syn.name
        if lay.weight_rec is not None:  # dense_rec: W x[t] + W_rec s[t - 1]
            n = lay.weight_rec.shape[0]
            back = g.add(ops.Recur(name=f"{base}_prev", inputs=(f"{base}_neuron",), type=TensorType(
                shape=("T", "N", n), dtype=DType.SPIKE, layout=Layout.TNX)))
            wr = g.add_param(f"{base}.weight_rec", torch.from_numpy(lay.weight_rec.astype(np.float32)))
            rec = g.add(ops.Linear(name=f"{base}_rec", inputs=(back,), weight=wr))
            z = g.add(ops.Add(name=f"{base}_sum", inputs=(syn.name, rec)))
        prev = g.add(_neuron_op(g, f"{base}_neuron", z, lay))
        if lay.delay is not None:  # the axonal delay of the layer's output spikes
            delays = None
            if lay.delay.size > 1:
                delays = g.add_param(f"{base}.delay", torch.from_numpy(
                    lay.delay.reshape(lay.shape).astype(np.float32)))
            prev = g.add(ops.Delay(name=f"{base}_delay", inputs=(prev,), steps=int(lay.delay.max()), delays=delays))
    g.add(ops.Output(name="out", inputs=(prev,)))
    LoihiInfo(quantized=True, input="neuron" if net.input_neuron else ("graded" if net.input_message_bits else "spikes"),
              input_scale=net.input_scale, input_message_bits=net.input_message_bits).put(g)
    return g


def read_netx(path: str | os.PathLike) -> Graph:
    """Read a NetX hdf5 file (snnc's or lava-dl slayer's export_hdf5) as an IR graph."""
    return verify(network_to_graph(read_network(path)))
