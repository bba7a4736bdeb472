"""Runtimes: the CPU reference runtime (sessions, encoders, statistics) and the Triton kernels."""

from snnc.runtime.encoders import Constant, Latency, Periodic, Poisson, get_encoder
from snnc.runtime.interpreter import Interpreter, RunResult
from snnc.runtime.session import Session, rate, spike_count
from snnc.runtime.stats import RunStats

__all__ = ["Interpreter", "Session", "RunResult", "RunStats", "rate", "spike_count", "get_encoder",
           "Constant", "Poisson", "Latency", "Periodic"]
