"""Launch plumbing shared by the kernels: block sizes, device and dtype checks, [T, N] views."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import triton
from torch import Tensor

from .errors import KernelInputError

# Input currents and spikes may use these; the state is always fp32.
INPUT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
SPIKE_DTYPES = INPUT_DTYPES + (torch.uint8, torch.int8, torch.bool)
COUNT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.int32)


@dataclass(frozen=True)
class LaunchConfig:
    """Neurons per program (a power of two), warps per program, input rows loaded ahead (1, 2 or 4)."""

    block: int
    num_warps: int
    prefetch: int = 2

    def __post_init__(self) -> None:
        if self.block < 16 or self.block & (self.block - 1) or self.prefetch not in (1, 2, 4):
            raise KernelInputError(f"invalid launch config {self}: block a power of two >= 16, prefetch 1, 2 or 4")


_override: LaunchConfig | None = None


@triton.jit
def _probe():
    pass


def interpreting() -> bool:
    """True when the kernels run in Triton's CPU interpreter.

    Decided when triton decorated them (TRITON_INTERPRET=1 at import), which a
    later change of the environment variable does not undo.
    """
    return not isinstance(_probe, triton.runtime.JITFunction)


@contextlib.contextmanager
def override(config: LaunchConfig) -> Iterator[None]:
    """Force one launch configuration inside the block (benchmark sweeps)."""
    global _override
    saved, _override = _override, config
    try:
        yield
    finally:
        _override = saved


def choose_launch(n: int, device: torch.device) -> LaunchConfig:
    """Pick the block size for n neurons.

    On a GPU: the largest block (up to 1024) that still gives about four
    programs per SM, 4-8 neurons per thread for 128-bit accesses, and X loaded
    4 rows ahead when there are too few neurons per SM to keep the memory
    system busy otherwise (about 32 KiB in flight per SM hides DRAM latency).
    Under the interpreter: one big block, since each program is a Python loop.
    `benchmarks/triton_gpu.py --sweep` measures the alternatives.
    """
    if _override is not None:
        return _override
    if interpreting() or device.type != "cuda":
        return LaunchConfig(block=min(4096, max(16, _next_pow2(n))), num_warps=4, prefetch=2)
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    block = 1024
    while block > 128 and -(-n // block) < 4 * sms:
        block //= 2
    prefetch = 4 if n < 8192 * sms else 2
    return LaunchConfig(block=block, num_warps=max(1, block // 256), prefetch=prefetch)


def check_device(**tensors: Tensor | None) -> None:
    """All tensors on one device, and a CUDA one unless the interpreter runs the kernels."""
    devices = {name: t.device for name, t in tensors.items() if t is not None}
    if len(set(devices.values())) > 1:
        raise KernelInputError(f"tensors are on different devices: {devices}")
    if not interpreting():
        cpu = [name for name, d in devices.items() if d.type != "cuda"]
        if cpu:
            raise KernelInputError(
                f"Triton kernels need CUDA tensors, but {cpu} are on {devices[cpu[0]]}; "
                "move them to the GPU, or set TRITON_INTERPRET=1 before importing triton to run on the CPU"
            )


def check_dtype(name: str, dtype: torch.dtype, allowed: tuple[torch.dtype, ...]) -> None:
    if dtype not in allowed:
        raise KernelInputError(f"{name} has dtype {dtype}; supported: {[str(d) for d in allowed]}")


def time_major_2d(x_seq: Tensor) -> Tensor:
    """View x_seq [T, *shape] as a contiguous [T, N] (copies only if x_seq is not contiguous)."""
    if not isinstance(x_seq, Tensor):
        raise KernelInputError(f"x_seq must be a tensor, got {type(x_seq).__name__}")
    if x_seq.dim() < 1 or x_seq.shape[0] == 0:
        raise KernelInputError(f"x_seq must be [T, ...] with T >= 1, got shape {tuple(x_seq.shape)}")
    check_dtype("x_seq", x_seq.dtype, INPUT_DTYPES)
    x2d = x_seq.reshape(x_seq.shape[0], -1)
    return x2d if x2d.is_contiguous() else x2d.contiguous()


def grid(n: int, config: LaunchConfig) -> tuple[int]:
    return (max(1, -(-n // config.block)),)


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())
