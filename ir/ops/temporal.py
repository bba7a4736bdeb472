"""Ops that move values in time: axonal/synaptic delays and recurrent (back) edges.

    Delay:  y[t] = x[t - d]          d = `steps` (one delay for the whole layer), or
            y[t, j] = x[t - d_j, j]  d_j = `delays`[j] (a parameter: one delay per feature, 0 <= d_j <= steps)
            y[t] = 0 for t < d       (the line starts empty)
    Recur:  y[t] = source[t - 1]     y[0] = 0
    TimeMean: y[t] = (x[0] + ... + x[t]) / (t + 1)   the mean over the steps so far

A `recur` op is the one legal way to close a cycle: it reads the value named
`source`, which may be defined later in the node order, one step late. Its
input edge is a back edge: `Graph.to_networkx()`, the topological order and
the verifier's cycle check leave it out, and it carries its own `type` (the
source's type, checked by type inference). Any other cycle is refused by the
verifier, which lists its nodes.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Mapping

from pydantic import Field

from snnc.ir.ops.base import OpBase, ParamInfo, StateSpec, need, register
from snnc.ir.types import DType, TensorType

MAX_DELAY_STEPS = 1 << 16  # a delay line holds `steps` past values per element


@register
class Delay(OpBase):
    """A delay line of `steps` time steps (or one delay per feature, from the parameter `delays`)."""

    kind: Literal["delay"] = "delay"
    steps: int = Field(ge=0, le=MAX_DELAY_STEPS)  # the delay; with `delays`, the largest d_j
    delays: str | None = None  # per-feature delays in steps: a parameter of the value's feature shape
    param_fields = ("delays",)
    state = (StateSpec("line", "the last `steps` inputs"),)
    stateful = True

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        x = ins[0]
        need(x.layout.has_time, f"a delay needs a layout with time (TNX, NXT or TN), got {x.layout.value}")
        if self.delays is not None:
            shape = params[self.delays].shape
            need(tuple(shape) == tuple(x.features) or tuple(shape) == (1,),
                 f"per-feature delays @{self.delays} have shape {list(shape)}, expected {list(x.features)}")
        return x


@register
class Recur(OpBase):
    """The value `source` one time step earlier (0 at the first step): the back edge of a recurrent cycle."""

    kind: Literal["recur"] = "recur"
    type: TensorType
    back_edge: ClassVar[bool] = True
    state = (StateSpec("last", "the source's value at the previous step"),)
    stateful = True

    @property
    def source(self) -> str:
        return self.inputs[0]

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        need(self.type.layout.has_time, f"a recurrent edge needs a layout with time, got {self.type.layout.value}")
        return self.type


@register
class TimeMean(OpBase):
    """The mean of the input over the time steps so far (a model's `x.mean(0)` over T, step by step).

        S[t] = S[t-1] + x[t]     S[-1] = 0 (state `sum`; the state also counts the steps)
        y[t] = S[t] / (t + 1)

    so the last step of a T-step run is the mean over all T steps, and what a layer after it
    computes at that step is what it computes on the mean (SpikingJelly's MS-ResNet averages
    over T before its classifier: `fc(x.mean(0))` is `fc` of the last step here). The output
    keeps its time dim, so run, step() and chunked runs agree step for step; a session's
    `predict` reads the last step of an output computed from a time mean.
    """

    kind: Literal["time_mean"] = "time_mean"
    rate_preserving: ClassVar[bool] = False  # the mean over T of running means is not the input's mean
    state = (StateSpec("sum", "the input summed over the steps so far, and the number of steps", stacked=2),)
    stateful = True

    def infer(self, ins: list[TensorType], params: Mapping[str, ParamInfo]) -> TensorType:
        x = ins[0]
        need(x.layout.has_time, f"time_mean averages over time: it needs a layout with time (TNX, NXT or TN), "
             f"got {x.layout.value}")
        return x.with_dtype(DType.F32) if x.dtype is DType.SPIKE else x


def after_time_mean(graph, value: str) -> bool:
    """Whether `value` of `graph` is computed from a TimeMean: its last step is then the mean over all steps
    (a readout averages it over T no further)."""
    seen, stack = set(), [value]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        op = graph[name]
        if isinstance(op, TimeMean):
            return True
        stack.extend(op.forward_inputs())
    return False
