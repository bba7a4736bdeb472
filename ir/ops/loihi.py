"""Loihi's current-based neuron (CUBA), the neuron every NetX layer carries.

    I[t] = (1 - current_decay) I[t-1] + X[t]
    V[t] = (1 - voltage_decay) V[t-1] + I[t]
    S[t] = V[t] > v_threshold        (fire=ge only before Loihi quantization)
    V[t] = 0 where S                 (Loihi resets to 0; nothing else)

With current_decay = 1 the current holds no memory and the neuron is an IF
(voltage_decay 0) or a LIF without input decay (voltage_decay = 1/tau).
Loihi stores both decays as k/4096 and the fixed-point update rounds toward
zero; `snnc.runtime.loihi` computes that bit-exactly, while the CPU reference
runtime runs the float equations above (snnc.core.dynamics: `synapse`, then the
charge of an IF or a LIF without input decay).

What the lava target's stages record about a graph is a typed annotation,
`LoihiInfo` in graph.meta["loihi"] (saved in .snnir files and read back).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from snnc.core.dynamics import FireCompare, NeuronKind, NeuronParams
from snnc.ir.annotations import register_annotation
from snnc.ir.ops.base import StateSpec, register
from snnc.ir.ops.neuron import HardReset, NeuronOp

LOIHI_KEY = "loihi"  # graph.meta[LOIHI_KEY]: a LoihiInfo


@register
class CubaLIF(NeuronOp):
    """Current-based LIF (Loihi CUBA): a synaptic current state, hard reset to 0."""

    kind: Literal["cuba_lif"] = "cuba_lif"
    current_decay: float = Field(default=1.0, ge=0.0, le=1.0)
    voltage_decay: float = Field(default=0.0, ge=0.0, le=1.0)
    fire: FireCompare = FireCompare.GT

    state = (StateSpec("v", "membrane potential"), StateSpec("i", "synaptic current"))
    _OPTIONAL: ClassVar[tuple[str, ...]] = tuple(f for f in NeuronOp._OPTIONAL if f != "current_decay")  # as before

    @model_validator(mode="after")
    def _loihi_reset(self) -> "CubaLIF":
        if not (isinstance(self.reset, HardReset) and self.reset.v_reset == 0.0):
            raise ValueError(f"cuba_lif resets to 0 only (Loihi's CUBA neuron), got reset={self.reset}")
        if self.v_init not in (None, 0.0):
            raise ValueError(f"cuba_lif starts at V=0 (Loihi), got v_init={self.v_init}")
        return self

    def to_params(self) -> NeuronParams:
        """The float dynamics (snnc.core.dynamics): the synaptic current, then an IF or a LIF without input decay."""
        if self.voltage_decay == 0.0:
            return self._params(NeuronKind.IF)
        return self._params(NeuronKind.LIF, tau=1.0 / self.voltage_decay, decay_input=False)


# -- what the graph carries for Loihi (graph.meta["loihi"]) --------------------------
class LoihiLayerReport(BaseModel):
    """How one layer was put on Loihi's fixed-point grid (the quantize-loihi pass's report).

    The input neuron has no synapse, no weight exponent and no weight/bias/decay errors.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    neuron: str
    synapse: str | None
    weight_exp: int | None  # the weights are w 2^weight_exp, rounded
    limited_by: str  # the register that bounded weight_exp ("weights (8 bit)", ...), or "input scale"
    weight_range_used: float | None = None  # max |W| / 254
    weight_rel_error: float | None = None
    bias_rel_error: float | None = None
    v_th_mant: int
    threshold_rel_error: float
    i_decay: int
    v_decay: int
    decay_abs_error: float | None = None


@register_annotation(LOIHI_KEY)
class LoihiInfo(BaseModel):
    """The lava target's data about a graph, filled in by its stages and read by the next ones.

    conversion (snnc.backends.lava.convert): readout_threshold, threshold_factors, input_max;
    legalization (snnc.backends.lava.legalize): input, how the network is fed;
    quantization (the quantize-loihi pass): quantized, input_scale, input_bits, input_message_bits, layers.
    A graph read from a NetX file is quantized (without layers).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    readout_threshold: float | None = Field(default=None, gt=0)  # of the spiking readout after an analog output
    threshold_factors: dict[str, float] = {}  # neuron -> factor its threshold was calibrated by
    input_max: float | None = Field(default=None, gt=0)  # the largest input magnitude (graded inputs)
    input: Literal["neuron", "spikes", "graded"] | None = None  # into an input neuron, spikes or graded messages
    quantized: bool = False
    input_scale: float | None = Field(default=None, gt=0)  # the host sends round(x input_scale)
    input_bits: int | None = Field(default=None, ge=0)
    input_message_bits: int | None = Field(default=None, ge=0)  # 0: binary spikes
    layers: tuple[LoihiLayerReport, ...] | None = None

    @classmethod
    def of(cls, graph) -> "LoihiInfo":
        """The Loihi data of `graph` (empty when it has none; a plain mapping is validated)."""
        info = graph.meta.get(LOIHI_KEY)
        if info is None:
            return cls()
        return info if isinstance(info, cls) else cls.model_validate(info)

    def put(self, graph):
        """Store this as the Loihi data of `graph` (a new meta mapping); returns the graph."""
        graph.meta = {**graph.meta, LOIHI_KEY: self}
        return graph

    def updated(self, **fields) -> "LoihiInfo":
        """A validated copy with `fields` replaced."""
        return type(self).model_validate({**dict(self), **fields})
