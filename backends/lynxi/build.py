"""Build the flattened torch module: one standard torch module per IR op, time folded into batch.

`LOWERINGS` maps each op class to a factory of the torch module that computes
it on [T*N, *features] (or [N, *features] for values without time). A neuron
becomes an `UnrolledNeuron`; its state is an extra input and output of the
network when `Options.state_io` is set. Each module computes in the dtype
`precision.op_dtypes` gives its op; an input in another dtype is cast on the
way in, so every cast is explicit in the exported graph.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import torch
from torch import Tensor, nn

from snnc.backends.lynxi import modules as M
from snnc.backends.lynxi.options import Options
from snnc.backends.lynxi.precision import op_dtypes
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.ops.temporal import after_time_mean
from snnc.ir.types import TensorType


DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16"}


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of the lowered network's interface."""

    name: str  # the ONNX name; the position in the interface is what the exported program uses
    shape: tuple[int, ...]
    value: str  # the IR value (for state: the neuron node)
    time: bool  # True: [T*N, *] folded sequence; False: [N, *] per sample
    dtype: torch.dtype = torch.float32
    init: float | list[float] | None = None  # state tensors: the value to start a stream with (a list: per part)

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES[self.dtype]

    def to_json(self) -> dict:
        d = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype_name, "value": self.value,
             "layout": "TN" if self.time else "NX"}
        if self.init is not None:
            d["init"] = self.init
        return d


@dataclass
class Interface:
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    states: list[tuple[TensorSpec, TensorSpec]] = field(default_factory=list)  # (input, output) per neuron


class Step(NamedTuple):
    key: str  # module in FlatNet.layers
    inputs: tuple[str, ...]
    output: str
    dtype: torch.dtype  # the module's inputs are cast to it when they differ
    state_in: str | None = None  # neurons: interface name of the state input, if streamed
    state_out: str | None = None


@dataclass
class LowerCtx:
    """What a lowering sees: the graph, its parameters and types, and the static sizes."""

    graph: Graph
    time_steps: int
    batch: int
    state_dtype: torch.dtype = torch.float32  # neurons: membrane potentials
    spike_dtype: torch.dtype = torch.float32  # neurons: their spikes

    def param(self, name: str | None) -> Tensor | None:
        return None if name is None else self.graph.params[name]

    def type(self, value: str) -> TensorType:
        return self.graph.types[value]


Lowering = Callable[[ops.OpBase, LowerCtx], nn.Module]
LOWERINGS: dict[type, Lowering] = {}


def lowers(*classes: type):
    def deco(fn: Lowering) -> Lowering:
        for c in classes:
            LOWERINGS[c] = fn
        return fn
    return deco


def _load(module: nn.Module, **tensors: Tensor | None) -> nn.Module:
    with torch.no_grad():
        for k, v in tensors.items():
            if v is not None:
                getattr(module, k).copy_(v)
    return module


@lowers(ops.Conv2d)
def _conv2d(op: ops.Conv2d, ctx: LowerCtx) -> nn.Module:
    w, b = ctx.param(op.weight), ctx.param(op.bias)
    m = nn.Conv2d(w.shape[1] * op.groups, w.shape[0], tuple(w.shape[2:]), op.stride, op.padding, op.dilation,
                  op.groups, bias=b is not None)
    return _load(m, weight=w, bias=b)


@lowers(ops.Linear)
def _linear(op: ops.Linear, ctx: LowerCtx) -> nn.Module:
    w, b = ctx.param(op.weight), ctx.param(op.bias)
    return _load(nn.Linear(w.shape[1], w.shape[0], bias=b is not None), weight=w, bias=b)


@lowers(ops.BatchNorm)
def _batch_norm(op: ops.BatchNorm, ctx: LowerCtx) -> nn.Module:
    feats = ctx.type(op.inputs[0]).features
    cls = nn.BatchNorm2d if len(feats) == 3 else nn.BatchNorm1d
    w, b = ctx.param(op.weight), ctx.param(op.bias)
    affine = w is not None or b is not None
    m = cls(feats[0], eps=op.eps, affine=affine).eval()
    # a missing weight (bias) of an affine BN is 1 (0): the same values as F.batch_norm with None
    return _load(m, running_mean=ctx.param(op.running_mean), running_var=ctx.param(op.running_var),
                 weight=w if affine else None, bias=b if affine else None)


