"""The kernels give each sample the same result whatever the batch size (runtime/kernels.py).

run, chunked runs and step() fold different numbers of rows into one kernel call,
so this property is what makes them agree bit for bit. It depends on torch's
CPU libraries; this test is the alarm for a torch update that changes it.
"""

import pytest
import torch

from snnc.ir import ops
from snnc.runtime.executor import canonical
from snnc.runtime.kernels import call as kernel_call

ROWS = (1, 2, 3, 5, 7, 12, 17, 40)


def _params():
    g = torch.Generator().manual_seed(0)
    p = {}
    for name, shape in {"c1": (16, 3, 3, 3), "c2": (32, 16, 3, 3), "c3": (64, 32, 1, 1), "cg": (16, 8, 3, 3),
                        "l1": (10, 64), "l2": (512, 576), "l3": (7, 33), "k1": (6, 5, 3)}.items():
        p[name] = torch.randn(shape, generator=g) * 0.1
        p[name + ".b"] = torch.randn(shape[0], generator=g)
    for k in ("m", "v", "w", "b"):
        p["bn." + k] = torch.rand(16, generator=g) + 0.5
    p["ln.w"], p["ln.b"] = torch.rand(33, generator=g) + 0.5, torch.randn(33, generator=g)
    return p


CASES = [
    (ops.Conv2d(name="a", weight="c1", bias="c1.b", padding=(1, 1)), (3, 9, 9)),
    (ops.Conv2d(name="a", weight="c2", bias="c2.b", stride=(2, 2), padding=(1, 1)), (16, 8, 8)),
    (ops.Conv2d(name="a", weight="c3", bias="c3.b"), (32, 4, 4)),
    (ops.Conv2d(name="a", weight="cg", bias="cg.b", groups=2, padding=(1, 1)), (16, 6, 6)),
    (ops.Linear(name="a", weight="l1", bias="l1.b"), (64,)),
    (ops.Linear(name="a", weight="l2", bias="l2.b"), (576,)),
    (ops.Linear(name="a", weight="l3", bias="l3.b"), (3, 33)),
    (ops.BatchNorm(name="a", running_mean="bn.m", running_var="bn.v", weight="bn.w", bias="bn.b"), (16, 5, 5)),
    (ops.AvgPool2d(name="a", kernel_size=(2, 2), stride=(2, 2)), (16, 8, 8)),
    (ops.AvgPool2d(name="a", kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)), (16, 7, 7)),
    (ops.MaxPool2d(name="a", kernel_size=(2, 2), stride=(2, 2)), (16, 8, 8)),
    (ops.AdaptiveAvgPool2d(name="a", output_size=(1, 1)), (32, 4, 4)),
    (ops.AdaptiveAvgPool2d(name="a", output_size=(2, 2)), (16, 5, 5)),
    (ops.Scale(name="a", factor=0.37), (16, 4, 4)),
    (ops.Flatten(name="a"), (16, 2, 2)),
    (ops.Conv1d(name="a", weight="k1", bias="k1.b", padding=1), (5, 33)),
    (ops.AvgPool1d(name="a", kernel_size=3, stride=3), (5, 33)),
    (ops.Mean(name="a", dims=(1,)), (5, 33)),
    (ops.Softmax(name="a", dim=1), (5, 33)),
    (ops.LayerNorm(name="a", normalized_shape=(33,), weight="ln.w", bias="ln.b"), (5, 33)),
    (ops.Permute(name="a", perm=(1, 0)), (5, 33)),
    (ops.Reshape(name="a", shape=(3, 55)), (5, 33)),
    (ops.Slice(name="a", dim=1, start=3, end=20), (5, 33)),
]


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("op,features", CASES, ids=[f"{op.kind}-{i}" for i, (op, _) in enumerate(CASES)])
def test_rows_do_not_depend_on_the_batch(op, features, fmt):
    params = _params()
    if fmt is torch.channels_last:
        params = {k: (v.contiguous(memory_format=fmt) if v.dim() == 4 else v) for k, v in params.items()}
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(64, *features, generator=g) < 0.3).float() * 1.7 + torch.rand(64, *features, generator=g) * 0.01

    def call(t):
        t = canonical(t, fmt) if t.dim() == 4 else t
        return kernel_call(op, [t], params, batch_invariant=True)

    full = call(x)
    for m in ROWS:
        for start in (0, 9):
            # a fresh copy, as the runtime passes (MKL's sgemm also depends on the rows' alignment)
            assert torch.equal(call(x[start:start + m].clone()), full[start:start + m]), f"rows {start}:{start + m}"


@pytest.mark.parametrize("m,k,p", [(17, 33, 9), (5, 7, 5), (16, 36, 16)])
def test_matmul_rows_do_not_depend_on_the_batch(m, k, p):
    """Unpadded, torch.matmul of [17, 33] @ [33, 9] matrices changes with each matrix's address."""
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(40, m, k, generator=g), torch.randn(40, k, p, generator=g)
    op = ops.MatMul(name="a", inputs=("x", "y"))
    full = kernel_call(op, [a, b], {}, batch_invariant=True)
    torch.testing.assert_close(full, torch.matmul(a, b), atol=1e-4, rtol=1e-5)
    for rows in ROWS[:5]:
        for start in (0, 7, 14):
            part = kernel_call(op, [a[start:start + rows].clone(), b[start:start + rows].clone()], {},
                               batch_invariant=True)
            assert torch.equal(part, full[start:start + rows]), f"rows {start}:{start + rows}"
