"""Errors raised by `snnc.nn`, part of the `snnc.core.errors.SnncError` hierarchy.

Each one also derives from the builtin a SpikingJelly user would catch
(`ValueError`, `RuntimeError`, `TypeError`), so ported `except` clauses keep working.
"""

from __future__ import annotations

from snnc.core import errors


class NNError(errors.SnncError):
    """Base class of every error raised by `snnc.nn`."""


class StepModeError(NNError, ValueError):
    """A step mode that is unknown, or not supported by the module it is set on."""


class ConfigError(NNError, ValueError):
    """A constructor argument or attribute with an invalid value."""


class InputError(NNError, errors.InputError, ValueError):
    """An input tensor with the wrong shape or values."""


class StateError(NNError, RuntimeError):
    """A stored state (e.g. the membrane potential) that does not fit the input."""


class BackendError(NNError, ValueError):
    """A neuron backend that is not registered or does not support the neuron."""


class NoNeuronParamsError(NNError, TypeError):
    """A neuron whose dynamics `snnc.core.dynamics.NeuronParams` cannot describe."""
