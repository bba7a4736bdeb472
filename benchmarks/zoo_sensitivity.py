"""How much fidelity a rate code can give each zoo ANN at all: the ANN itself under rounding noise (issue 19).

    python benchmarks/zoo_sensitivity.py                       # the 12 convertible architectures, real widths
    python benchmarks/zoo_sensitivity.py --arch resnet18 --images 8 --T 16 256
    python benchmarks/zoo_sensitivity.py --weights trained     # the digits-trained weights of conversion_zoo.py
    python benchmarks/zoo_sensitivity.py --weights random-uncalibrated   # BatchNorm at its initial statistics

A converted layer with scale lambda and T steps can only say what its ANN activation a
is to within lambda / T: an IF neuron with v_init = 0.5 and a constant input rounds
T a / lambda to an integer count, an error uniform in [-lambda / 2T, lambda / 2T], and it
cannot go above lambda (one spike per step). This script runs the ANN (no SNN) with
exactly that error put on every ReLU / ReLU6 output, a > 0 only, with lambda the
layer's maximum over the calibration images ('max' normalization: nothing clips), and
prints the cosine of the logits to the clean ANN's for each T, and the cosine when
every layer is only clipped at its 99.9th percentile (the cap of the '99.9%' mode, which
does not shrink with T). No conversion is involved: it is the ANN's own sensitivity to
the rate code's rounding, a ceiling for a converted SNN (which also has the IF neuron's
timing errors). Random weights and BatchNorm statistics as in conversion_zoo.py, or with
`--weights trained` its digits-trained networks (benchmarks/zoo_trained.py, the same cache), its
digits calibration images and its held-out digits test images.

The last column, "input-dependent share", is how much of the logits changes with the input:
||l - mean over images(l)|| / ||l|| over the test images. Where it is small, the logits are
mostly one constant vector (the biases), and any output that reproduces that vector has a
cosine near 1 to them whatever it does with the input.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import zoo_trained  # noqa: E402
from tests.zoo.ann import ARCHITECTURES, build, images  # noqa: E402

SPIKING = ["resnet18", "resnet34", "vgg11_bn", "vgg16_bn", "squeezenet1_1", "googlenet", "densenet121",
           "mobilenet_v2", "shufflenet_v2_x1_0", "efficientnet_b0", "regnet_y_400mf", "mobilenet_v3_small"]


@contextmanager
def patched(fn):
    """Every F.relu / F.hardtanh(0, a) call (nn.ReLU and nn.ReLU6 call these) goes through fn(i, out, bound)."""
    relu, hardtanh = F.relu, F.hardtanh
    count = [0]

    def new_relu(x, inplace=False):
        count[0] += 1
        return fn(count[0] - 1, relu(x), None)

    def new_hardtanh(x, min_val=-1.0, max_val=1.0, inplace=False):
        out = hardtanh(x, min_val, max_val)
        if min_val != 0.0:
            return out
        count[0] += 1
        return fn(count[0] - 1, out, max_val)

    F.relu, F.hardtanh = new_relu, new_hardtanh
    try:
        yield count
    finally:
        F.relu, F.hardtanh = relu, hardtanh


def scales(model, calib: torch.Tensor, q: float, channelwise: bool = False) -> list:
    """Per ReLU call (in call order): the q-quantile (q = 1: the maximum) of its output over `calib`;
    channelwise (q = 1 only): each channel's maximum (dim 1), a tensor shaped to broadcast."""
    outs: dict[int, list[torch.Tensor]] = {}

    def rec(i, out, bound):
        v = out.detach()
        if channelwise:  # [N, C, ...] -> [1, C, 1, ...]
            v = v.transpose(0, 1).reshape(v.shape[1], -1).amax(1).reshape(1, -1, *([1] * (v.dim() - 2)))
        outs.setdefault(i, []).append(v if channelwise else v.flatten())
        return out

    with torch.no_grad():
        for k in range(0, calib.shape[0], 64):
            with patched(rec):  # call indices restart with each forward
                model(calib[k:k + 64])
    res = []
    for i in sorted(outs):
        if channelwise:
            res.append(torch.stack(outs[i]).amax(0))
            continue
        v = torch.cat(outs[i])
        if q >= 1.0:
            res.append(float(v.max()))
        else:  # the same rank snnc's sketch reads: zeros count
            res.append(float(v.kthvalue(max(1, min(v.numel(), round(q * v.numel())))).values))
    return res