@lowers(ops.AvgPool2d)
def _avg_pool(op: ops.AvgPool2d, ctx: LowerCtx) -> nn.Module:
    return nn.AvgPool2d(op.kernel_size, op.stride, op.padding, op.ceil_mode, op.count_include_pad, op.divisor_override)


@lowers(ops.MaxPool2d)
def _max_pool(op: ops.MaxPool2d, ctx: LowerCtx) -> nn.Module:
    return nn.MaxPool2d(op.kernel_size, op.stride, op.padding, op.dilation, ceil_mode=op.ceil_mode)


@lowers(ops.RunningMaxPool2d)
def _running_max_pool(op: ops.RunningMaxPool2d, ctx: LowerCtx) -> nn.Module:
    pool = nn.MaxPool2d(op.kernel_size, op.stride, op.padding, op.dilation, ceil_mode=op.ceil_mode)
    return M.UnrolledRunningMaxPool(pool, ctx.time_steps, ctx.batch, ctx.type(op.inputs[0]).features,
                                    ctx.state_dtype, ctx.spike_dtype)


@lowers(ops.AdaptiveAvgPool2d)
def _adaptive_avg_pool(op: ops.AdaptiveAvgPool2d, ctx: LowerCtx) -> nn.Module:
    _, h, w = ctx.type(op.inputs[0]).features
    oh, ow = op.output_size
    if h % oh == 0 and w % ow == 0:  # fixed windows: the exporter writes an AveragePool
        return nn.AdaptiveAvgPool2d(op.output_size)
    return M.AdaptiveCopies((h, w), (oh, ow))  # one-element windows (legalize refuses any other size)


@lowers(ops.Flatten)
def _flatten(op: ops.Flatten, ctx: LowerCtx) -> nn.Module:
    rank = len(ctx.type(op.inputs[0]).features)
    if op.start_dim % rank != 0 or op.end_dim % rank != rank - 1:  # else ONNX has no static Flatten for it
        lead = ctx.time_steps * ctx.batch if ctx.type(op.name).layout.has_time else ctx.batch
        return M.Reshape((lead, *ctx.type(op.name).features))
    return nn.Flatten(1 + op.start_dim % rank, 1 + op.end_dim % rank)


@lowers(ops.ReLU)
def _relu(op, ctx: LowerCtx) -> nn.Module:
    return nn.ReLU()


@lowers(ops.Identity, ops.Output)
def _identity(op, ctx: LowerCtx) -> nn.Module:
    return nn.Identity()


@lowers(ops.Scale)
def _scale(op: ops.Scale, ctx: LowerCtx) -> nn.Module:
    return M.Scale(op.factor, ctx.param(op.weight), rank=1 + len(ctx.type(op.inputs[0]).features))


@lowers(ops.Add)
def _add(op, ctx: LowerCtx) -> nn.Module:
    return M.Add()


@lowers(ops.Concat)
def _concat(op: ops.Concat, ctx: LowerCtx) -> nn.Module:
    return M.Concat(op.dim)


@lowers(ops.LayoutCast)
def _layout_cast(op: ops.LayoutCast, ctx: LowerCtx) -> nn.Module:
    # every value with time is already [T*N, *]: only a cast from one step (NX) does work
    return nn.Identity() if ctx.type(op.inputs[0]).layout.has_time else M.RepeatTime(ctx.time_steps)


@lowers(ops.SignedIF)
def _signed_if(op: ops.SignedIF, ctx: LowerCtx) -> nn.Module:
    return M.UnrolledSignedIF(ctx.time_steps, ctx.batch, ctx.type(op.inputs[0]).features, op.v_init, op.v_threshold,
                              ctx.state_dtype, ctx.spike_dtype)


@lowers(ops.IF, ops.LIF)
def _neuron(op: ops.NeuronOp, ctx: LowerCtx) -> nn.Module:
    return M.UnrolledNeuron(op.to_params(), ctx.time_steps, ctx.batch, ctx.type(op.inputs[0]).features,
                            op.initial_v(), ctx.state_dtype, ctx.spike_dtype)


