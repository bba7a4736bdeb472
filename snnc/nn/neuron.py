"""Spiking neuron layers.

A neuron layer runs the three equations of `snnc.core.dynamics` at every step:

    charge:  H[t] = f(V[t-1], X[t])                       (neuronal_charge, per class)
    fire:    S[t] = Theta(H[t] - V_th)                     (the surrogate function)
    reset:   V[t] = H[t] (1 - S[t]) + V_reset S[t]         hard reset (v_reset is a float)
             V[t] = H[t] - V_th S[t]                       soft reset (v_reset=None)

A custom neuron subclasses BaseNode and overrides `neuronal_charge` only.
The multi-step forward is looked up by `backend` in a registry
(`register_backend`), so faster implementations (Triton) plug in without
changing the modules.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from snnc.core import dynamics
from snnc.core.dynamics import NeuronKind, NeuronParams
from snnc.nn import surrogate
from snnc.nn.base import MemoryModule
from snnc.nn import triton_backend
from snnc.nn.errors import BackendError, ConfigError, NoNeuronParamsError

__all__ = ["BaseNode", "IFNode", "LIFNode", "ParametricLIFNode", "SignedIFNode", "register_backend",
           "registered_backends"]

MultiStepImpl = Callable[["BaseNode", Tensor], Tensor]


@dataclass(frozen=True)
class _Backend:
    impl: MultiStepImpl
    supports: Callable[["BaseNode"], bool]


_BACKENDS: dict[str, _Backend] = {}


def register_backend(name: str, impl: MultiStepImpl, supports: Callable[[BaseNode], bool] = lambda node: True) -> None:
    """Make `node.backend = name` run `impl(node, x_seq) -> spike_seq` in multi-step mode.

    `impl` must update `node.v` (and `node.v_seq` when `node.store_v_seq`) as
    the torch backend does; `supports(node)` says which neurons it can run.
    """
    _BACKENDS[name] = _Backend(impl, supports)


def registered_backends() -> tuple[str, ...]:
    return tuple(_BACKENDS)


def _as_float(owner: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{owner}: {name} must be a real number, got {value!r}")
    return float(value)


def _time_constant(owner: str, name: str, value: object) -> float:
    """A LIF time constant (`tau`, `init_tau`): a real number > 1."""
    tau = _as_float(owner, name, value)
    if not tau > 1.0:
        raise ConfigError(f"{owner}: {name} must be > 1, got {tau!r}")
    return tau


def _as_bool(owner: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{owner}: {name} must be a bool, got {value!r}")
    return value


class BaseNode(MemoryModule):
    """Base class of spiking neuron layers; subclasses define `neuronal_charge`.

    Args:
        v_threshold: firing threshold V_th.
        v_reset: potential after a spike (hard reset), or None for soft reset
            (subtract V_th).  Also the initial potential (0 for soft reset).
        surrogate_function: Heaviside forward / surrogate backward; a fresh
            `surrogate.Sigmoid()` when None.
        detach_reset: cut the gradient through the reset's use of S[t].
        store_v_seq: in multi-step mode keep V[t] of every step in `v_seq` [T, N, *].
    """

    def __init__(
        self,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        surrogate_function: Callable[[Tensor], Tensor] | None = None,
        detach_reset: bool = False,
        step_mode: str = "s",
        backend: str = "torch",
        store_v_seq: bool = False,
    ) -> None:
        super().__init__(step_mode)
        owner = type(self).__name__
        self.v_threshold = _as_float(owner, "v_threshold", v_threshold)
        self.v_reset = None if v_reset is None else _as_float(owner, "v_reset", v_reset)
        self.detach_reset = _as_bool(owner, "detach_reset", detach_reset)
        self.surrogate_function = surrogate.Sigmoid() if surrogate_function is None else surrogate_function
        self.register_memory("v", self._reset_params().initial_v)
        self.store_v_seq = store_v_seq
        # Only the name is checked here: subclasses set their own attributes after this, and
        # `supports(node)` may need them; multi_step_forward checks support on use.
        if backend not in _BACKENDS:
            raise BackendError(f"{owner}: backend {backend!r} is not registered; registered: {list(_BACKENDS)}")
        self._backend = backend

    # ---- options ---------------------------------------------------------------
    @property
    def store_v_seq(self) -> bool:
        return self._store_v_seq

    @store_v_seq.setter
    def store_v_seq(self, value: bool) -> None:
        self._store_v_seq = _as_bool(type(self).__name__, "store_v_seq", value)
        self.v_seq: Tensor | None = None

    @property
    def supported_backends(self) -> tuple[str, ...]:
        """Backends that can run this neuron's multi-step forward ('torch' always)."""
        return tuple(name for name, b in _BACKENDS.items() if b.supports(self))

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, name: str) -> None:
        if name not in self.supported_backends:
            raise BackendError(
                f"{type(self).__name__}: backend {name!r} is not available; supported: {list(self.supported_backends)}"
            )
        self._backend = name

    def reset(self) -> None:
        super().reset()
        self.v_seq = None

    def extra_repr(self) -> str:
        return (
            f"v_threshold={self.v_threshold}, v_reset={self.v_reset}, detach_reset={self.detach_reset}, "
            f"step_mode={self.step_mode}, backend={self.backend}"
        )

    # ---- the three equations ---------------------------------------------------
    def neuronal_charge(self, x: Tensor) -> None:
        """H[t] = f(V[t-1], X[t]): read self.v (V[t-1]) and write self.v (H[t])."""
        raise NotImplementedError(f"{type(self).__name__} must implement neuronal_charge")

    def neuronal_fire(self) -> Tensor:
        """S[t] = Theta(H[t] - V_th) through the surrogate function."""
        return self.surrogate_function(self.v - self.v_threshold)

    def neuronal_reset(self, spike: Tensor) -> None:
        """V[t] from H[t] (self.v) and S[t] (`snnc.core.dynamics.reset`)."""
        spike_d = spike.detach() if self.detach_reset else spike
        self.v = dynamics.reset(self._reset_params(), self.v, spike_d)

    def v_float_to_tensor(self, x: Tensor) -> None:
        """Broadcast the initial potential to x's shape on the first step after a reset."""
        self.materialize_memory("v", x)

    def single_step_forward(self, x: Tensor) -> Tensor:
        self.v_float_to_tensor(x)
        self.neuronal_charge(x)
        spike = self.neuronal_fire()
        self.neuronal_reset(spike)
        return spike

    def multi_step_forward(self, x_seq: Tensor) -> Tensor:
        """Run the whole sequence with the implementation registered for `self.backend`."""
        backend = _BACKENDS.get(self.backend)
        if backend is None or not backend.supports(self):
            raise BackendError(
                f"{type(self).__name__}: backend {self.backend!r} cannot run this neuron; "
                f"supported: {list(self.supported_backends)}"
            )
        return backend.impl(self, x_seq)

    # ---- description for the compiler ------------------------------------------
    def _reset_params(self) -> NeuronParams:
        """IF parameters with this layer's threshold and reset: where `v_reset: float | None` becomes a ResetMode."""
        mode, v_reset = dynamics.reset_from_v_reset(self.v_reset)
        return NeuronParams(NeuronKind.IF, self.v_threshold, mode, v_reset)

    def _require_own_charge(self, cls: type[BaseNode]) -> None:
        if type(self).neuronal_charge is not cls.neuronal_charge:
            raise NoNeuronParamsError(
                f"{type(self).__name__} overrides neuronal_charge, so its dynamics are not {cls.__name__}'s; "
                "NeuronParams can describe IFNode, LIFNode and ParametricLIFNode only"
            )

    def neuron_params(self) -> NeuronParams:
        """The dynamics of this layer as `snnc.core.dynamics.NeuronParams`."""
        raise NoNeuronParamsError(
            f"{type(self).__name__} is a custom neuron; NeuronParams can describe IFNode, LIFNode and "
            "ParametricLIFNode only"
        )


