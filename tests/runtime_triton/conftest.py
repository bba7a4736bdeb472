"""Shared setup for the Triton kernel tests.

Without CUDA the kernels run in Triton's CPU interpreter. TRITON_INTERPRET
must be set before triton decorates them, i.e. before any
`snnc.runtime.triton.<kernel module>` is imported in this session.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def device() -> torch.device:
    """Where the kernels run: the GPU when there is one, else the CPU (interpreter)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
