"""Runtimes: the CPU reference interpreter, sessions, and (later) Triton kernels."""

from snnc.runtime.interpreter import Interpreter
from snnc.runtime.session import Session, rate, spike_count

__all__ = ["Interpreter", "Session", "rate", "spike_count"]