class FlatNet(nn.Module):
    """The lowered network: runs `program` over the interface inputs, returns the interface outputs."""

    def __init__(self, layers: dict[str, nn.Module], program: list[Step], input_names: list[str],
                 output_names: list[str]):
        super().__init__()
        self.layers = nn.ModuleDict(layers)
        self.program = list(program)
        self.input_names = list(input_names)
        self.output_names = list(output_names)

    def forward(self, *args: Tensor) -> tuple[Tensor, ...]:
        env = self.values(*args)
        return tuple(env[o] for o in self.output_names)

    def values(self, *args: Tensor) -> dict[str, Tensor]:
        """Every value the program computes (IR value name -> tensor, [T*N, *] or [N, *]), the interface
        inputs and the neurons' final states included: what `forward` returns a few of."""
        env = dict(zip(self.input_names, args))

        def arg(name: str, dtype: torch.dtype) -> Tensor:
            x = env[name]
            return x if x.dtype == dtype else x.to(dtype)

        for st in self.program:
            layer = self.layers[st.key]
            if st.state_out is not None:
                y, env[st.state_out] = layer(arg(st.inputs[0], st.dtype), env[st.state_in] if st.state_in else None)
            else:
                y = layer(*(arg(i, st.dtype) for i in st.inputs))
            env[st.output] = y
        return env


def _key(name: str, taken: dict) -> str:
    base = re.sub(r"[^A-Za-z0-9_]", "_", name) or "op"
    key, i = base, 1
    while key in taken:
        key, i = f"{base}_{i}", i + 1
    return key


def build(graph: Graph, options: Options, time_steps: int, batch: int) -> tuple[FlatNet, Interface]:
    """The FlatNet computing `graph` (legalized) for static T and N, and its interface."""
    dtypes = op_dtypes(graph, options)
    state_dtype = options.state_torch_dtype
    ctx = LowerCtx(graph, time_steps, batch, state_dtype, options.torch_dtype)
    types = graph.types
    layers: dict[str, nn.Module] = {}
    program: list[Step] = []
    iface = Interface()

    def shape(value: str, time: bool) -> tuple[int, ...]:
        return (time_steps * batch if time else batch, *types[value].features)

    for op in graph:
        t, dt = types[op.name], dtypes[op.name]
        time = t.layout.has_time
        if isinstance(op, ops.Input):
            if time and options.input_kind == "constant":  # [N, *] in, repeated over T inside the graph
                iface.inputs.append(TensorSpec(op.name, shape(op.name, False), op.name, False, dt))
                key = _key(f"{op.name}_repeat", layers)
                layers[key] = M.RepeatTime(time_steps)
                program.append(Step(key, (op.name,), op.name, dt))
            else:
                iface.inputs.append(TensorSpec(op.name, shape(op.name, time), op.name, time, dt))
            continue
        key = _key(op.name, layers)
        if isinstance(op, (ops.NeuronOp, ops.SignedIF, ops.RunningMaxPool2d)):  # in its state dtype; returns `dt`
            layers[key] = LOWERINGS[type(op)](op, ctx).eval()
            feats = types[op.inputs[0]].features
            # a neuron's state is its membrane potential (a signed one's stacked with its spike count, [2N, *]);
            # a running max pool's the sums of its input
            state, init, rows = (("v", op.initial_v(), batch) if isinstance(op, ops.NeuronOp) else
                                 ("v_count", [op.v_init, 0.0], 2 * batch) if isinstance(op, ops.SignedIF) else
                                 ("acc", 0.0, batch))
            spec_in = TensorSpec(f"{op.name}.{state}_in", (rows, *feats), op.name, False, state_dtype, init)
            spec_out = TensorSpec(f"{op.name}.{state}_out", (rows, *feats), op.name, False, state_dtype, init)
            iface.states.append((spec_in, spec_out))
            program.append(Step(key, op.inputs, op.name, state_dtype, spec_in.name if options.state_io else None,
                                spec_out.name))
            continue
        if isinstance(op, ops.Output) and time and options.readout == "mean":
            layers[key] = (M.LastStep(time_steps, batch) if after_time_mean(graph, op.inputs[0])
                           else M.MeanOverTime(time_steps, batch, t.features))
            out_spec = TensorSpec(op.name, shape(op.name, False), op.name, False, dt)
        else:
            layers[key] = LOWERINGS[type(op)](op, ctx)
            out_spec = TensorSpec(op.name, shape(op.name, time), op.name, time, dt)
        layers[key] = layers[key].eval().to(dt)
        program.append(Step(key, op.inputs, op.name, dt))
        if isinstance(op, ops.Output):
            iface.outputs.append(out_spec)
    if options.state_io:
        iface.inputs += [s_in for s_in, _ in iface.states]
        iface.outputs += [s_out for _, s_out in iface.states]
    net = FlatNet(layers, program, [s.name for s in iface.inputs], [s.name for s in iface.outputs])
    return net.eval(), iface


