"""snnc's NIR export (`--target nir`) read by the simulators users hand it to: Norse and snnTorch run the
file spike for spike like the snnc.nn model it came from (optional: each test skips without its library).

snnTorch's importer takes LIF neurons with r = tau/dt only (snnc's decay_input=False) and refuses IF
(it asserts r == 1, where NIR's IF at dt has r = 1/dt); Norse takes both."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn

import snnc
from snnc.frontends import trace
from snnc.nn import functional, layer, neuron

nir = pytest.importorskip("nir")


def _export(net: nn.Module, tmp_path):
    functional.set_step_mode(net, "m")
    x = torch.randint(0, 3, (30, 2, 6), generator=torch.Generator().manual_seed(1)).float() / 2  # [T, N, 6]
    want = net(x)
    snnc.compile(trace(net, (6,)), "nir", tmp_path / "nir")
    return nir.read(tmp_path / "nir" / "model.nir"), x, want


def test_norse_runs_snncs_nir_export_like_the_model(tmp_path):
    norse = pytest.importorskip("norse.torch")
    torch.manual_seed(0)
    net = nn.Sequential(layer.Linear(6, 8), neuron.LIFNode(tau=2.0), layer.Linear(8, 3), neuron.IFNode())
    graph, x, want = _export(net, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = norse.from_nir(graph, dt=1e-4, ignore_warnings=True)  # snnc writes dt = 1e-4 s by default
    state, out = None, []
    for xt in x:
        y, state = model(xt, state)
        out.append(y)
    assert want.sum() > 0 and torch.equal(torch.stack(out), want)


def test_snntorch_runs_snncs_nir_export_like_the_model(tmp_path):
    pytest.importorskip("snntorch")
    from snntorch.import_nir import import_from_nir

    torch.manual_seed(0)
    net = nn.Sequential(layer.Linear(6, 8), neuron.LIFNode(tau=2.0, decay_input=False),
                        layer.Linear(8, 3), neuron.LIFNode(tau=4.0, decay_input=False))
    graph, x, want = _export(net, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = import_from_nir(graph)
    out = []
    for xt in x:
        y = model(xt)
        out.append(y[0] if isinstance(y, tuple) else y)
    assert want.sum() > 0 and torch.equal(torch.stack(out), want)