def _torch_multi_step(node: BaseNode, x_seq: Tensor) -> Tensor:
    """The reference multi-step forward: the single-step forward in a loop over T."""
    spikes, v_seq = [], []
    for t in range(x_seq.shape[0]):
        spikes.append(node.single_step_forward(x_seq[t]))
        if node.store_v_seq:
            v_seq.append(node.v)
    if node.store_v_seq:
        node.v_seq = torch.stack(v_seq)
    return torch.stack(spikes)


register_backend("torch", _torch_multi_step)


class IFNode(BaseNode):
    """Integrate-and-fire: H[t] = V[t-1] + X[t]."""

    def neuronal_charge(self, x: Tensor) -> None:
        self.v = dynamics.charge(self._reset_params(), self.v, x)

    def neuron_params(self) -> NeuronParams:
        self._require_own_charge(IFNode)
        return self._reset_params()


def _leaky_params(node: LIFNode | ParametricLIFNode, **tau: float) -> NeuronParams:
    """LIF parameters with the node's threshold, reset and decay_input, and `tau=` where given (a
    ParametricLIFNode's charge passes its decay instead)."""
    r = node._reset_params()
    return NeuronParams(NeuronKind.LIF, r.v_threshold, r.reset, r.v_reset, decay_input=node.decay_input, **tau)


