"""Translate `NeuronParams` into what the kernels take: constexpr flags and fp32 scalars.

The neuron's semantic fields are passed as the `.code` of the enums of
`snnc.core.dynamics` (the codes the C kernels take too); `dynamics.py` (the
Triton device functions) compares them with constexprs made from the same enums.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from snnc.core.dynamics import NeuronKind, NeuronParams


class Leak(str, enum.Enum):
    """Where the LIF leak factor comes from (see `snnc.core.dynamics.charge`)."""

    PARAMS_TAU = "params_tau"  # divide by params.tau, baked into the launch
    TAU = "tau"  # divide by a 1-element tensor read at run time (learnable)
    DECAY = "decay"  # multiply by a 1-element tensor decay = 1/tau (SpikingJelly's PLIF)


@dataclass(frozen=True)
class NeuronSpec:
    """One neuron configuration as kernel arguments; `leak` selects ParametricLIF variants."""

    params: NeuronParams
    leak: Leak = Leak.PARAMS_TAU

    @property
    def is_lif(self) -> bool:
        return self.params.kind is NeuronKind.LIF

    def constexprs(self) -> dict[str, int | bool]:
        """The compile-time flags shared by the forward and backward kernels."""
        p = self.params
        return {
            "CHARGE": p.charge.code,
            "RESET": p.reset.code,
            "COMPARE": p.compare.code,
            "LEAK_FROM_PTR": self.leak is not Leak.PARAMS_TAU,
            "LEAK_MULTIPLY": self.leak is Leak.DECAY,
        }

    def scalars(self) -> dict[str, float]:
        """The run-time float arguments; the kernels round them to fp32 like torch does."""
        p = self.params
        return {
            "v_threshold": float(p.v_threshold),
            "v_reset": float(p.v_reset),
            "v_leak": float(p.leak_target),
            "tau_value": float(p.tau),
        }
