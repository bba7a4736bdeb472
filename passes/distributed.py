"""Calibration across processes and machines with torch.distributed.

Each rank sketches its own shard of the calibration data; the sketches are then
merged by one all-reduce of their counters (SUM) and one of their maxima (MAX).
Adding counters is exactly what `ChannelSketch.merge` does, so every rank ends
with the sketches a single process would build from all the data: the same
quantiles, up to values that land on a bucket edge differently because the
ANN ran in other batches (then within the sketch's relative error).

    torchrun --nproc_per_node 4 -m snnc.cli convert model.snnir --calib big.npy -o snn.snnir

`snnc.convert` calibrates this way whenever a process group is initialized, or
when torchrun's WORLD_SIZE > 1 (it then initializes one: gloo on CPU, nccl
when CUDA is available).
"""

from __future__ import annotations

import atexit
import itertools
import os

import numpy as np
import torch
from torch import Tensor

from snnc.core.errors import InputError
from snnc.ir.graph import Graph
from snnc.passes.calibrate import ActivationStats, calibrate


def _dist():
    import torch.distributed as dist

    return dist


def is_distributed() -> bool:
    """Whether a torch.distributed process group with more than one rank is running."""
    dist = _dist()
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init_from_env() -> bool:
    """Initialize the default process group from torchrun's environment (WORLD_SIZE > 1); True if running."""
    dist = _dist()
    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
        # A group left alive at exit lets its transport threads meet the interpreter's teardown
        # ("terminate called without an active exception" from a rank that did its work): the
        # group snnc started, snnc ends, while the interpreter is still whole.
        atexit.register(_destroy_own_group)
    return dist.get_world_size() > 1


def _destroy_own_group() -> None:
    dist = _dist()
    if dist.is_initialized():
        dist.destroy_process_group()


def _device() -> torch.device:
    dist = _dist()
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def shard(data, rank: int, world: int):
    """Rank `rank`'s share of `data`: rows rank, rank + world, ... of an array, or every world-th batch."""
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(data)
    if isinstance(data, Tensor):
        return data[rank::world]
    return itertools.islice(data, rank, None, world)


def all_reduce_sums(*tensors: Tensor) -> list[Tensor]:
    """Sum tensors over all ranks (one collective; float64 and int64 are sent separately)."""
    if not is_distributed():
        return list(tensors)
    dist = _dist()
    out = []
    for t in tensors:
        buf = t.to(_device())
        dist.all_reduce(buf, op=dist.ReduceOp.SUM)
        out.append(buf.cpu())
    return out


def all_reduce_stats(stats: ActivationStats) -> ActivationStats:
    """Merge the sketches of every rank into each rank's `stats` (in place); returns it."""
    if not is_distributed():
        return stats
    dist = _dist()
    names = (sorted(stats.sketches), sorted(stats.channel_sketches))
    everyone: list = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, names)
    if any(n != names for n in everyone):
        raise InputError("ranks calibrated different activations; every rank must convert the same model")
    sketches = stats.all_sketches()
    dev = _device()
    ints = torch.cat([torch.cat([s._counts.reshape(-1), s._zeros, s._n]) for s in sketches]
                     + [torch.tensor([stats.samples])]).to(dev)
    maxes = torch.cat([s._max for s in sketches]).to(dev)
    dist.all_reduce(ints, op=dist.ReduceOp.SUM)
    dist.all_reduce(maxes, op=dist.ReduceOp.MAX)
    ints, maxes = ints.cpu(), maxes.cpu()
    pos = mpos = 0
    for s in sketches:
        c, nb = s._counts.shape
        s._counts = ints[pos:pos + c * nb].view(c, nb).clone()
        pos += c * nb
        s._zeros, s._n = ints[pos:pos + c].clone(), ints[pos + c:pos + 2 * c].clone()
        pos += 2 * c
        s._max = maxes[mpos:mpos + c].clone()
        mpos += c
    stats.samples = int(ints[pos])
    return stats


def calibrate_distributed(graph: Graph, data, *, shard_data: bool = True, **kwargs) -> ActivationStats:
    """`calibrate` on this rank's shard (or on `data` as this rank's shard), merged over all ranks.

    Without a process group it is plain `calibrate`.
    """
    if not is_distributed():
        return calibrate(graph, data, **kwargs)
    dist = _dist()
    rank, world = dist.get_rank(), dist.get_world_size()
    mine = shard(data, rank, world) if shard_data else data
    stats = calibrate(graph, mine, require_data=False, **kwargs)
    all_reduce_stats(stats)
    if stats.samples == 0:
        raise InputError("the calibration set is empty on every rank")
    return stats
