"""Loihi emulation: NetX networks run bit-exactly as Lava's fixed-point CPU models compute them.

One time step of a layer, in Lava's order (lava/proc/{dense,conv,lif}/models.py):

    a[t]  = synapse(s_prev[t-1])       the synapse sends last step's sum: one step of latency per layer
            dense: sum W s (int);  conv: torch-order conv2d, wrapped to 24 bits
    u[t]  = sgn(u) (|u (4096 - iDecay)| >> 12) + (a[t] << 6)     wrapped to 24 bits
    v[t]  = sgn(v) (|v (4096 - vDecay)| >> 12) + u[t] + (bias << 6)   clipped to +-(2^23 - 1)
    s[t]  = v[t] > vThMant << 6;   v[t] = 0 where s[t]

A `dense_rec` layer adds its own last spikes through `weight_rec` (netx's
RecurrentDense: a second dense synapse from the neurons' output to their
input, with the same one step of latency): a[t + 1] += W_rec s[t]. A layer's
axonal `delay` (one per neuron, or one for all) holds each neuron's spikes
back by d steps before they leave the layer (and are recorded as its output).

The input is fed as integers: graded messages (Loihi 2) or 0/1 spikes into the
first synapse, or the a_in of an input neuron (no latency there).

    session = LoihiSession(network_or_quantized_graph_or_artifact_or_netx_file)
    spikes = session.run(x, T=32)      # [T, N, *out] of 0/1, exactly Lava's output

The emulator runs what is already on Loihi's integer grid; a float graph is
quantized by the lava target first: snnc.backends.lava.emulate(graph).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

from snnc.core import spelling
from snnc.core.errors import InputError
from snnc.core.sigma_delta import SigmaDeltaState, sigma_delta_step
from snnc.core.userdata import as_float, check_time_steps
from snnc.ir.formats.artifact import Artifact
from snnc.ir.formats.netx import SYNAPTIC, NetxNetwork, network_from_graph, read_network
from snnc.ir.graph import Graph
from snnc.ir.ops import LoihiInfo
from snnc.runtime.protocol import register_session

_U_MAX = 1 << 23
SPIKE_EXP = STATE_EXP = 6  # netx's sigma-delta scaling (Network(spike_exp=6); state_exp is fixed at 6)


def _trunc_decay(x: Tensor, decay: int) -> Tensor:
    """sgn(x) (|x (4096 - decay)| >> 12): the product rounded toward zero."""
    return torch.div(x * (4096 - decay), 4096, rounding_mode="trunc")


def neuron_step(u: Tensor, v: Tensor, a: Tensor, bias: Tensor | int, i_decay: int, v_decay: int,
                v_th_mant: int) -> tuple[Tensor, Tensor, Tensor]:
    """One CUBA step on int64 tensors; returns (spikes as bool, u, v)."""
    c = _trunc_decay(u, i_decay) + a * 64
    w = torch.where(c > _U_MAX, c - 2 * _U_MAX, c)
    u = torch.where(w <= -_U_MAX, c + 2 * _U_MAX, w)
    v = (_trunc_decay(v, v_decay) + u + bias * 64).clamp(-_U_MAX + 1, _U_MAX - 1)
    s = v > v_th_mant * 64
    return s, u, v.masked_fill(s, 0)


def _wrap24(x: Tensor) -> Tensor:
    return torch.remainder(x + _U_MAX, 2 * _U_MAX) - _U_MAX


class LoihiSession:
    """Runs a NetX network like Lava's Loihi2SimCfg: a NetxNetwork, a graph quantized for Loihi (`graph`
    keeps it), a lava artifact (folder or Artifact) or a NetX .net file."""

    def __init__(self, source, *, reset_interval: int | None = None, reset_offset: int = 0, **options):
        if options:  # quantization options belong to the lava target, which quantizes before emulating
            raise InputError(f"the Loihi emulation takes no options, got {', '.join(sorted(options))}",
                             hint="it runs a network already on Loihi's integer grid; to quantize a float graph "
                                  "with options use snnc.backends.lava.emulate(graph, **options)")
        if reset_interval is not None and (isinstance(reset_interval, bool) or not isinstance(reset_interval, int)
                                           or reset_interval < 1):
            raise InputError(f"reset_interval must be a whole number of steps >= 1, got {reset_interval!r}")
        self.reset_interval = reset_interval  # netx's Network(reset_interval=...): state zeroed every R steps
        self.reset_offset = int(reset_offset)
        self.graph = None
        if isinstance(source, NetxNetwork):
            self.network = source
        else:
            self.network = self._load(source)
        net = self.network
        self.latency = net.synaptic_layers
        self._layers = [lay for lay in net.layers if lay.type in SYNAPTIC]
        graded = [net.input_neuron and net.layers[0].neuron.sdnn] + [lay.neuron.sdnn for lay in self._layers[:-1]]
        self._weights = [self._exact_float(lay, i == 0, graded[i]) for i, lay in enumerate(self._layers)]
        self._weights_rec = [None if lay.weight_rec is None else self._exact_rec(lay) for lay in self._layers]
        self._bias = [self._bias_of(lay) for lay in self._layers]

    def _load(self, source) -> NetxNetwork:

        if isinstance(source, (str, os.PathLike)):
            p = Path(source)
            if p.is_file() and p.suffix != ".snnir":
                return read_network(p)
            source = Artifact.open(p)
        if isinstance(source, Artifact):
            if source.target == "lava":
                return read_network(source.path / source.manifest.get("netx", "net.net"))
            source = source.graph()
        if not isinstance(source, Graph):
            raise TypeError(f"LoihiSession needs a NetX network, a graph quantized for Loihi, an artifact or a NetX "
                            f"file, got {type(source).__name__}")
        if not LoihiInfo.of(source).quantized:
            raise InputError(f"graph {source.name} is not on Loihi's integer grid, which the emulator runs",
                             hint="quantize it first: snnc.backends.lava.emulate(graph) (or compile it for target "
                                  "lava and run the artifact)")
        self.graph = source
        return network_from_graph(source)

    def _exact_float(self, lay, first: bool, graded: bool = False) -> Tensor:
        """The weights in float32 when every partial sum is an integer below 2^24 (exact), else float64
        (sigma-delta messages have up to 24 bits)."""
        w = torch.from_numpy(lay.weight).to(torch.float64)
        in_max = float(1 << 24) if graded else 1.0
        if first and (self.network.input_message_bits and not self.network.input_neuron):
            in_max = float(2 ** self.network.input_message_bits)
        bound = float(w.abs().flatten(1).sum(1).max()) * in_max if w.numel() else 0.0
        return w.float() if bound < 2 ** 24 else w

    @staticmethod
    def _exact_rec(lay) -> Tensor:
        """The recurrent weights (inputs are 0/1 spikes): float32 when every sum is exact, else float64."""
        w = torch.from_numpy(lay.weight_rec).to(torch.float64)
        return w.float() if float(w.abs().sum(1).max()) < 2 ** 24 else w

    @staticmethod
    def _delay_of(lay) -> Tensor | None:
        """The per-neuron axonal delays in steps, shaped like the layer (None: no delay)."""
        if lay.delay is None:
            return None
        d = torch.from_numpy(lay.delay).to(torch.int64)
        return d.reshape(()) if d.numel() == 1 else d.reshape(lay.shape)

    @staticmethod
    def _bias_of(lay) -> Tensor | int:
        if lay.bias is None:
            return 0
        b = torch.from_numpy(lay.bias).to(torch.int64)
        if lay.type == "conv":
            return b.reshape(-1, 1, 1) if b.numel() == lay.shape[0] else b.reshape(lay.shape)
        return b.reshape(-1)

    # -- inputs -------------------------------------------------------------
    def encode(self, x) -> Tensor:
        """Host-side integers: round(x * input_scale) for graded/input-neuron networks; 0/1 spikes otherwise."""
        x = as_float(x, "the input")  # snnc.core.userdata's dtype policy: integers other than 0/1 need a scale
        net = self.network
        if net.input_message_bits or net.input_neuron:
            return torch.round(x.double() * net.input_scale).to(torch.int64)
        if not bool(((x == 0) | (x == 1)).all()):
            raise InputError("this network's first synapse takes binary spikes, but the input has values other "
                             "than 0 and 1", hint="encode the input as spikes first")
        return x.to(torch.int64)

    def _bind(self, x, T: int | None, encoded: bool) -> Tensor:
        x = torch.as_tensor(x) if encoded else as_float(x, "the input")
        feats = tuple(self.network.input_shape)
        nf = len(feats)
        if tuple(x.shape[-nf:]) != feats or x.dim() not in (nf + 1, nf + 2):
            raise InputError(f"the network takes inputs [N, {', '.join(map(str, feats))}] or a sequence "
                             f"[T, N, ...], got shape {list(x.shape)}")
        if x.dim() == nf + 1:
            if T is None:
                raise InputError(f"a single-step input needs {spelling.flag('T')} (the number of time steps)")
            x = x.unsqueeze(0).expand(T, *x.shape)
        elif T is not None and x.shape[0] != T:
            raise InputError(f"the input has {x.shape[0]} steps but T={T}")
        return x.to(torch.int64) if encoded else self.encode(x)

    # -- running ------------------------------------------------------------
    @torch.no_grad()
    def run(self, x, T: int | None = None, *, encoded: bool = False, all_layers: bool = False,
            probes: Iterable[str] = ()):
        """Output spikes [T, N, *out] as float 0/1, graded messages for sigma-delta layers (float64, exact) (or a dict layer
        name -> output with all_layers). `probes` names layers (the NetX index "9" or the graph's neuron
        "layer9_neuron"; "input_neuron") whose output is returned too, and with ":v" their potential (v of a
        CUBA neuron after its reset, sigma of a sigma-delta one): then the result is a dict with "out"."""
        xs = self._bind(x, check_time_steps(T), encoded)
        wanted = [(p, *self._probe_layer(p)) for p in probes]
        want_v = {name for _, name, v in wanted if v}
        steps, n = xs.shape[0], xs.shape[1]
        net = self.network
        first = net.layers[0]
        blocks = ([first] if net.input_neuron else []) + self._layers
        states = [self._zero_state(lay, n) for lay in blocks]
        record: dict[str, list[Tensor]] = {lay.name: [] for lay in blocks}
        potentials: dict[str, list[Tensor]] = {name: [] for name in want_v}
        resets = self._reset_phases(blocks)
        delays = [self._delay_of(lay) for lay in self._layers]
        lines = [None if d is None else torch.zeros(n, int(d.max()), *lay.shape, dtype=torch.int64)
                 for d, lay in zip(delays, self._layers)]
        for t in range(steps):
            s = xs[t]
            for k, lay in enumerate(blocks):
                synaptic = lay.type in SYNAPTIC
                i = k - (len(blocks) - len(self._layers))
                if synaptic:
                    a, new_buf = states[k]["a_buf"], self._synapse(i, lay, s)
                    bias = self._bias[i]
                else:  # the input neuron: driven directly, no synapse and no latency
                    a, bias = s, 0
                if resets is not None and t % self.reset_interval == resets[k]:
                    states[k].update({key: torch.zeros_like(v) for key, v in states[k].items() if key != "a_buf"})
                s = self._neuron(lay, states[k], a, bias, input_layer=not synaptic)
                if synaptic:
                    if self._weights_rec[i] is not None:  # the layer's own output, one step late
                        w = self._weights_rec[i]
                        new_buf = new_buf + torch.round(s.to(w.dtype) @ w.T).to(torch.int64)
                    states[k]["a_buf"] = new_buf
                    if delays[i] is not None:
                        s, lines[i] = self._delayed(s, lines[i], delays[i])
                record[lay.name].append(s)
                if lay.name in want_v:
                    potentials[lay.name].append(states[k]["sigma" if lay.neuron.sdnn else "v"].clone())
        # spikes and CUBA potentials (|v| < 2^23) are exact in float32; sigma-delta values may not be
        exact = {lay.name: torch.float64 if lay.neuron.sdnn else torch.float32 for lay in blocks}
        out = {k: torch.stack(v).to(exact[k]) for k, v in record.items()}
        pots = {k: torch.stack(v).to(exact[k]) for k, v in potentials.items()}
        probed = {p: (pots[name] if v else out[name]) for p, name, v in wanted}
        if all_layers:
            return {**out, **probed}
        last = out[blocks[-1].name]
        return {"out": last, **probed} if wanted else last

    @property
    def silent_output(self) -> str | None:
        """The output layer's name when its neuron can never fire (vThMant >= 2^17: v is clipped below 2^23),
        as netx's default neuron of a dense layer without one (an integrator readout); else None."""
        lay = self._layers[-1] if self._layers else None
        if lay is None or lay.neuron is None or lay.neuron.sdnn or lay.neuron.v_th_mant < (1 << 17):
            return None
        return lay.name

    def _probe_layer(self, probe: str) -> tuple[str, bool]:
        """(NetX layer name, potential?) of a probe "9", "9:v", "layer9_neuron:v" or "input_neuron"."""
        name, _, what = str(probe).partition(":")
        if what not in ("", "v"):
            raise InputError(f"probe {probe!r}: only ':v' (the potential) can follow a layer name")
        net = self.network
        if name == "input_neuron" and net.input_neuron:
            name = net.layers[0].name
        elif name.startswith("layer") and name.endswith("_neuron"):
            name = name[len("layer"):-len("_neuron")]
        with_neuron = {lay.name for lay in self._layers} | ({net.layers[0].name} if net.input_neuron else set())
        if name not in with_neuron:
            raise InputError(f"probe {probe!r}: no NetX layer {name!r} with a neuron",
                             hint="layers with neurons: " + ", ".join(sorted(with_neuron, key=lambda k: (len(k), k))))
        return name, what == "v"

    def _reset_phases(self, blocks) -> list[int] | None:
        """The step phase (t mod reset_interval) at which each block's state is zeroed, as netx's
        reset_interval does: block k (the input neuron, when there is one, is block 0) is reset before its
        step t when (t + 1) % R == (reset_offset + 1 + k) % R (Lava's LIFReset; time_step starts at 1)."""
        if self.reset_interval is None:
            return None
        if any(lay.neuron.sdnn for lay in blocks):
            warnings.warn("reset_interval does not reset sigma-delta (SDNN) neurons: netx ignores it for them "
                          "(with a warning), and so does the emulation", stacklevel=3)
            return [-1 if lay.neuron.sdnn else (self.reset_offset + k) % self.reset_interval
                    for k, lay in enumerate(blocks)]
        return [(self.reset_offset + k) % self.reset_interval for k in range(len(blocks))]

    @staticmethod
    def _zero_state(lay, n: int) -> dict[str, Tensor]:
        zeros = lambda: torch.zeros(n, *lay.shape, dtype=torch.int64)  # noqa: E731
        keys = ("sigma", "act", "residue") if lay.neuron.sdnn else ("u", "v")
        state = {key: zeros() for key in keys}
        if lay.type in SYNAPTIC:
            state["a_buf"] = zeros()
        return state

    @staticmethod
    def _neuron(lay, state: dict[str, Tensor], a: Tensor, bias, *, input_layer: bool) -> Tensor:
        """One step of a layer's neuron on int64 state (updated in place); returns its output message."""
        nrn = lay.neuron
        if nrn.sdnn:  # snnc.core.sigma_delta, Lava's fixed-point models (spike_exp = state_exp = 6)
            mode = "delta" if input_layer else ("sigma" if nrn.sigma_output else "sigma_delta")
            sd = SigmaDeltaState(state["sigma"], state["act"], state["residue"])
            s, sd = sigma_delta_step(sd, a, mode=mode, threshold=nrn.v_th_mant << (SPIKE_EXP + STATE_EXP),
                                     bias=bias * (1 << (SPIKE_EXP + STATE_EXP)), spike_exp=SPIKE_EXP,
                                     state_exp=STATE_EXP, fixed=True)
            state.update(sigma=sd.sigma, act=sd.act, residue=sd.residue)
            return s
        spk, state["u"], state["v"] = neuron_step(state["u"], state["v"], a, bias, nrn.i_decay, nrn.v_decay,
                                                  nrn.v_th_mant)
        return spk.to(torch.int64)

    @staticmethod
    def _delayed(s: Tensor, line: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        """The spikes of d steps ago (per neuron) and the new line of the last max(d) steps (oldest first)."""
        full = torch.cat([line, s.unsqueeze(1)], 1)  # [N, D + 1, *]: full[:, D] is now
        depth = line.shape[1]
        idx = (depth - d).expand(s.shape[1:]).unsqueeze(0).unsqueeze(1).expand(s.shape[0], 1, *s.shape[1:])
        return torch.gather(full, 1, idx).squeeze(1), full[:, 1:]

    def _synapse(self, i: int, lay, s: Tensor) -> Tensor:
        w = self._weights[i]
        x = s.to(w.dtype)
        if lay.type in ("dense", "dense_rec"):  # a flatten before a dense reads (C, H, W) order
            return torch.round(x.reshape(x.shape[0], -1) @ w.T).to(torch.int64)
        a = F.conv2d(x, w, None, lay.stride, lay.padding, lay.dilation, lay.groups)
        return _wrap24(torch.round(a).to(torch.int64))

    def predict(self, x, T: int | None = None) -> Tensor:
        """Class labels: argmax of the output spike counts (first index on ties)."""
        return self.run(x, T).sum(0).flatten(1).argmax(-1)


register_session("lava", LoihiSession)
