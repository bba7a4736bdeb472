"""SpikingJelly's converted model timed as its users run it: in a fresh process where snnc is never
imported (so none of snnc's process-wide settings, such as runtime/allocator.py's malloc options, apply).

    python benchmarks/sj_fresh.py BUNDLE.pt RUNS    # prints one JSON line: {"seconds": [...], "out": path}

BUNDLE.pt (written by cpu_runtime.py) holds the plain-torch model (classes from plain_nets.py), the
calibration data, the input batch, T and the normalization mode. The output of the last run is saved
next to the bundle, so the caller checks it is the same computation as its in-process SpikingJelly run.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
import warnings
from pathlib import Path

import torch

os.environ.setdefault("TQDM_DISABLE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # plain_nets, for unpickling the model


def main(bundle: str, runs: str) -> None:
    from loguru import logger
    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based.ann2snn import Converter
    from spikingjelly.activation_based.ann2snn.recipes.rate_coding import RateCodingRecipe

    logger.remove()
    b = torch.load(bundle, weights_only=False)
    calib, x, T = b["calib"], b["x"], b["T"]
    loader = [(calib[i:i + 64], None) for i in range(0, calib.shape[0], 64)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sj = Converter(recipe=RateCodingRecipe(loader, mode=b["mode"])).convert(copy.deepcopy(b["model"])).eval()

    @torch.no_grad()
    def run() -> torch.Tensor:
        functional.reset_net(sj)
        return torch.stack([sj(x) for _ in range(T)])

    run()  # warm up
    times = []
    for _ in range(int(runs)):
        t = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - t)
    assert not any(m == "snnc" or m.startswith("snnc.") for m in sys.modules), "snnc was imported"
    path = Path(bundle).with_suffix(".out.pt")
    torch.save(out, path)
    print(json.dumps({"seconds": times, "out": str(path)}))


if __name__ == "__main__":
    main(*sys.argv[1:])
