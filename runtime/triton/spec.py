"""Translate `NeuronParams` into what the kernels take: constexpr flags and fp32 scalars.

The codes below are the only place where the enums of `snnc.core.dynamics` meet
integers; `dynamics.py` (the Triton device functions) uses the same names.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from snnc.core.dynamics import FireCompare, NeuronKind, NeuronParams, ResetMode

KIND_IF = 0
KIND_LIF = 1

RESET_HARD = 0
RESET_SOFT = 1
RESET_NONE = 2

_KIND_CODES = {NeuronKind.IF: KIND_IF, NeuronKind.LIF: KIND_LIF}
_RESET_CODES = {ResetMode.HARD: RESET_HARD, ResetMode.SOFT: RESET_SOFT, ResetMode.NONE: RESET_NONE}


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
            "KIND": _KIND_CODES[p.kind],
            "DECAY_INPUT": bool(p.decay_input),
            "RESET": _RESET_CODES[p.reset],
            "COMPARE_GT": p.compare is FireCompare.GT,
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
