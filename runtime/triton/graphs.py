"""CUDA graph capture of whole runs, for small batches where launch overhead dominates.

A run of a converted network is hundreds of kernel launches of small tensors;
replaying them as one CUDA graph removes the CPU cost of each. The first
call for a key runs eagerly (it compiles the Triton kernels and lets cuDNN
pick its algorithms, neither of which may happen during capture) and is then
captured; later calls with the same key copy their inputs into the graph's
static input buffers, replay, and return copies of the static outputs.

The decision logic (`decide`, `CaptureKey`, `GraphCache`) is plain Python so
it is tested without CUDA; only `capture` and `replay` touch CUDA.

A captured run starts from fresh neuron state, so only runs that start from a
reset replay; `reset()` itself keeps the graphs. A new batch size, T, dtype,
window or input shape is a new key; the cache keeps the `capacity` most
recently used graphs (each holds the memory of one run).
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor


class Action(str, enum.Enum):
    EAGER = "eager"  # run normally, nothing to capture (the reason says why)
    EAGER_THEN_CAPTURE = "eager_then_capture"  # first call for this key: run, then capture
    REPLAY = "replay"


@dataclass(frozen=True)
class CaptureKey:
    """What a captured run is valid for: every input's shape, T, the window, dtype and device."""

    inputs: tuple[tuple[str, tuple[int, ...]], ...]
    T: int
    window: int | None
    memory_budget: int
    dtype: torch.dtype
    device: str


@dataclass(frozen=True)
class RunRequest:
    """The parts of one `execute` call that decide whether it may use a graph."""

    device_type: str
    batch: int
    fresh_state: bool  # the neuron state is empty (a run after reset)
    constant_inputs: bool  # every input is one step [N, *] under the constant encoder
    probes: bool = False
    stats: bool = False
    observe: bool = False
    one_step: bool = False


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str = ""


def decide(request: RunRequest, key: CaptureKey | None, cache: "GraphCache", *, enabled: bool,
           max_batch: int) -> Decision:  # fmt: skip
    """Whether this call runs eagerly, runs and then captures, or replays a captured graph."""
    reasons = [
        (not enabled, "cuda_graphs is off"),
        (request.device_type != "cuda", "not on a CUDA device"),
        (request.batch > max_batch, f"batch {request.batch} > graph_max_batch {max_batch}"),
        (not request.fresh_state, "the run continues from earlier state (reset=False)"),
        (not request.constant_inputs, "inputs are sequences or encoded (only constant inputs are captured)"),
        (request.probes or request.stats or request.observe, "probes, statistics or observers need eager runs"),
        (request.one_step, "step() runs one step at a time"),
        (key is None, "no key"),
    ]
    for bad, why in reasons:
        if bad:
            return Decision(Action.EAGER, why)
    if key in cache:
        return Decision(Action.REPLAY)
    return Decision(Action.EAGER_THEN_CAPTURE)


@dataclass
class Captured:
    """One captured run: the graph and its static buffers (inputs written before replay)."""

    graph: Any  # torch.cuda.CUDAGraph (or a stand-in in tests)
    inputs: dict[str, Tensor]
    outputs: dict[str, Tensor]
    state: dict[str, Tensor]
    window: int | None
    T: int | None
    replays: int = 0


@dataclass
class GraphCache:
    """Captured runs by key, least recently used dropped first."""

    capacity: int = 2
    _entries: "OrderedDict[CaptureKey, Captured]" = field(default_factory=OrderedDict)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CaptureKey) -> Captured | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: CaptureKey, entry: Captured) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > max(0, self.capacity):
            self._entries.popitem(last=False)

    def invalidate(self) -> None:
        """Drop every graph (and the memory it holds)."""
        self._entries.clear()


def capture(run: Callable[[dict[str, Tensor]], Any], inputs: dict[str, Tensor],
            state: dict[str, Tensor]) -> Captured:  # fmt: skip
    """Capture `run(static_inputs)` (which must not synchronise with the host) into a CUDA graph.

    `state` is the runner's neuron-state dict: it must be empty (fresh) when the
    capture starts; the tensors the captured run leaves in it are the graph's.
    """
    static = {k: v.clone() for k, v in inputs.items()}
    graph = torch.cuda.CUDAGraph()
    torch.cuda.synchronize()
    with torch.cuda.graph(graph):
        res = run(static)
    captured_state = dict(state)
    return Captured(graph, static, dict(res.outputs), captured_state, res.window, res.T)


def replay(entry: Captured, inputs: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Copy inputs into the static buffers, replay, and return copies of (outputs, final state)."""
    for name, buf in entry.inputs.items():
        buf.copy_(inputs[name])
    entry.graph.replay()
    entry.replays += 1
    return ({k: v.clone() for k, v in entry.outputs.items()}, {k: v.clone() for k, v in entry.state.items()})
