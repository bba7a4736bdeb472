"""Hypothesis strategies for small random SNN graphs and their inputs.

`dyadic=True` draws every weight, scale, threshold and input as a small multiple
of a power of two, so float32 arithmetic is exact whatever the order or
grouping of the operations: a pass that is exact in real arithmetic must then
leave the CPU-runtime outputs bit for bit unchanged. `dyadic=False` draws
normal floats, where folding may round differently.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from snnc.ir import Graph, Layout, TensorType, ops

POW2 = (0.25, 0.5, 2.0, 4.0)
BLOCKS = ("conv", "scale", "channel_scale", "neuron", "converted", "avgpool", "maxpool", "relu", "identity",
          "residual", "casts", "scaled_add")


class _Builder:
    def __init__(self, draw, dyadic: bool, seed: int):
        self.draw = draw
        self.dyadic = dyadic
        self.gen = torch.Generator().manual_seed(seed)
        self.g = Graph("rand")
        self.n = 0

    def name(self, base: str) -> str:
        self.n += 1
        return f"{base}{self.n}"

    def values(self, *shape, lo=-1.0, hi=1.0) -> torch.Tensor:
        if self.dyadic:  # multiples of 1/4 in [lo, hi]
            k = torch.randint(int(lo * 4), int(hi * 4) + 1, shape, generator=self.gen)
            return k.float() / 4
        return torch.rand(shape, generator=self.gen) * (hi - lo) + lo

    def factor(self) -> float:
        if self.dyadic:
            return self.draw(st.sampled_from(POW2))
        return self.draw(st.floats(0.2, 3.0, allow_nan=False))

    def add(self, op) -> str:
        self.g.add(op)
        return op.name

    def feats(self, v: str) -> tuple:
        return self.g.type_of(v).features

    def neuron(self, x: str, converted: bool = False) -> str:
        d = self.draw
        thr = 1.0 if converted else d(st.sampled_from((0.5, 1.0, 2.0)))
        v_init = d(st.sampled_from((None, 0.5)))
        if not self.dyadic:
            # Generic threshold and start: with the dyadic ones, a converted block's k/4 pooled spikes times
            # lambda times 1/lambda (+ 0.5) meet the threshold exactly, and a pass that folds the scales rounds
            # that tie to the other side (a spike flips, not a last-bit change: seen with fold-scales).
            thr *= 0.8 + 0.4 * float(torch.rand((), generator=self.gen))
            v_init = None if v_init is None else 0.3 + 0.4 * float(torch.rand((), generator=self.gen))
        reset = ops.SoftReset() if converted else d(st.sampled_from(
            (ops.SoftReset(), ops.HardReset(), ops.HardReset(v_reset=-0.5), ops.NoReset())))
        common = dict(v_threshold=thr, reset=reset, fire=d(st.sampled_from(("ge", "gt"))), v_init=v_init)
        if not converted and d(st.booleans()):
            return self.add(ops.LIF(name=self.name("lif"), inputs=(x,), tau=d(st.sampled_from((2.0, 4.0))),
                                    decay_input=d(st.booleans()), **common))
        return self.add(ops.IF(name=self.name("if"), inputs=(x,), **common))

    def scale(self, x: str, per_channel: bool) -> str:
        if per_channel and self.feats(x):
            c = self.feats(x)[0]
            if self.dyadic:
                w = torch.tensor([self.draw(st.sampled_from(POW2)) for _ in range(c)])
            else:
                w = torch.rand(c, generator=self.gen) * 2 + 0.2
            p = self.g.add_param(self.name("s.w"), w)
            return self.add(ops.Scale(name=self.name("scale"), inputs=(x,), weight=p, factor=1.0))
        return self.add(ops.Scale(name=self.name("scale"), inputs=(x,), factor=self.factor()))

    def conv(self, x: str) -> str:
        cin = self.feats(x)[0]
        cout = self.draw(st.integers(1, 4))
        k = self.draw(st.sampled_from((1, 3)))
        groups = cin if cin == cout and self.draw(st.booleans()) else 1
        w = self.g.add_param(self.name("w"), self.values(cout, cin // groups, k, k))
        b = self.g.add_param(self.name("b"), self.values(cout)) if self.draw(st.booleans()) else None
        return self.add(ops.Conv2d(name=self.name("conv"), inputs=(x,), weight=w, bias=b, padding=(k // 2, k // 2),
                                   groups=groups))

    def block(self, x: str, kind: str) -> str:
        d = self.draw
        h = self.feats(x)[1]
        if kind == "conv":
            return self.conv(x)
        if kind in ("scale", "channel_scale"):
            return self.scale(x, kind == "channel_scale")
        if kind == "neuron":
            return self.neuron(x)
        if kind == "converted":  # what relu_to_if makes: Scale(1/l) -> IF -> Scale(l)
            lam = self.factor()
            pre = self.add(ops.Scale(name=self.name("in"), inputs=(x,), factor=1.0 / lam))
            return self.add(ops.Scale(name=self.name("out"), inputs=(self.neuron(pre, converted=True),), factor=lam))
        if kind in ("avgpool", "maxpool") and h >= 2 and h % 2 == 0:
            cls = ops.AvgPool2d if kind == "avgpool" else ops.MaxPool2d
            return self.add(cls(name=self.name(kind), inputs=(x,), kernel_size=(2, 2), stride=(2, 2)))
        if kind == "relu":
            return self.add(ops.ReLU(name=self.name("relu"), inputs=(x,)))
        if kind == "identity":
            return self.add(ops.Identity(name=self.name("id"), inputs=(x,)))
        if kind == "residual":  # x + conv(x) with matching channels
            c = self.feats(x)[0]
            w = self.g.add_param(self.name("w"), self.values(c, c, 3, 3))
            y = self.add(ops.Conv2d(name=self.name("conv"), inputs=(x,), weight=w, padding=(1, 1)))
            return self.add(ops.Add(name=self.name("add"), inputs=(x, self.neuron(y) if d(st.booleans()) else y)))
        if kind == "scaled_add":  # a*x + a*f(x): the Scale can move past the Add
            a = self.factor()
            y = self.add(ops.Scale(name=self.name("sa"), inputs=(x,), factor=a))
            z = self.add(ops.Scale(name=self.name("sb"), inputs=(self.add(ops.ReLU(name=self.name("r"), inputs=(x,))),),
                                   factor=a if d(st.booleans()) else self.factor()))
            return self.add(ops.Add(name=self.name("add"), inputs=(y, z)))
        if kind == "casts":
            via = d(st.sampled_from((Layout.NXT, Layout.TN)))
            y = self.add(ops.LayoutCast(name=self.name("cast"), inputs=(x,), to=via))
            return self.add(ops.LayoutCast(name=self.name("cast"), inputs=(y,), to=Layout.TNX))
        return x


@st.composite
def graphs(draw, dyadic: bool = True, max_blocks: int = 6):
    """A random TNX graph: input [T, N, C, H, W] -> blocks -> (flatten -> linear)? -> output(s)."""
    b = _Builder(draw, dyadic, draw(st.integers(0, 2**31 - 1)))
    c, h = draw(st.integers(1, 3)), draw(st.sampled_from((2, 4)))
    x = b.add(ops.Input(name="x", type=TensorType(shape=("T", "N", c, h, h), layout=Layout.TNX)))
    kinds = draw(st.lists(st.sampled_from(BLOCKS), min_size=1, max_size=max_blocks))
    spikes = []
    for kind in kinds:
        x = b.block(x, kind)
        if isinstance(b.g[x], ops.NeuronOp):
            spikes.append(x)
    if draw(st.booleans()):  # a classifier head
        x = b.add(ops.Flatten(name=b.name("flat"), inputs=(x,)))
        f = b.feats(x)[0]
        out_f = draw(st.integers(1, 4))
        w = b.g.add_param(b.name("fc.w"), b.values(out_f, f))
        x = b.add(ops.Linear(name=b.name("fc"), inputs=(x,), weight=w, bias=b.g.add_param(b.name("fc.b"),
                                                                                         b.values(out_f))))
        if draw(st.booleans()):  # linear -> linear folds into one
            w2 = b.g.add_param(b.name("fc.w"), b.values(2, out_f))
            x = b.add(ops.Linear(name=b.name("fc"), inputs=(x,), weight=w2))
    b.add(ops.Output(name="out", inputs=(x,)))
    if spikes and x != spikes[-1] and draw(st.booleans()):  # a spiking output too (neuron + count group)
        b.add(ops.Output(name="spikes", inputs=(spikes[-1],)))
    return b.g


@st.composite
def inputs(draw, graph: Graph, dyadic: bool = True, constant: bool | None = None):
    """(x, T): a constant [N, *] input or a [T, N, *] sequence for the graph's input."""
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    T, N = draw(st.integers(1, 4)), draw(st.integers(1, 2))
    feats = graph.inputs[0].type.features
    constant = draw(st.booleans()) if constant is None else constant
    shape = (N, *feats) if constant else (T, N, *feats)
    if dyadic:
        x = torch.randint(-2, 9, shape, generator=gen).float() / 4
    else:
        x = torch.rand(shape, generator=gen) * 2.5 - 0.5
    return x, T
