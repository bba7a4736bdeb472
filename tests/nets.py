"""Networks for tests that must hold on any CPU: stored or constructed, never trained in the test run.

Training gives other weights on another CPU (the SIMD width changes the order of
float sums; torch.randn has a vectorized path of its own), so a test that asserts
what a freshly trained network does holds only where it was written. Two kinds
of network replace training here:

* `digits_cnn()`: the demo's DigitsCNN, trained once and stored in
  tests/data/digits_cnn.npz (tests/data/make_digits_cnn.py wrote it) with every
  weight rounded to 5 or 6 significant bits and BatchNorms exact in float32.
  With the digits pixels (k/16), its float32 logits on the digits data are exact
  in any summation order, so its predictions and accuracy are the same numbers
  everywhere (tests/test_fixture_nets.py checks this). The accuracy tests use it:
  a network built in closed form converts to an SNN far worse at low T and
  after reset-to-0 than a trained one, which those tests are about.
* networks with random dyadic weights (`on_grid`, `set_layer`, `set_bn`: small
  integers from torch.randint, whose integer RNG is the same on every CPU, times a
  power of two), for tests about exact agreement between engines. After
  `snap_scales` every value such a network computes is a multiple of a known
  power of two with few significant bits; `exactness_bits` computes how many, per
  op. When that fits the dtype an op computes in, every partial sum is exact and
  any engine, in any summation order, gives the reference's bits.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from snnc.demo import DigitsCNN
from snnc.ir import ops
from snnc.ir.graph import Graph

DIGITS_CNN_FILE = Path(__file__).parent / "data" / "digits_cnn.npz"
BN_EPS = 2.0 ** -60  # below half an ulp of any running_var >= 2^-8 in float32 and float64: var + eps == var


@functools.lru_cache(maxsize=1)
def _digits_state() -> dict[str, torch.Tensor]:
    with np.load(DIGITS_CNN_FILE, allow_pickle=False) as f:
        return {k: torch.from_numpy(f[k]) for k in f.files}


def digits_cnn() -> DigitsCNN:
    """The stored digits CNN (99.56% on the digits test split): a fresh module on each call."""
    model = DigitsCNN()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps = BN_EPS
    model.load_state_dict(_digits_state())
    return model.eval()


# -- random dyadic networks ----------------------------------------------------------
def on_grid(shape, lo: int, hi: int, shift: int, gen: torch.Generator) -> torch.Tensor:
    """Integers in [lo, hi] divided by 2**shift (exact in float32 and float16)."""
    return torch.randint(lo, hi + 1, tuple(shape), generator=gen).float() / 2 ** shift


def set_layer(layer: nn.Module, gen: torch.Generator, w: tuple[int, int, int], b: tuple[int, int, int]) -> None:
    """Weights on_grid(*w), bias on_grid(*b)."""
    with torch.no_grad():
        layer.weight.copy_(on_grid(layer.weight.shape, *w, gen))
        if layer.bias is not None:
            layer.bias.copy_(on_grid(layer.bias.shape, *b, gen))


def set_bn(bn: nn.modules.batchnorm._BatchNorm, gen: torch.Generator, beta: tuple[int, int] = (-2, 2)) -> None:
    """y = (x - mean) / 2 * gamma + beta: mean and beta on 1/16, gamma in {1, 2}; exact, and not the identity."""
    c = bn.num_features
    bn.eps = BN_EPS
    with torch.no_grad():
        bn.running_var.fill_(4.0)
        bn.running_mean.copy_(on_grid([c], -2, 2, 4, gen))
        bn.weight.copy_(on_grid([c], 1, 2, 0, gen))
        bn.bias.copy_(on_grid([c], *beta, 4, gen))


def round_bits(t: torch.Tensor, bits: int) -> torch.Tensor:
    """t rounded to the multiples of the power of two that leaves `bits` significant bits to its largest element."""
    t = torch.as_tensor(t)
    top = float(t.abs().max())
    if top == 0:
        return t.clone()
    k = bits - 1 - math.frexp(top)[1]
    return (torch.round(t.double() * 2.0 ** k) / 2.0 ** k).to(t.dtype)


def dyadic_(net: nn.Module, bits: int = 5) -> nn.Module:
    """Round a network's weights in place so its sums are exact: Conv/Linear weights and biases and BatchNorm
    affines to `bits` significant bits, BatchNorm variances to a power of 4 with eps 2^-60 (sqrt exact)."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(round_bits(m.weight, bits))
                if m.bias is not None:
                    m.bias.copy_(round_bits(m.bias, bits))
            elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_var is not None:
                m.eps = BN_EPS
                m.running_var.copy_(4.0 ** torch.round(torch.log2(m.running_var.double()) / 2))
                m.running_mean.copy_(round_bits(m.running_mean, bits))
                if m.affine:
                    m.weight.copy_(round_bits(m.weight, bits))
                    m.bias.copy_(round_bits(m.bias, bits))
    return net


def dyadic_inputs(shape, gen: torch.Generator | None = None, hi: float = 1.0) -> torch.Tensor:
    """Uniform-looking inputs in [0, hi] on a grid of hi/16: exact products with dyadic weights."""
    return torch.randint(0, 17, tuple(shape), generator=gen).float() * (hi / 16)


