"""Containers that run single-step modules over sequences [T, N, *].

* MultiStepContainer: the modules step by step over time (for stateful modules);
* SeqToANNContainer: the modules once on [T*N, *] (for stateless modules, faster);
* StepModeContainer(stateful, *modules): either of the above in 'm' mode, the
  plain modules in 's' mode, switchable at any time.

Wrapping adds a prefix to the state_dict keys ('0.weight' -> '0.0.weight');
the layers of `snnc.nn.layer` avoid that.  The wrapped modules must be in
single-step mode, and `functional.set_step_mode` leaves them there.
"""

from __future__ import annotations

from torch import Tensor, nn

from snnc.nn import functional
from snnc.nn.base import MultiStepModule, StepMode, StepModule
from snnc.nn.errors import StepModeError

__all__ = [
    "MultiStepContainer",
    "SeqToANNContainer",
    "StepModeContainer",
    "TLastMultiStepContainer",
    "TLastSeqToANNContainer",
]


class _Wrapper(nn.Sequential):
    keeps_child_step_mode = True  # read by functional.set_step_mode

    def _check_children(self) -> None:
        for name, m in self.named_children():
            if getattr(m, "step_mode", StepMode.SINGLE) != StepMode.SINGLE:
                raise StepModeError(
                    f"{type(self).__name__}: module {name!r} ({type(m).__name__}) has step_mode "
                    f"{m.step_mode!r}; wrapped modules must be single-step ('s'), the container loops over time"
                )


class MultiStepContainer(_Wrapper, MultiStepModule):
    """Run the wrapped single-step modules at t = 0..T-1 in turn: [T, N, *] -> [T, N, *]."""

    def __init__(self, *modules: nn.Module) -> None:
        super().__init__(*modules)
        self._check_children()
        self.step_mode = StepMode.MULTI

    def forward(self, x_seq: Tensor) -> Tensor:
        return functional.multi_step_forward(x_seq, super().forward)


class SeqToANNContainer(_Wrapper, MultiStepModule):
    """Run stateless modules once on the flattened sequence: [T, N, *] -> [T*N, *] -> [T, N, *']."""

    def __init__(self, *modules: nn.Module) -> None:
        super().__init__(*modules)
        self._check_children()
        self.step_mode = StepMode.MULTI

    def forward(self, x_seq: Tensor) -> Tensor:
        return functional.seq_to_ann_forward(x_seq, super().forward)


class TLastMultiStepContainer(_Wrapper, MultiStepModule):
    """MultiStepContainer for time-last sequences [N, *, T]."""

    def __init__(self, *modules: nn.Module) -> None:
        super().__init__(*modules)
        self._check_children()
        self.step_mode = StepMode.MULTI

    def forward(self, x_seq: Tensor) -> Tensor:
        return functional.t_last_multi_step_forward(x_seq, super().forward)


class TLastSeqToANNContainer(_Wrapper, MultiStepModule):
    """SeqToANNContainer for time-last sequences [N, *, T] (uses torch.vmap; not for BatchNorm)."""

    def __init__(self, *modules: nn.Module) -> None:
        super().__init__(*modules)
        self._check_children()
        self.step_mode = StepMode.MULTI

    def forward(self, x_seq: Tensor) -> Tensor:
        return functional.t_last_seq_to_ann_forward(x_seq, super().forward)


class StepModeContainer(_Wrapper, StepModule):
    """Wrap single-step modules so the whole can switch between 's' and 'm'.

    In 'm' mode stateful modules run step by step (as MultiStepContainer) and
    stateless ones on the flattened sequence (as SeqToANNContainer).
    """

    def __init__(self, stateful: bool, *modules: nn.Module, step_mode: str = "s") -> None:
        super().__init__(*modules)
        self._check_children()
        self.stateful = bool(stateful)
        self.step_mode = step_mode

    def forward(self, x: Tensor) -> Tensor:
        if self.step_mode is StepMode.SINGLE:
            return super().forward(x)
        if self.stateful:
            return functional.multi_step_forward(x, super().forward)
        return functional.seq_to_ann_forward(x, super().forward)

    def extra_repr(self) -> str:
        return f"stateful={self.stateful}, step_mode={self.step_mode}"
