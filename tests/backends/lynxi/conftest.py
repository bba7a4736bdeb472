"""Shared networks, references and compiled artifacts for the lynxi tests.

Every artifact is compiled once per session, at T=8 for the whole digits test
set (450 samples) as one static batch, from one of three converted SNNs:

* "digits" (the demo's DigitsCNN) and "resnet" (a small ResNet-style CNN) have
  random dyadic weights (tests/nets.py) and, after conversion, power-of-two
  scales: every value they compute is exact in float32, and in the float16 core,
  in any summation order (`convert_network` checks this). Spikes and outputs that
  equal the reference bit for bit are then a property of the construction, not
  of one machine's kernels.
* "trained" is the stored, trained digits CNN converted as a user would (scales
  from calibration): float16 rounds it, for the tests of float16's error.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn

import snnc
from snnc.core import datasets
from snnc.backends.lynxi.options import Options
from snnc.backends.lynxi.precision import op_dtypes
from snnc.demo import DigitsCNN
from snnc.ir import NeuronOp, Output
from snnc.passes import PIPELINES, PassManager, parse_pipeline
from snnc.runtime import Session
from tests.nets import digits_cnn, exactness_bits, set_bn, set_layer, snap_scales

T = 8


class ResNetish(nn.Module):
    """stem conv-bn-relu, a residual block (add), a 1x1 branch joined by concat, avgpool, linear."""

    def __init__(self, c: int = 8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
        self.relu = nn.ReLU()
        self.branch = nn.Sequential(nn.Conv2d(c, c, 1), nn.BatchNorm2d(c), nn.ReLU())
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(2 * c * 4 * 4, 10)

    def forward(self, x):
        x = self.stem(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)) + x)
        y = torch.cat([y, self.branch(y)], 1)
        return self.fc(torch.flatten(self.pool(y), 1))


def resnetish(seed: int = 0) -> ResNetish:
    """ResNetish with random dyadic weights and exact BatchNorms (see tests/nets.py)."""
    gen = torch.Generator().manual_seed(seed)
    model = ResNetish().eval()
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            set_layer(m, gen, (-2, 2, 3), (-2, 2, 4))
        elif isinstance(m, nn.BatchNorm2d):
            set_bn(m, gen)
        elif isinstance(m, nn.Linear):
            set_layer(m, gen, (-4, 4, 4), (-2, 2, 4))
    return model


def digits_shaped(seed: int = 0) -> DigitsCNN:
    """The demo's DigitsCNN with random dyadic weights and exact BatchNorms (see tests/nets.py)."""
    gen = torch.Generator().manual_seed(seed)
    model = DigitsCNN().eval()
    conv1, bn1, _, _, conv2, bn2, _, _ = model.features
    set_layer(conv1, gen, (-2, 2, 2), (-2, 2, 4))
    set_bn(bn1, gen)
    set_layer(conv2, gen, (-2, 2, 3), (-2, 2, 4))
    set_bn(bn2, gen)
    set_layer(model.classifier[1], gen, (-4, 4, 4), (-2, 2, 4))
    return model


MANTISSA = {torch.float32: 24, torch.float16: 11}  # significant bits, the implicit one included


def assert_exact(graph, dtype: str, *, time_steps: int = T, x_unit: float = 1 / 16) -> None:
    """Every op of `graph`, lowered with `dtype` for its spiking core (float32 state, head and tail), computes
    each value and partial sum exactly (inputs: multiples of `x_unit` in [-1, 1]): then no engine and no
    summation order can change a bit."""
    dtypes = op_dtypes(graph, Options(time_steps=time_steps, batch_size=1, dtype=dtype))
    for name, (bits, unit) in exactness_bits(graph, time_steps=time_steps, x_unit=x_unit).items():
        # a neuron's membrane potential is float32 (state_dtype); its spikes, 0 or 1, are exact in any dtype
        dt = torch.float32 if isinstance(graph[name], NeuronOp) else dtypes[name]
        assert bits <= MANTISSA[dt], f"{name} needs {bits:.1f} significant bits, {dt} has {MANTISSA[dt]}"
        if dt == torch.float16:  # and the range: no value below the smallest subnormal or above the largest
            assert unit >= 2.0 ** -24 and unit * 2 ** bits <= 65504, f"{name}: out of float16's range"


