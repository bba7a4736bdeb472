"""Run by tests/passes/test_distributed.py under torchrun: convert with calibration sharded over the ranks.

Usage: torchrun --nproc_per_node 2 tests/passes/dist_worker.py OUT.json
Rank 0 writes the merged statistics and the converted graph's scales and biases.
"""

import json
import sys

import torch
import torch.distributed as dist


def model_and_data():
    """The same small ANN and calibration set in every process (and in the test)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
                                torch.nn.Flatten(), torch.nn.Linear(64, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    data = torch.rand(203, 1, 8, 8, generator=torch.Generator().manual_seed(1))  # 203: uneven shards
    return model.eval(), data


def summary(stats, graph) -> dict:
    return {"samples": stats.samples,
            "n": {k: s.n for k, s in stats.sketches.items()},
            "max": {k: s.max for k, s in stats.sketches.items()},
            "q999": {k: s.quantile(0.999) for k, s in stats.sketches.items()},
            "channel_q99": {k: s.channel_quantile(0.99).tolist() for k, s in stats.channel_sketches.items()},
            "scales": graph.meta["conversion"]["scales"],
            "biases": {k: v.tolist() for k, v in graph.params.items() if "bias" in k}}


def main(out: str) -> None:
    import snnc
    from snnc.frontends import trace
    from snnc.passes import calibrate_distributed, fuse_bn

    dist.init_process_group("gloo")
    model, data = model_and_data()
    stats = calibrate_distributed(fuse_bn(trace(model, (1, 8, 8))), data, channelwise=True, show_progress=False)
    graph = snnc.convert(model, data, "mse", channelwise=True, time_steps=4, bias_correction=True,
                         show_progress=False, batch_size=50)
    if dist.get_rank() == 0:
        with open(out, "w") as f:
            json.dump({"world": dist.get_world_size(), **summary(stats, graph)}, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