# ---------------------------------------------------------------- tensor and layout ops (features only; T*N stays dim 0)
@lowers(ops.Reshape)
def _reshape(op: ops.Reshape, ctx: LowerCtx) -> nn.Module:
    lead = ctx.time_steps * ctx.batch if ctx.type(op.name).layout.has_time else ctx.batch
    return M.Reshape((lead, *op.shape))  # a static shape: the exported graph must not compute it


@lowers(ops.Permute)
def _permute(op: ops.Permute, ctx: LowerCtx) -> nn.Module:
    return M.Permute(op.perm)


@lowers(ops.Slice)
def _slice(op: ops.Slice, ctx: LowerCtx) -> nn.Module:
    return M.Slice(op.dim, op.start, op.end)


@lowers(ops.Mean)
def _mean(op: ops.Mean, ctx: LowerCtx) -> nn.Module:
    return M.Mean(op.dims, op.keepdim)


@lowers(ops.TimeMean)
def _time_mean(op: ops.TimeMean, ctx: LowerCtx) -> nn.Module:
    return M.RunningTimeMean(ctx.time_steps, ctx.batch, ctx.type(op.name).features)
@lowers(ops.Sum)
def _sum(op: ops.Sum, ctx: LowerCtx) -> nn.Module:
    return M.Sum(op.dims, op.keepdim)


@lowers(ops.Mul)
def _mul(op, ctx: LowerCtx) -> nn.Module:
    return M.Mul()


@lowers(ops.Sub)
def _sub(op, ctx: LowerCtx) -> nn.Module:
    return M.Sub()


@lowers(ops.AddScalar)
def _add_scalar(op: ops.AddScalar, ctx: LowerCtx) -> nn.Module:
    return M.AddScalar(op.value)


@lowers(ops.MatMul)
def _matmul(op, ctx: LowerCtx) -> nn.Module:
    return M.MatMul()


@lowers(ops.Clamp)
def _clamp(op: ops.Clamp, ctx: LowerCtx) -> nn.Module:
    return M.Clamp(op.min, op.max)


@lowers(ops.Softmax)
def _softmax(op: ops.Softmax, ctx: LowerCtx) -> nn.Module:
    return nn.Softmax(dim=1 + op.dim)


@lowers(ops.Conv1d)
def _conv1d(op: ops.Conv1d, ctx: LowerCtx) -> nn.Module:
    w, b = ctx.param(op.weight), ctx.param(op.bias)
    m = nn.Conv1d(w.shape[1] * op.groups, w.shape[0], w.shape[2], op.stride, op.padding, op.dilation, op.groups,
                  bias=b is not None)
    return _load(m, weight=w, bias=b)


@lowers(ops.LayerNorm)
def _layer_norm(op: ops.LayerNorm, ctx: LowerCtx) -> nn.Module:
    w, b = ctx.param(op.weight), ctx.param(op.bias)
    m = nn.LayerNorm(op.normalized_shape, eps=op.eps, elementwise_affine=w is not None, bias=b is not None)
    if w is not None:
        _load(m, weight=w, bias=b)
    return m


@lowers(ops.AvgPool1d)
def _avg_pool1d(op: ops.AvgPool1d, ctx: LowerCtx) -> nn.Module:
    return nn.AvgPool1d(op.kernel_size, op.stride, op.padding, op.ceil_mode, op.count_include_pad)
