"""Runtimes: the CPU reference runtime (sessions, encoders, statistics), the Triton kernels, the Loihi emulation.

Importing this package registers every runtime's session for its targets (snnc.runtime.protocol).
"""

from snnc.runtime.encoders import Constant, Latency, Periodic, Poisson, get_encoder
from snnc.runtime.interpreter import Interpreter, RunResult
from snnc.runtime.loihi import LoihiSession
from snnc.runtime.protocol import RuntimeSession, open_session, register_session
from snnc.runtime.session import Session, rate, spike_count
from snnc.runtime.stats import RunStats

__all__ = ["Interpreter", "Session", "LoihiSession", "RuntimeSession", "open_session", "register_session",
           "RunResult", "RunStats", "rate", "spike_count", "get_encoder", "Constant", "Poisson", "Latency", "Periodic"]