def with_spike_outputs(graph):
    """A copy of `graph` that also outputs every neuron's spikes (as %spk_<neuron>)."""
    g = graph.copy()
    for op in list(g):
        if isinstance(op, NeuronOp):
            g.add(Output(name=f"spk_{op.name}", inputs=(op.name,)))
    return g


def lynxi_pipeline(graph):
    """The passes `snnc compile --target lynxi` runs before lowering."""
    return PassManager(parse_pipeline(PIPELINES["lynxi"]), verify_each=True).run(graph)


def dense(x: torch.Tensor) -> torch.Tensor:
    """Standard strides (a [N, 1, H, W] tensor can otherwise look channels-last to torch's conv)."""
    return x.clone(memory_format=torch.contiguous_format)


def run_onnx(folder, feeds: list[torch.Tensor]) -> list[torch.Tensor]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return [torch.from_numpy(np.asarray(y)) for y in sess.run(None, dict(zip(names, (f.numpy() for f in feeds))))]


def run_exported(folder, feeds: list[torch.Tensor]) -> list[torch.Tensor]:
    module = torch.export.load(folder / "model.pt2").module()
    with torch.no_grad():
        return list(module(*(dense(f) for f in feeds)))


ENGINES = {"onnx": run_onnx, "torch": run_exported}


def onnx_value_types(model: onnx.ModelProto) -> dict[str, list]:
    """Every value of the model (inputs, node outputs, initializers) -> its dims after shape inference."""
    g = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph
    dims = {}
    for vi in [*g.input, *g.value_info, *g.output]:
        shape = vi.type.tensor_type.shape if vi.type.tensor_type.HasField("shape") else None
        dims[vi.name] = None if shape is None else [d.dim_value if d.HasField("dim_value") else d.dim_param
                                                    for d in shape.dim]
    for init in g.initializer:
        dims.setdefault(init.name, list(init.dims))
    for node in g.node:
        for o in node.output:
            dims.setdefault(o, None)  # an output shape inference could not type
    return dims


@pytest.fixture(scope="session")
def digits_data():
    return datasets.digits()


def convert_network(name: str, data: datasets.Split):
    """The converted SNN graph (snnc.convert with '99.9%'); for the constructed networks with every scale
    rounded to a power of two, which makes them exact (checked)."""
    if name == "trained":
        return snnc.convert(digits_cnn(), data.x_train[:512], "99.9%")
    g = snap_scales(snnc.convert(digits_shaped() if name == "digits" else resnetish(), data.x_train[:512], "99.9%"))
    for dtype in ("f32", "f16"):
        assert_exact(g, dtype)
        assert_exact(lynxi_pipeline(g), dtype)
    return g


@pytest.fixture(scope="session")
def test_x(digits_data):
    return dense(digits_data.x_test)


class Compiled:
    """Graphs (raw converted, or after the lynxi pipeline, with spikes exposed), references and artifacts."""

    def __init__(self, data, x, root):
        self.data, self.x, self.root = data, x, root
        self._nets, self._graphs, self._refs, self._arts = {}, {}, {}, {}

    def graph(self, net: str, variant: str):
        """The network's converted graph ("raw") or the graph after the lynxi pipeline, spikes exposed."""
        key = (net, variant)
        if key not in self._graphs:
            if net not in self._nets:  # built and converted on first use only
                self._nets[net] = convert_network(net, self.data)
            g = self._nets[net] if variant == "raw" else lynxi_pipeline(self._nets[net])
            self._graphs[key] = with_spike_outputs(g)
        return self._graphs[key]

    def reference(self, net: str, variant: str) -> dict[str, torch.Tensor]:
        key = (net, variant)
        if key not in self._refs:
            self._refs[key] = Session(self.graph(net, variant)).run(self.x, T)
        return self._refs[key]

    def artifact(self, net: str, variant: str, dtype: str):
        key = (net, variant, dtype)
        if key not in self._arts:
            self._arts[key] = snnc.compile(self.graph(net, variant), "lynxi", self.root / "-".join(key),
                                           time_steps=T, batch_size=self.x.shape[0], dtype=dtype)
        return self._arts[key]


@pytest.fixture(scope="session")
def compiled(digits_data, test_x, tmp_path_factory):
    return Compiled(digits_data, test_x, tmp_path_factory.mktemp("lynxi"))