# -- the exactness premise -------------------------------------------------------------
def unit(t: torch.Tensor) -> float:
    """The largest power of two that divides every element of t (inf when t is all zeros).

    Every float is a multiple of some power of two; a value that is not a short dyadic number just has a
    tiny unit (lambda = 1.37... has 2^-52), which `exactness_bits` then reports as many bits.
    """
    t = t.detach().double().flatten()
    t = t[t != 0]
    if not len(t):
        return math.inf
    mant, exp = torch.frexp(t)  # t = mant * 2^exp, 0.5 <= |mant| < 1: mant * 2^53 is an integer
    ints = (mant * 2.0 ** 53).long()
    lowest = ints & -ints  # the lowest set bit, a power of two 2^(e - 1)
    e = torch.frexp(lowest.double())[1]
    return 2.0 ** int((exp - 53 + e - 1).min())


def _pow2(x: float) -> bool:
    return x > 0 and math.frexp(x)[0] == 0.5


def snap_scales(graph: Graph) -> Graph:
    """A copy of `graph` with every scalar Scale factor rounded to the nearest power of two (in log2).

    Conversion gives factors lambda and 1/lambda from calibration; as powers of two they multiply exactly.
    A factor within 2% of a rounding midpoint is refused: lambda a last bit different on another machine
    could round the other way.
    """
    g = graph.copy()
    for op in list(g):
        if isinstance(op, ops.Scale) and op.weight is None and not _pow2(op.factor):
            e = math.log2(op.factor)
            assert abs(e - math.floor(e) - 0.5) > 0.02, f"{op.name}: factor {op.factor} is near a rounding midpoint"
            g.replace_op(op.model_copy(update={"factor": 2.0 ** round(e)}))
    return g


def exactness_bits(graph: Graph, *, time_steps: int, x_max: float = 1.0,
                   x_unit: float = 1 / 16) -> dict[str, tuple[float, float]]:
    """Per op, (the significant bits that hold every value and every partial sum it computes exactly, the
    power of two all of them are multiples of); a neuron's are those of its membrane potential.

    Forward bounds: every value is a multiple of a power of two u with |value| <= m (the inputs: multiples
    of `x_unit` in [-x_max, x_max]). A sum of terms t_i needs log2(sum |t_i| / u + 1) bits, whatever order
    it is added in; a neuron's membrane potential, over `time_steps` steps, adds one input and takes away
    at most one threshold per step. inf where the analysis cannot bound an op (a pooling divisor that is
    not a power of two, a LIF's decay, an op it does not know).
    """
    bound: dict[str, tuple[float, float]] = {}  # value -> (m, u)
    bits: dict[str, tuple[float, float]] = {}

    def need(m: float, u: float) -> float:
        return math.log2(m / u + 1) if m > 0 else 0.0

    p = graph.params
    for op in graph:
        ins = [bound[i] for i in op.inputs]
        m, u, b = 1.0, 1.0, math.inf
        if isinstance(op, ops.Input):
            m, u = x_max, x_unit
            b = need(m, u)
        elif isinstance(op, (ops.Conv2d, ops.Linear)):
            (mi, ui), w = ins[0], p[op.weight].double()
            bias = p[op.bias].double() if op.bias else torch.zeros(w.shape[0], dtype=torch.float64)
            m = float((w.abs().flatten(1).sum(1) * mi + bias.abs()).max())
            u = min(ui * unit(w), unit(bias))
            b = need(m, u)
        elif isinstance(op, ops.Scale):
            s = p[op.weight].double() * op.factor if op.weight else torch.tensor([op.factor], dtype=torch.float64)
            m, u = ins[0][0] * float(s.abs().max()), ins[0][1] * unit(s)
            b = need(m, u)
        elif isinstance(op, ops.BatchNorm):  # (x - mean) / sqrt(var + eps) * gamma + beta, in either grouping
            (mi, ui), c = ins[0], p[op.running_mean].shape[0]
            mean, var = p[op.running_mean].double(), p[op.running_var].double()
            gamma = p[op.weight].double() if op.weight else torch.ones(c, dtype=torch.float64)
            beta = p[op.bias].double() if op.bias else torch.zeros(c, dtype=torch.float64)
            k = gamma / torch.sqrt(var + op.eps)
            shift = beta - mean * k
            m1, u1 = mi + float(mean.abs().max()), min(ui, unit(mean))
            m = float((mi * k.abs() + shift.abs()).max())
            u = min(u1 * unit(k), unit(beta), ui * unit(k), unit(shift))
            b = need(max(m1, m1 * float(k.abs().max()), m + float(beta.abs().max())), min(u1, u))
        elif isinstance(op, ops.AvgPool2d):
            (mi, ui), k = ins[0], op.kernel_size[0] * op.kernel_size[1]
            m, u = mi, ui / k
            if _pow2(float(k)) and op.divisor_override is None:
                b = need(k * mi, ui)  # the window's sum, then an exact division
        elif isinstance(op, (ops.MaxPool2d, ops.Flatten, ops.Identity, ops.ReLU, ops.Output, ops.LayoutCast)):
            m, u = ins[0]
            b = need(m, u)
        elif isinstance(op, ops.Add):
            m, u = sum(i[0] for i in ins), min(i[1] for i in ins)
            b = need(m, u)
        elif isinstance(op, ops.Concat):
            m, u = max(i[0] for i in ins), min(i[1] for i in ins)
            b = need(m, u)
        elif isinstance(op, ops.IF):
            (mi, ui), th, v0 = ins[0], op.v_threshold, op.initial_v()
            reset = getattr(op.reset, "v_reset", 0.0)
            uv = min(ui, unit(torch.tensor([th, v0, reset], dtype=torch.float64)))
            b = need(abs(v0) + abs(reset) + time_steps * (mi + abs(th)), uv)
            bits[op.name] = (b, uv)
        if isinstance(op, ops.NeuronOp):
            m, u = 1.0, 1.0  # spikes
        else:
            bits[op.name] = (b, u)
        bound[op.name] = (m, u)
    return bits