def perturbed(model, x, lams: list[float], T: float | None, seed: int = 0) -> torch.Tensor:
    """The logits with each ReLU output clipped at its lambda and, for T, rounding noise +-lambda/2T on a > 0."""
    gen = torch.Generator().manual_seed(seed)

    def noisy(i, out, bound):
        lam = lams[i] if bound is None else torch.clamp(torch.as_tensor(lams[i]), max=bound)
        clipped = out.clamp(max=lam)
        if T is None:
            return clipped
        noise = (torch.rand(out.shape, generator=gen) - 0.5) * (lam / T)
        return torch.where(out > 0, (clipped + noise).clamp(min=0.0), clipped)

    with torch.no_grad(), patched(noisy):
        return model(x)


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine of each row pair, whatever their scale (F.cosine_similarity floors each norm at 1e-8: the
    logits of a network whose signal vanished with depth, ~1e-10, would read as orthogonal)."""
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(torch.finfo(a.dtype).tiny)


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    """The mean cosine over images (rows), in float64."""
    return float(cosine(a.double(), b.double()).mean())


def input_dependent_share(logits: torch.Tensor) -> float:
    """||l - mean over images(l)|| / ||l|| for logits [images, classes]: 0 when they ignore the input."""
    return float((logits - logits.mean(0)).norm() / logits.norm())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", help=f"comma list (default: {', '.join(SPIKING)})")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--blocks", type=int, default=None)
    ap.add_argument("--images", type=int, default=None, help="test images (default: 32, or 64 with --weights trained)")
    ap.add_argument("--weights", choices=("random", "trained", "random-uncalibrated"), default="random",
                    help="random weights, or conversion_zoo.py's digits-trained ones (benchmarks/zoo_trained.py), "
                         "or random weights with every BatchNorm at its initial statistics")
    ap.add_argument("--train-steps", type=int, default=None, help="--weights trained: as in conversion_zoo.py")
    ap.add_argument("--train-batch", type=int, default=zoo_trained.DEFAULT_BATCH)
    ap.add_argument("--calib", type=int, default=256)
    ap.add_argument("--T", type=int, nargs="+", default=[4, 8, 16, 32, 64, 256, 1024])
    ap.add_argument("--channelwise", action="store_true", help="lambda = each channel's maximum (snnc's "
                                                                  "channelwise=True) instead of the layer's")
    args = ap.parse_args(argv)
    names = args.arch.split(",") if args.arch else SPIKING
    unknown = [n for n in names if n not in ARCHITECTURES]
    if unknown:
        ap.error(f"unknown architecture {', '.join(unknown)}")
    digits = zoo_trained.digits32() if args.weights == "trained" else None
    if args.images is None:
        args.images = 64 if digits is not None else 32
    if digits is not None:  # conversion_zoo.py --weights trained's images
        calib, x = digits.x_train[:args.calib], digits.x_test[:args.images]
    else:
        calib, x = images(args.calib, seed=101), images(args.images, seed=202)  # conversion_zoo.py's images
    print(f"torch threads: {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print("| architecture | ReLU calls | " + " | ".join(f"T={T}" for T in args.T)
          + " | 99.9% clip alone | input-dependent share |")
    print("|---|---:|" + "---:|" * (len(args.T) + 2))
    for name in names:
        if digits is not None:
            r = zoo_trained.recipe(name, args.train_steps, args.train_batch, width=args.width, blocks=args.blocks)
            model = zoo_trained.load_or_train(r, digits).model
        else:
            bn_images = 0 if args.weights == "random-uncalibrated" else args.calib  # 0: the initial statistics
            model = build(name, width=args.width, blocks=args.blocks, calib_images=bn_images)
        with torch.no_grad():
            ref = model(x)
        lmax = scales(model, calib, 1.0, args.channelwise)
        cells = [f"{cos(perturbed(model, x, lmax, T), ref):.4f}" for T in args.T]
        clip = cos(perturbed(model, x, scales(model, calib, 0.999), None), ref)
        print(f"| {name} | {len(lmax)} | " + " | ".join(cells) + f" | {clip:.4f} | {input_dependent_share(ref):.2g} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
