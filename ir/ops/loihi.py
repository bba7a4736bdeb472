"""Loihi's current-based neuron (CUBA), the neuron every NetX layer carries.

    I[t] = (1 - current_decay) I[t-1] + X[t]
    V[t] = (1 - voltage_decay) V[t-1] + I[t]
    S[t] = V[t] > v_threshold        (fire=ge only before Loihi quantization)
    V[t] = 0 where S                 (Loihi resets to 0; nothing else)

With current_decay = 1 the current holds no memory and the neuron is an IF
(voltage_decay 0) or a LIF without input decay (voltage_decay = 1/tau).
Loihi stores both decays as k/4096 and the fixed-point update rounds toward
zero; `snnc.runtime.loihi` computes that bit-exactly, while the CPU reference
runtime runs the float equations above for current_decay = 1 only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from snnc.core.dynamics import FireCompare, NeuronKind, NeuronParams
from snnc.core.errors import LoweringError
from snnc.ir.ops.base import StateSpec, register
from snnc.ir.ops.neuron import HardReset, NeuronOp


@register
class CubaLIF(NeuronOp):
    """Current-based LIF (Loihi CUBA): a synaptic current state, hard reset to 0."""

    kind: Literal["cuba_lif"] = "cuba_lif"
    current_decay: float = Field(default=1.0, ge=0.0, le=1.0)
    voltage_decay: float = Field(default=0.0, ge=0.0, le=1.0)
    fire: FireCompare = FireCompare.GT

    state = (StateSpec("v", "membrane potential"), StateSpec("i", "synaptic current"))

    @model_validator(mode="after")
    def _loihi_reset(self) -> "CubaLIF":
        if not (isinstance(self.reset, HardReset) and self.reset.v_reset == 0.0):
            raise ValueError(f"cuba_lif resets to 0 only (Loihi's CUBA neuron), got reset={self.reset}")
        if self.v_init not in (None, 0.0):
            raise ValueError(f"cuba_lif starts at V=0 (Loihi), got v_init={self.v_init}")
        return self

    def to_params(self) -> NeuronParams:
        """The IF/LIF equivalent for the CPU reference runtime (current_decay = 1 only)."""
        if self.current_decay != 1.0:
            raise LoweringError(f"{self.where()} keeps a synaptic current (current_decay={self.current_decay}), "
                                "which the CPU reference runtime does not model",
                                hint="run it with snnc.runtime.loihi.LoihiSession (bit-exact Loihi emulation)")
        if self.voltage_decay == 0.0:
            return self._params(NeuronKind.IF)
        return self._params(NeuronKind.LIF, tau=1.0 / self.voltage_decay, decay_input=False)
