"""Small SNN graphs for the lava backend tests (also used by tests/lava/snnc_side.py)."""

from __future__ import annotations

import torch

from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.ops import HardReset, SoftReset
from snnc.ir.types import DType, Layout, TensorType


def _tnx(*features: int, dtype: DType = DType.F32) -> TensorType:
    return TensorType(shape=("T", "N", *features), dtype=dtype, layout=Layout.TNX)


def conv_pool_dense(seed: int = 0, bias: bool = True) -> Graph:
    """spikes [2,8,8] -> conv3x3 -> LIF -> avgpool2 -> conv3x3 -> IF(>=) -> flatten -> linear -> LIF(decay_input)."""
    gen = torch.Generator().manual_seed(seed)
    g = Graph("conv_pool_dense")
    p = lambda name, *shape, s=1.0: g.add_param(name, torch.randn(*shape, generator=gen) * s)  # noqa: E731
    g.add(ops.Input(name="x", type=_tnx(2, 8, 8, dtype=DType.SPIKE)))
    g.add(ops.Conv2d(name="c1", inputs=("x",), weight=p("c1.w", 4, 2, 3, 3, s=0.6),
                     bias=p("c1.b", 4, s=0.1) if bias else None, padding=(1, 1)))
    g.add(ops.LIF(name="n1", inputs=("c1",), tau=4.0, decay_input=False, reset=HardReset(), fire="gt",
                  v_threshold=1.0))
    g.add(ops.AvgPool2d(name="pool", inputs=("n1",), kernel_size=(2, 2), stride=(2, 2)))
    g.add(ops.Conv2d(name="c2", inputs=("pool",), weight=p("c2.w", 6, 4, 3, 3, s=0.8),
                     bias=p("c2.b", 6, s=0.05) if bias else None, padding=(1, 1)))
    g.add(ops.IF(name="n2", inputs=("c2",), v_threshold=0.5, reset=HardReset()))
    g.add(ops.Flatten(name="flat", inputs=("n2",)))
    g.add(ops.Linear(name="fc", inputs=("flat",), weight=p("fc.w", 5, 96, s=0.4),
                     bias=p("fc.b", 5, s=0.05) if bias else None))
    g.add(ops.LIF(name="n3", inputs=("fc",), tau=2.0, decay_input=True, reset=HardReset(), v_threshold=0.3))
    g.add(ops.Output(name="out", inputs=("n3",)))
    return g


def input_neuron_net(seed: int = 1) -> Graph:
    """analog [1,6,6] -> IF input neuron -> conv (stride 2) -> IF -> flatten -> linear -> IF (soft reset)."""
    gen = torch.Generator().manual_seed(seed)
    g = Graph("input_neuron_net")
    g.add(ops.Input(name="x", type=_tnx(1, 6, 6)))
    g.add(ops.Scale(name="gain", inputs=("x",), factor=2.0))
    g.add(ops.IF(name="enc", inputs=("gain",), v_threshold=1.0, reset=HardReset(), fire="gt"))
    g.add(ops.Conv2d(name="c1", inputs=("enc",), weight=g.add_param("c1.w", torch.randn(3, 1, 3, 3, generator=gen)),
                     stride=(2, 2), padding=(1, 1)))
    g.add(ops.IF(name="n1", inputs=("c1",), v_threshold=0.7, reset=HardReset()))
    g.add(ops.Flatten(name="flat", inputs=("n1",)))
    g.add(ops.Linear(name="fc", inputs=("flat",), weight=g.add_param("fc.w", torch.randn(4, 27, generator=gen) * 0.5)))
    g.add(ops.IF(name="n2", inputs=("fc",), v_threshold=0.5, reset=SoftReset()))
    g.add(ops.Output(name="out", inputs=("n2",)))
    return g


def spikes(T: int, n: int, *features: int, p: float = 0.3, seed: int = 0) -> torch.Tensor:
    return (torch.rand(T, n, *features, generator=torch.Generator().manual_seed(seed)) < p).float()
