"""Session: the user-facing way to run a compiled graph.

    s = snnc.load("out/digits_cpu")          # or Session(graph), snnc.load(snnc.compile(...))
    out = s.run(x, T=32)                      # [T, N, *] per output; x [N, *] is held constant
    out = s.run(x, T=32, encoder="poisson", seed=1)
    s.reset(); y_t = s.step(x_t)              # streaming: one step [N, *] in, one step out
    obs = s.observe(x, T=32, probes=["if1", "if1:v"])   # + probes and RunStats
    print(obs.stats.table())
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from torch import Tensor

from snnc.core import progress as progress_bars
from snnc.core import spelling
from snnc.core.errors import InputError
from snnc.ir.formats.artifact import Artifact
from snnc.ir.formats.nir import NirSource
from snnc.ir.graph import Graph
from snnc.ir.ops.temporal import after_time_mean
from snnc.runtime import encoders as enc
from snnc.runtime.interpreter import DEFAULT_MEMORY_BUDGET, Interpreter, RunResult
from snnc.runtime.memory import estimate_for_shapes
from snnc.runtime.protocol import register_session
from snnc.runtime.triton.session import make_interpreter


class Session:
    """Runs a graph (or a compiled artifact) on the CPU reference runtime.

    Args:
        device: "cpu", or a CUDA device (the same torch kernels; neurons use the torch loop).
        dtype: float32 (default; neurons on the compiled kernel), float16 or bfloat16.
        encoder: default input encoder: 'constant', 'poisson', 'latency', 'periodic' or an encoder object.
        memory_budget: bytes of activations per window of time steps; large T runs in windows.
        channels_last: conv activations in channels_last (default): faster on CPUs (oneDNN's
            preferred layout); conv results differ from eager NCHW torch in the last bits.
        progress: show a progress bar (None: on a terminal, for runs over ~2 s).
        max_memory: bytes a run may use; a run whose estimated peak exceeds it runs in smaller
            windows of time steps, or fails before allocating (default: the memory available).
        event_conv: run the convolutions whose input is a neuron's spikes on the event-driven
            kernel (float32 on the CPU): it adds the weights of the nonzero inputs only, which is
            faster at the usual spike densities. "auto" (default): only the convs and linears with
            at least 64 output channels, where it pays; True: every conv and linear it takes. Conv results differ from eager torch in
            the last bits (another summation order).
            run, step and chunked runs agree exactly whatever the options; with
            channels_last=False, event_conv=False every value is bit-identical to eager NCHW torch.
        neuron_impl: "triton" runs neuron groups in the Triton kernels (the default for triton artifacts).
        triton_options: options of the triton runtime, overriding the artifact's (see docs/triton.md).
    """

    def __init__(self, source: "Graph | os.PathLike | str | object", *, device: str | torch.device | None = None,
                 dtype: torch.dtype = torch.float32, encoder: "str | enc.Encoder | None" = None,
                 memory_budget: int = DEFAULT_MEMORY_BUDGET, channels_last: bool = True,
                 progress: bool | None = None, neuron_impl: str | None = None, max_memory: int | None = None,
                 event_conv: bool | str = "auto", triton_options: Mapping[str, Any] | None = None):
        if isinstance(source, (str, os.PathLike)):
            source = Artifact.open(Path(source))
        if isinstance(source, Artifact):
            self.artifact: Artifact | None = source
            graph = source.graph()
        elif isinstance(source, Graph):
            self.artifact, graph = None, source
        else:
            raise TypeError(f"Session needs a Graph, an Artifact or a path, got {type(source).__name__}")
        self.graph = graph
        self.encoder = enc.get_encoder(encoder)
        self.progress = progress
        # a 'triton' artifact runs its neuron layers in the Triton kernels, on the GPU when there is one
        triton = self.artifact is not None and self.artifact.target == "triton"
        if neuron_impl is None:
            neuron_impl = "triton" if triton else "auto"
        if device is None:
            device = "cuda" if triton and torch.cuda.is_available() else "cpu"
        kwargs = dict(device=device, dtype=dtype, channels_last=channels_last, memory_budget=memory_budget)
        if neuron_impl == "triton":  # neuron groups in Triton kernels, CUDA graphs (snnc.runtime.triton.session)
            self._interp = make_interpreter(graph, self.artifact, triton_options, **kwargs)
        else:
            self._interp = Interpreter(graph, neuron_impl=neuron_impl, event_conv=event_conv, **kwargs)
        self.max_memory = max_memory
        self.input_names = [op.name for op in graph.inputs]
        self.output_names = [op.name for op in graph.outputs]
        self.t = 0  # time steps run since the last reset
        self._nir = NirSource.of(graph)  # a graph read from NIR: its first run checks the dt (_warn_silent)
        self._dt_checked = False

    # -- properties -------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self._interp.device

    @property
    def dtype(self) -> torch.dtype:
        return self._interp.dtype

    @property
    def memory_budget(self) -> int:
        return self._interp.memory_budget

    @memory_budget.setter
    def memory_budget(self, value: int) -> None:
        if value <= 0:
            raise InputError(f"memory_budget must be a positive number of bytes, got {value}")
        self._interp.memory_budget = int(value)

    @property
    def max_memory(self) -> int | None:
        """Bytes a run may use (None: the memory available); see snnc.runtime.memory."""
        return self._interp.max_memory

    @max_memory.setter
    def max_memory(self, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise InputError(f"max_memory must be a positive number of bytes or None, got {value!r}")
        self._interp.max_memory = value

    def estimate_memory(self, input_shape, T: int | None = None, *, probes: Iterable[str] = (),
                        chunk: int | None = None):
        """The peak-memory estimate (a MemoryEstimate: `.total` bytes, `.line()`) of running inputs of
        `input_shape` ([N, *] held constant or [T, N, *]; a dict name -> shape for several inputs) for T steps."""
        shapes = input_shape if isinstance(input_shape, Mapping) else {self.input_names[0]: tuple(input_shape)}
        return estimate_for_shapes(self._interp, dict(shapes), T, probes, chunk)

    @property
    def default_T(self) -> int | None:
        """The T recorded in the artifact (snnc compile -T), if any."""
        return self.artifact.manifest.get("time_steps") if self.artifact is not None else None

    # -- state ------------------------------------------------------------
    def reset(self) -> None:
        """Forget all neuron state (membrane potentials) and restart time at step 0."""
        self._interp.reset()
        self.t = 0

    @property
    def state(self) -> dict[str, Tensor]:
        """Neuron name -> membrane potential [N, *], and a running max pooling's sums (empty after reset)."""
        return self._interp.state

    def snapshot(self) -> dict[str, Any]:
        """A copy of the state (potentials and the step counter) for `restore`."""
        return {"t": self.t, "v": {k: v.clone() for k, v in self._interp.state.items()}}

    def restore(self, snap: Mapping[str, Any]) -> None:
        """Go back to a snapshot taken with `snapshot()`."""
        try:
            t, vs = int(snap["t"]), dict(snap["v"])
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"not a Session snapshot: {e}") from None
        stateful = {op.name for op in self._interp.graph if op.stateful}  # neurons and sigma-delta ops
        unknown = set(vs) - set(self._interp._neuron_params) - stateful
        if unknown:
            raise InputError(f"snapshot has state for unknown neuron(s) or delay(s) {sorted(unknown)}")
        self._interp.state.clear()
        self._interp.state.update({k: v.to(self.device, self.dtype).clone() for k, v in vs.items()})
        self.t = t

    # -- running ----------------------------------------------------------
    def _feeds(self, inputs) -> dict[str, object]:
        if isinstance(inputs, Mapping):
            unknown = set(inputs) - set(self.input_names)
            if unknown:
                raise InputError(f"unknown input(s) {sorted(unknown)}; this graph takes {self.input_names}")
            return dict(inputs)
        if isinstance(inputs, (tuple, list)) and len(self.input_names) > 1:
            if len(inputs) != len(self.input_names):
                raise InputError(f"got {len(inputs)} inputs, the graph takes {len(self.input_names)}: {self.input_names}")
            return dict(zip(self.input_names, inputs))
        if len(self.input_names) != 1:
            raise InputError(f"the graph takes {len(self.input_names)} inputs {self.input_names}: pass a dict")
        return {self.input_names[0]: inputs}

    def _encoder(self, encoder, seed: int | None):
        if encoder is None:
            return enc.get_encoder(self.encoder, seed=seed)
        if isinstance(encoder, Mapping):
            return {k: enc.get_encoder(v, seed=seed) for k, v in encoder.items()}
        return enc.get_encoder(encoder, seed=seed)

    @torch.no_grad()
    def execute(self, inputs, T: int | None = None, *, encoder=None, seed: int | None = None, reset: bool = True,
                chunk: int | None = None, probes: Iterable[str] = (), stats: bool = False) -> RunResult:
        """Run T steps and return a RunResult (outputs, probes, statistics)."""
        if reset:
            self.reset()
        check_dt = self._nir is not None and not self._dt_checked
        res = self._interp.execute(self._feeds(inputs), T, encoder=self._encoder(encoder, seed), t_offset=self.t,
                                   window=chunk, probes=probes, stats=stats or check_dt, progress=self._progress())
        self.t += res.T or 0
        if check_dt:
            self._dt_checked = True
            self._warn_silent(res)
            if not stats:
                res.stats = None
        return res

    def _warn_silent(self, res: RunResult) -> None:
        """A graph read from NIR: say when the dt it was discretised with leaves a layer silent on the first input."""
        silent = [layer.name for layer in res.stats.layers if layer.spikes == 0]
        if not silent:
            return
        nir_src = self._nir
        how = {"default": "assumed, since NIR files carry no time step", "given": "as given",
               "metadata": "as snnc recorded in the file"}[nir_src.dt_from]
        warnings.warn(f"{nir_src.source or self.graph.name}: neuron layer(s) {', '.join('%' + n for n in silent)} "
                      f"emitted no spike in {res.T} steps on the first input. Its NIR neurons were discretised with "
                      f"dt={nir_src.dt:g} s ({how}); a dt the file was not made for can leave layers silent (the "
                      f"sinabs CNN of the NIR paper is made for dt=1). Choose it with {spelling.flag('dt')} when "
                      "loading the NIR file", stacklevel=3)

    def run(self, inputs, T: int | None = None, *, encoder=None, seed: int | None = None, reset: bool = True,
            chunk: int | None = None) -> Tensor | dict[str, Tensor]:
        """Run T steps (layer by layer) and return the output sequence(s) [T, N, *].

        `inputs` is a tensor (one input) or a dict name -> tensor: float, bool, or integers
        that are all 0 or 1; other integers (e.g. uint8 pixels) are refused, since their
        scale is unknown: pass x.float() / 255 or whatever the model was trained on. A [N, *] input is
        held constant over T steps (the ANN-to-SNN default) unless an `encoder`
        ('poisson', 'latency', 'periodic', seeded by `seed`) turns it into spikes; a
        [T, N, *] input is a sequence. Neuron state is reset first unless reset=False.
        `chunk` fixes the time steps per window (default: from the memory budget);
        the result does not depend on it. With one output the tensor is returned,
        otherwise a dict name -> tensor.
        """
        return self._single(self.execute(inputs, T, encoder=encoder, seed=seed, reset=reset, chunk=chunk).outputs)

    @torch.no_grad()
    def step(self, inputs, *, encoder=None, seed: int | None = None) -> Tensor | dict[str, Tensor]:
        """One time step with persistent state: inputs [N, *] -> outputs [N, *] (streaming).

        The outputs of T calls equal `run(x, T)` step for step. Call reset() to start over.
        """
        res = self._interp.execute(self._feeds(inputs), None, encoder=self._encoder(encoder, seed),
                                   t_offset=self.t, one_step=True)
        self.t += 1
        outs = {k: (v[0] if self._interp.types[k].layout.has_time else v) for k, v in res.outputs.items()}
        return self._single(outs)

    def observe(self, inputs, T: int | None = None, *, probes: Iterable[str] = (), stats: bool = True,
                **kwargs) -> RunResult:
        """Run with probes (node names; 'name:v' for a neuron's membrane potential) and statistics.

        Probes are [T, N, *] (time first); `stats` is a RunStats (rates, spikes per
        step, SOPs vs ANN MACs, energy). Takes the keyword arguments of `run`.
        """
        return self.execute(inputs, T, probes=probes, stats=stats, **kwargs)

    def predict(self, inputs, T: int | None = None, **kwargs) -> Tensor:
        """Class labels: argmax over the last dim of the (first) output averaged over time; an output
        computed from a time mean (a TimeMean op: the model averages over T itself) is read at its last step."""
        out = self.run(inputs, T, **kwargs)
        if isinstance(out, dict):
            out = out[self.output_names[0]]
        if not self._interp.has_time:
            return out.argmax(-1)
        return (out[-1] if after_time_mean(self._interp.graph, self.output_names[0]) else rate(out)).argmax(-1)

    def _single(self, out: dict[str, Tensor]) -> Tensor | dict[str, Tensor]:
        if len(self.output_names) == 1:
            return out[self.output_names[0]]
        return {k: out[k] for k in self.output_names}

    def _progress(self):
        show = self.progress
        if show is False:
            return None
        if show is None:
            if not progress_bars.enabled():
                return None
        return _LazyBar


