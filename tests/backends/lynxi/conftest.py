"""Shared networks, references and compiled artifacts for the lynxi tests.

Every artifact is compiled once per session: the digits demo CNN and a small
ResNet-style CNN, both converted to SNNs, at T=8 for the whole digits test
set (450 samples) as one static batch.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn

import snnc
from snnc import datasets
from snnc.ir import NeuronOp, Output
from snnc.passes import PIPELINES, PassManager, parse_pipeline
from snnc.runtime import Session
from tests.conftest import randomize_bn

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


def train_resnetish(data: datasets.Split, epochs: int = 3) -> ResNetish:
    """A few deterministic epochs: enough for clear class margins (about 93% test accuracy)."""
    torch.manual_seed(0)
    model = randomize_bn(ResNetish()).train()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    g = torch.Generator().manual_seed(0)
    n = data.x_train.shape[0]
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, 128):
            idx = perm[i:i + 128]
            loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


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
    """The converted SNN graph (snnc.convert with '99.9%'), as the user gets it."""
    from snnc.demo import pretrained_digits_cnn

    model = pretrained_digits_cnn(data) if name == "digits" else train_resnetish(data)
    return snnc.convert(model, data.x_train[:512], "99.9%")


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
            if net not in self._nets:  # trained and converted on first use only
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
