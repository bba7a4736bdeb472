"""Compose the linear ops between two spiking layers into one NetX synapse.

NetX layers are `synapse -> neuron`, so everything linear between two neuron
layers (Scale, AvgPool2d, BatchNorm, Conv2d, Flatten, Linear, ...) must become
one Conv2d or one dense matrix. Conv-like ops compose analytically: conv2
after conv1 is a conv with

    stride S = s1 s2,  padding P = p1 + s1 p2,  kernel K = k1 + s1 (k2 - 1)
    W[o, i, m] = sum_{c, j} W2[o, c, j] W1[c, i, m - s1 j],   b = b2 + sum W2 b1

which is exact when conv2 pads nothing, or when conv1 has no bias and every
padded position of conv2 sees only conv1's own zero padding (e.g. a 2x2/2
average pool on an even-sized map followed by a padded conv). A segment that
ends in a Linear is measured instead: the affine map is evaluated on the
identity basis with the CPU reference kernels in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from snnc.core.errors import LoweringError
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.ops.linear import conv_out
from snnc.runtime.kernels import KERNELS

# ops that may sit between two neuron layers
LINEAR_OPS = (ops.Conv2d, ops.Linear, ops.AvgPool2d, ops.AdaptiveAvgPool2d, ops.Scale, ops.BatchNorm,
              ops.Flatten, ops.Identity, ops.LayoutCast)
_MAX_PROBE = 1 << 16  # input features up to which a dense segment is measured


@dataclass
class ConvSpec:
    """A conv over [C, H, W] in float64: weight [Cout, Cin/groups, kh, kw]."""

    weight: Tensor
    bias: Tensor | None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    def full(self) -> "ConvSpec":
        """The same conv with groups expanded to a dense [Cout, Cin, kh, kw] kernel."""
        if self.groups == 1:
            return self
        cout, cin_g, kh, kw = self.weight.shape
        w = torch.zeros(cout, cin_g * self.groups, kh, kw, dtype=self.weight.dtype)
        per = cout // self.groups
        for g in range(self.groups):
            w[g * per:(g + 1) * per, g * cin_g:(g + 1) * cin_g] = self.weight[g * per:(g + 1) * per]
        return ConvSpec(w, self.bias, self.stride, self.padding, self.dilation, 1)

    def out_size(self, size: tuple[int, int]) -> tuple[int, int]:
        k = self.weight.shape[2:]
        return tuple((size[a] + 2 * self.padding[a] - self.dilation[a] * (k[a] - 1) - 1) // self.stride[a] + 1
                     for a in range(2))


def _diag(values: Tensor, bias: Tensor | None = None) -> ConvSpec:
    c = values.numel()
    return ConvSpec(values.double().reshape(c, 1, 1, 1), bias, groups=c)


def conv_spec(g: Graph, op: ops.OpBase, in_features: tuple[int, ...]) -> ConvSpec | None:
    """The op as a conv over [C, H, W] features, None for a no-op, or a LoweringError."""
    p = {k: v.double() for k, v in g.params.items() if k in op.param_refs().values()}
    c, h, w = in_features
    if isinstance(op, ops.Conv2d):
        return ConvSpec(p[op.weight], p.get(op.bias), op.stride, op.padding, op.dilation, op.groups)
    if isinstance(op, (ops.Identity, ops.LayoutCast)):
        return None
    if isinstance(op, ops.Scale):
        s = torch.full((c,), op.factor, dtype=torch.float64)
        return _diag(s * p[op.weight] if op.weight is not None else s)
    if isinstance(op, ops.BatchNorm):
        inv = 1.0 / torch.sqrt(p[op.running_var] + op.eps)
        scale = inv * p[op.weight] if op.weight is not None else inv
        shift = -p[op.running_mean] * scale + (p[op.bias] if op.bias is not None else 0.0)
        return _diag(scale, shift)
    if isinstance(op, ops.AdaptiveAvgPool2d):
        oh, ow = op.output_size
        if h % oh or w % ow:
            raise LoweringError(f"{op.where()}: adaptive pooling {h}x{w} -> {oh}x{ow} is not a fixed window, "
                                "which NetX cannot express", hint="use an output size that divides the input")
        op = ops.AvgPool2d(name=op.name, kernel_size=(h // oh, w // ow), stride=(h // oh, w // ow), loc=op.loc)
    if isinstance(op, ops.AvgPool2d):
        if any(op.padding) and not op.count_include_pad:
            raise LoweringError(f"{op.where()}: average pooling that excludes its padding is not a convolution",
                                hint="use count_include_pad=True or no padding")
        kh, kw = op.kernel_size
        if op.ceil_mode and conv_out_floor(h, kh, op.stride[0], op.padding[0]) != _ceil_size(op, h, 0):
            raise LoweringError(f"{op.where()}: ceil_mode pooling leaves a partial window", hint="use ceil_mode=False")
        div = op.divisor_override or kh * kw
        return ConvSpec(torch.full((c, 1, kh, kw), 1.0 / div, dtype=torch.float64), None, op.stride, op.padding,
                        (1, 1), c)
    raise LoweringError(f"{op.where()} is not a convolution-like op")


def conv_out_floor(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


def _ceil_size(op: ops.AvgPool2d, size: int, axis: int) -> int:
    return conv_out(size, op.kernel_size[axis], op.stride[axis], op.padding[axis], 1, True)


def compose(c1: ConvSpec, c2: ConvSpec, in_size: tuple[int, int], where: str) -> ConvSpec:
    """conv2(conv1(x)) as one conv, or a LoweringError naming `where` when that is not exact."""
    if c1.dilation != (1, 1) or c2.dilation != (1, 1):
        raise LoweringError(f"{where}: cannot merge a dilated convolution with its neighbours into one NetX conv")
    a, b = c1.full(), c2.full()
    mid = a.out_size(in_size)
    k1, k2 = a.weight.shape[2:], b.weight.shape[2:]
    if any(b.padding):
        if a.bias is not None and bool((a.bias != 0).any()):
            raise LoweringError(f"{where}: a padded convolution reads the biased output of the op before it, "
                                "so the two do not merge into one NetX conv", hint="put a neuron between them")
        for ax in range(2):
            left_ok = -a.stride[ax] - a.padding[ax] + (k1[ax] - 1) < 0
            right_ok = mid[ax] * a.stride[ax] - a.padding[ax] >= in_size[ax]
            if not (left_ok and right_ok):
                raise LoweringError(f"{where}: the padding of the second op does not line up with the first op's "
                                    f"windows (input {in_size[0]}x{in_size[1]}), so they do not merge into one "
                                    "NetX conv", hint="pool maps whose size the pool stride divides")
    s = (a.stride[0] * b.stride[0], a.stride[1] * b.stride[1])
    p = (a.padding[0] + a.stride[0] * b.padding[0], a.padding[1] + a.stride[1] * b.padding[1])
    k = (k1[0] + a.stride[0] * (k2[0] - 1), k1[1] + a.stride[1] * (k2[1] - 1))
    w = torch.zeros(b.weight.shape[0], a.weight.shape[1], *k, dtype=torch.float64)
    for jh in range(k2[0]):
        for jw in range(k2[1]):
            oh, ow = a.stride[0] * jh, a.stride[1] * jw
            w[:, :, oh:oh + k1[0], ow:ow + k1[1]] += torch.einsum("oc,cihw->oihw", b.weight[:, :, jh, jw], a.weight)
    bias = None
    if a.bias is not None or b.bias is not None:
        bias = torch.zeros(b.weight.shape[0], dtype=torch.float64)
        if b.bias is not None:
            bias += b.bias
        if a.bias is not None:
            bias += b.weight.sum((2, 3)) @ a.bias
    out = ConvSpec(w, bias, s, p)
    if out.out_size(in_size) != b.out_size(mid):
        raise LoweringError(f"{where}: merged convolution would give {out.out_size(in_size)} outputs instead of "
                            f"{b.out_size(mid)}", hint="use pools without partial windows")
    return out


def compose_convs(g: Graph, seg: list[ops.OpBase], in_features: tuple[int, ...]) -> ConvSpec:
    """One ConvSpec for a segment of conv-like ops (an identity 1x1 conv when there is none)."""
    specs: list[tuple[ops.OpBase, ConvSpec]] = []
    for op in seg:
        s = conv_spec(g, op, tuple(g.types[op.inputs[0]].features))
        if s is not None:
            specs.append((op, s))
    if not specs:
        return _diag(torch.ones(in_features[0], dtype=torch.float64)).full()
    convs = [s for o, s in specs if isinstance(o, ops.Conv2d)]
    scalars = [s for o, s in specs if not isinstance(o, ops.Conv2d) and s.groups == s.weight.shape[0]
               and s.bias is None and s.weight.shape[2:] == (1, 1) and bool((s.weight == s.weight.flatten()[0]).all())]
    if len(convs) == 1 and len(scalars) == len(specs) - 1:  # keep groups and dilation of a lone conv
        f = math.prod(float(s.weight.flatten()[0]) for s in scalars)
        c = convs[0]
        return ConvSpec(c.weight * f, None if c.bias is None else c.bias * _bias_factor(specs), c.stride,
                        c.padding, c.dilation, c.groups)
    cur, size = specs[0][1], tuple(g.types[specs[0][0].inputs[0]].features[1:])
    for op, s in specs[1:]:
        cur = compose(cur, s, size, op.where())
    return cur


def _bias_factor(specs: list[tuple[ops.OpBase, ConvSpec]]) -> float:
    """Product of the scalar scales that come after the conv (those before it do not touch its bias)."""
    f, seen = 1.0, False
    for o, s in specs:
        if isinstance(o, ops.Conv2d):
            seen = True
        elif seen:
            f *= float(s.weight.flatten()[0])
    return f


def measure_dense(g: Graph, seg: list[ops.OpBase], in_features: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """(A [out, in], c [out]) with seg(x) = A flatten(x) + c, measured in float64."""
    d = math.prod(in_features)
    if d > _MAX_PROBE:
        raise LoweringError(f"{seg[-1].where()}: a dense NetX layer over {d} inputs is too large to build",
                            hint="put a neuron layer before the flatten")
    params = {k: v.double() for k, v in g.params.items()}
    x = torch.cat([torch.zeros(1, d, dtype=torch.float64), torch.eye(d, dtype=torch.float64)]).reshape(
        d + 1, *in_features)
    for op in seg:
        if isinstance(op, ops.LayoutCast):
            continue
        x = KERNELS[type(op)](op, [x], params)
    y = x.reshape(d + 1, -1)
    c = y[0]
    return (y[1:] - c).T.contiguous(), c