class _LazyBar:
    """A progress callback that shows a bar only once a run looks like it takes over ~2 s."""

    def __init__(self, total: int):
        self.total, self.done, self.start, self.bar = total, 0, time.perf_counter(), None

    def __call__(self) -> None:
        self.done += 1
        if self.bar is None:
            elapsed = time.perf_counter() - self.start
            if elapsed < 0.5 or elapsed / self.done * self.total < 2.0 or self.done >= self.total:
                return
            from rich.console import Console
            from rich.progress import Progress

            self.bar = Progress(console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("running", total=self.total, completed=self.done)
            return
        self.bar.update(self.task, completed=self.done)
        if self.done >= self.total:
            self.bar.stop()


def spike_count(seq: Tensor) -> Tensor:
    """Sum over the time dim of a [T, N, *] sequence."""
    return seq.sum(0)


def rate(seq: Tensor) -> Tensor:
    """Mean over the time dim of a [T, N, *] sequence (a firing rate, or an averaged readout)."""
    return seq.mean(0)


__all__ = ["Session", "RunResult", "rate", "spike_count"]


# The reference runtime runs every artifact that keeps its network as IR: 'triton' with its neurons in the
# Triton kernels, 'lynxi' and 'nir' (whose target files run elsewhere) as their graph.snnir.
for _target in ("snnir", "cpu", "triton", "lynxi", "nir"):
    register_session(_target, Session)
