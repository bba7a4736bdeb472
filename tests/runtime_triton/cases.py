"""Neuron configurations shared by the Triton kernel tests (every option combination)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
import torch

from snnc.core.dynamics import FireCompare, NeuronKind, NeuronParams, ResetMode

TAU = 1.7  # not a float32 number: checks that tau is rounded as torch rounds it
V_THRESHOLD = 0.7
V_RESET = -0.2  # a non-zero leak target for hard reset


@dataclass(frozen=True)
class Case:
    params: NeuronParams
    leak: str  # "const" (params.tau), "tau" (tensor divided by), "decay" (tensor multiplied by)

    def leak_kwargs(self, requires_grad: bool = False, device: str | torch.device = "cpu") -> dict:
        if self.leak == "const":
            return {}
        value = TAU if self.leak == "tau" else 1.0 / TAU
        return {self.leak: torch.tensor(value, device=device, requires_grad=requires_grad)}

    def __str__(self) -> str:
        p = self.params
        parts = [p.kind.value, p.reset.value, p.compare.value]
        if p.kind is NeuronKind.LIF:
            parts += ["decay_input" if p.decay_input else "no_decay_input", self.leak]
        return "-".join(parts)


def _params(kind, reset, compare, decay_input=True) -> NeuronParams:
    return NeuronParams(kind, V_THRESHOLD, reset, V_RESET, compare, TAU, decay_input)


def all_cases() -> list[Case]:
    """IF x reset x compare, and LIF x reset x compare x decay_input x leak source: 42 cases."""
    cases = [Case(_params(NeuronKind.IF, r, c), "const") for r, c in itertools.product(ResetMode, FireCompare)]
    for r, c, d, leak in itertools.product(ResetMode, FireCompare, (True, False), ("const", "tau", "decay")):
        cases.append(Case(_params(NeuronKind.LIF, r, c, d), leak))
    return cases


def params_of(cases: list[Case]) -> list:
    return [pytest.param(c, id=str(c)) for c in cases]


def random_input(T: int = 6, shape: tuple[int, ...] = (2, 3, 7), seed: int = 0) -> torch.Tensor:
    """Input currents that make about a third of the neurons fire per step (fp32, CPU)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn((T, *shape), generator=g) * 0.7 + 0.35