class LIFNode(BaseNode):
    """Leaky integrate-and-fire with time constant tau > 1.

        decay_input:     H[t] = V[t-1] + (X[t] - (V[t-1] - V_reset)) / tau
        not decay_input: H[t] = V[t-1] - (V[t-1] - V_reset) / tau + X[t]

    with V_reset = 0 for soft reset.
    """

    def __init__(
        self,
        tau: float = 2.0,
        decay_input: bool = True,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        surrogate_function: Callable[[Tensor], Tensor] | None = None,
        detach_reset: bool = False,
        step_mode: str = "s",
        backend: str = "torch",
        store_v_seq: bool = False,
    ) -> None:
        tau = _time_constant(type(self).__name__, "tau", tau)
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset, step_mode, backend, store_v_seq)
        self.tau = tau
        self.decay_input = _as_bool(type(self).__name__, "decay_input", decay_input)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", tau={self.tau}"

    def _lif_params(self) -> NeuronParams:
        return _leaky_params(self, tau=float(self.tau))

    def neuron_params(self) -> NeuronParams:
        self._require_own_charge(LIFNode)
        return self._lif_params()

    def neuronal_charge(self, x: Tensor) -> None:
        self.v = dynamics.charge(self._lif_params(), self.v, x)


class ParametricLIFNode(BaseNode):
    """LIF with a learnable time constant: tau = 1 / sigmoid(w), w = -log(init_tau - 1).

    The leak multiplies by sigmoid(w) (as SpikingJelly does) rather than dividing by tau.
    """

    def __init__(
        self,
        init_tau: float = 2.0,
        decay_input: bool = True,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        surrogate_function: Callable[[Tensor], Tensor] | None = None,
        detach_reset: bool = False,
        step_mode: str = "s",
        backend: str = "torch",
        store_v_seq: bool = False,
    ) -> None:
        init_tau = _time_constant(type(self).__name__, "init_tau", init_tau)
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset, step_mode, backend, store_v_seq)
        self.decay_input = _as_bool(type(self).__name__, "decay_input", decay_input)
        self.w = nn.Parameter(torch.as_tensor(-math.log(init_tau - 1.0)))

    @property
    def tau(self) -> float:
        """The current time constant 1 / sigmoid(w)."""
        with torch.no_grad():
            return float(1.0 / torch.sigmoid(self.w.detach().double()))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", tau={self.tau}"

    def neuron_params(self) -> NeuronParams:
        """LIF parameters with the current tau."""
        self._require_own_charge(ParametricLIFNode)
        return _leaky_params(self, tau=self.tau)

    def neuronal_charge(self, x: Tensor) -> None:
        self.v = dynamics.charge(_leaky_params(self), self.v, x, decay=self.w.sigmoid())



class SignedIFNode(MemoryModule):
    """Signed integrate-and-fire: spikes of +1 and -1 (the neuron `snnc.convert(..., signed=True)` makes).

        H[t] = V[t-1] + X[t]
        S[t] = +1 if H[t] >= V_th;  -1 if H[t] < 0 and count[t-1] > 0;  else 0
        V[t] = H[t] - V_th S[t]          count[t] = count[t-1] + S[t]

    A -1 spike takes back an earlier spike once later input has cancelled it, so after t steps the
    spikes sum to the ReLU of the summed input (in units of V_th) whatever order it came in
    (`snnc.core.dynamics.signed_if_step`). Not a BaseNode: it has no reset mode and its output is
    signed. Traced, it becomes the IR's `signed_if`, which the cpu, triton and lynxi targets run.

    Args:
        v_threshold: V_th (> 0).
        v_init: V before the first step (the conversion starts at V_th / 2).
        surrogate_function: the gradient of each of the two comparisons (forward: the exact steps);
            a fresh `surrogate.Sigmoid()` when None.
    """

    def __init__(self, v_threshold: float = 1.0, v_init: float = 0.0,
                 surrogate_function: Callable[[Tensor], Tensor] | None = None, step_mode: str = "s") -> None:
        super().__init__(step_mode)
        owner = type(self).__name__
        self.v_threshold = _as_float(owner, "v_threshold", v_threshold)
        if not self.v_threshold > 0:
            raise ConfigError(f"{owner}: v_threshold must be > 0, got {self.v_threshold!r}")
        self.v_init = _as_float(owner, "v_init", v_init)
        self.surrogate_function = surrogate.Sigmoid() if surrogate_function is None else surrogate_function
        self.register_memory("v", self.v_init)
        self.register_memory("count", 0.0)

    def extra_repr(self) -> str:
        return f"v_threshold={self.v_threshold}, v_init={self.v_init}, step_mode={self.step_mode}"

    def single_step_forward(self, x: Tensor) -> Tensor:
        v, count = self.materialize_memory("v", x), self.materialize_memory("count", x)
        exact, _, self.count = dynamics.signed_if_step(v.detach(), count, x.detach(), self.v_threshold)
        h = v + x
        smooth = self.surrogate_function(h - self.v_threshold) - self.surrogate_function(-h) * (count > 0)
        spike = exact + (smooth - smooth.detach())  # the exact steps forward, the surrogate's slope backward
        self.v = h - spike * self.v_threshold
        return spike


def _triton_supports(node: BaseNode) -> bool:
    try:
        return triton_backend.supports(node)
    except ImportError:  # triton is not installed (it has wheels for Linux only)
        return False


def _triton_multi_step(node: BaseNode, x_seq: Tensor) -> Tensor:
    return triton_backend.multi_step(node, x_seq)


register_backend("triton", _triton_multi_step, _triton_supports)
