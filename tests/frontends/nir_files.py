"""The real NIR files of ../shared/external/NIR (provenance: its README), and a forward-Euler reference.

The reference simulates NIR's equations directly from the nir.NIRGraph, in float64, with no snnc
code: each node's ODE stepped with forward Euler at the given dt, the current before the voltage
for the current-based neurons, and NIR's rule that the edges entering a node are summed. NIR has no
initial state: a spiking neuron starts at its v_reset (snnc's convention, docs/nir.md), the others at 0.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F


def external_dir() -> Path | None:
    """../shared/external next to the repository (or $SNNC_EXTERNAL), if present."""
    env = os.environ.get("SNNC_EXTERNAL")
    root = Path(__file__).resolve().parents[2]
    for cand in ([Path(env)] if env else []) + [p / "shared" / "external" for p in list(root.parents)[:3]]:
        if (cand / "NIR").is_dir():
            return cand
    return None


EXTERNAL = external_dir()
NIR_DIR = EXTERNAL / "NIR" if EXTERNAL else None
needs_files = pytest.mark.skipif(NIR_DIR is None, reason="../shared/external/NIR (the real NIR files) is absent")


def nir_files() -> list[str]:
    """Every .nir file, relative to NIR_DIR (empty without the folder)."""
    if NIR_DIR is None:
        return []
    return sorted(str(p.relative_to(NIR_DIR)) for p in NIR_DIR.rglob("*.nir"))


def _flat(graph, prefix: str = ""):
    """(nodes, edges) with nested graphs inlined; their Input/Output nodes become None (pass-through)."""
    import nir

    nodes, edges, subs = {}, [], {}
    for k, n in graph.nodes.items():
        if isinstance(n, nir.NIRGraph):
            sn, se = _flat(n, f"{prefix}{k}.")
            nodes.update(sn)
            edges += se
            subs[k] = n
        else:
            nodes[prefix + k] = None if prefix and isinstance(n, (nir.Input, nir.Output)) else n

    def end(e, role):
        if e in subs:
            (inner,) = [k for k, n in subs[e].nodes.items() if type(n).__name__ == role]
            return f"{prefix}{e}.{inner}"
        return prefix + e

    edges += [(end(s, "Output"), end(d, "Input")) for s, d in graph.edges]
    return nodes, edges


def _pair(v) -> tuple[int, int]:
    flat = [int(e) for e in np.atleast_1d(np.asarray(v)).reshape(-1)]
    return (flat[0], flat[0]) if len(flat) == 1 else (flat[0], flat[1])


NEURON_NODES = ("IF", "LIF", "CubaLIF", "LI", "I", "CubaLI")


def euler_reference(graph, inputs: dict[str, torch.Tensor], dt: float) -> dict[str, torch.Tensor]:
    """Simulate a nir.NIRGraph; inputs name -> [T, N, *]; returns Output name -> [T, N, *].

    A cycle is closed where an edge leaves a neuron: that edge carries the neuron's output of the previous
    step (zero at the first), as snnTorch and Norse run recurrent layers. A Delay holds each element back
    round(delay / dt) steps (zero before)."""
    import networkx as nx
    import nir

    nodes, edges = _flat(graph)
    dg = nx.DiGraph(list(edges))
    dg.add_nodes_from(nodes)
    back = {(s, d) for s, d in edges if type(nodes[s]).__name__ in NEURON_NODES and nx.has_path(dg, d, s)}
    dg.remove_edges_from(back)
    while not nx.is_directed_acyclic_graph(dg):  # a cycle without a neuron (a self-loop): its closing edge
        s_d = nx.find_cycle(dg)[-1][:2]
        dg.remove_edge(*s_d)
        back.add(s_d)
    preds = {k: [s for s, d in edges if d == k and (s, d) not in back] for k in nodes}
    late = {k: [s for s, d in back if d == k] for k in nodes}
    order, seen = [], set()

    def visit(k):
        if k in seen:
            return
        seen.add(k)
        for p in preds[k]:
            visit(p)
        order.append(k)

    for k in nodes:
        visit(k)
    N = next(iter(inputs.values())).shape[1]

    def zeros_of(k):
        shape = next(iter(nodes[k].output_type.values()))
        return torch.zeros(N, *[int(d) for d in np.asarray(shape).reshape(-1)], dtype=torch.float64)

    prev: dict[str, torch.Tensor] = {}
    T = next(iter(inputs.values())).shape[0]
    state: dict[str, dict] = {}
    outs: dict[str, list] = {k: [] for k, n in nodes.items() if isinstance(n, nir.Output)}
    a = lambda v: torch.as_tensor(np.asarray(v, dtype=np.float64))  # noqa: E731
    for t in range(T):
        val: dict[str, torch.Tensor] = {}
        for k in order:
            n = nodes[k]
            xs = [val[p] for p in preds[k]] + [prev[p] if p in prev else zeros_of(p) for p in late[k]]
            x = sum(xs) if xs else None
            if isinstance(n, nir.Input):
                val[k] = inputs[k][t].double()
                continue
            if n is None or isinstance(n, nir.Output):
                val[k] = x
                if k in outs:
                    outs[k].append(x)
                continue
            v0 = a(n.v_reset).expand_as(x).clone() if isinstance(n, (nir.IF, nir.LIF, nir.CubaLIF)) else 0 * x
            st = state.setdefault(k, {"v": v0, "i": torch.zeros_like(x)})
            if isinstance(n, nir.Affine):
                y = x @ a(n.weight).T + a(n.bias).reshape(-1)
            elif isinstance(n, nir.Linear):
                y = x @ a(n.weight).T
            elif isinstance(n, nir.Scale):
                y = x * a(n.scale)
            elif isinstance(n, nir.Threshold):
                y = (x > a(n.threshold)).double()
            elif isinstance(n, nir.Conv2d):
                pad = n.padding if isinstance(n.padding, str) else _pair(n.padding)
                y = F.conv2d(x, a(n.weight), a(n.bias), _pair(n.stride), pad, _pair(n.dilation), int(n.groups))
            elif isinstance(n, (nir.SumPool2d, nir.AvgPool2d)):
                k2 = _pair(n.kernel_size)
                y = F.avg_pool2d(x, k2, _pair(n.stride), _pair(n.padding))
                if isinstance(n, nir.SumPool2d):
                    y = y * float(k2[0] * k2[1])
            elif isinstance(n, nir.Flatten):
                y = torch.flatten(x, 1 + int(n.start_dim) % (x.dim() - 1), 1 + int(n.end_dim) % (x.dim() - 1))
            elif isinstance(n, nir.IF):
                st["v"] = st["v"] + dt * a(n.r) * x
                y = (st["v"] > a(n.v_threshold)).double()
                st["v"] = torch.where(y > 0, a(n.v_reset).expand_as(x), st["v"])
            elif isinstance(n, nir.I):
                st["v"] = st["v"] + dt * a(n.r) * x
                y = st["v"]
            elif isinstance(n, (nir.LIF, nir.LI)):
                st["v"] = st["v"] + dt / a(n.tau) * (a(n.v_leak) - st["v"] + a(n.r) * x)
                y = st["v"]
                if isinstance(n, nir.LIF):
                    y = (st["v"] > a(n.v_threshold)).double()
                    st["v"] = torch.where(y > 0, a(n.v_reset).expand_as(x), st["v"])
            elif isinstance(n, nir.Delay):
                d = torch.as_tensor(np.round(np.asarray(n.delay, dtype=np.float64) / dt)).long()
                hist = st.setdefault("hist", [])
                hist.append(x.clone())
                d = d.expand_as(x) if d.numel() > 1 else d.reshape(()).expand_as(x)
                y = torch.zeros_like(x)
                for lag in d.unique().tolist():
                    if len(hist) > lag:
                        y = torch.where(d == lag, hist[-1 - lag], y)
            elif isinstance(n, (nir.CubaLIF, nir.CubaLI)):
                st["i"] = st["i"] + dt / a(n.tau_syn) * (a(n.w_in) * x - st["i"])
                st["v"] = st["v"] + dt / a(n.tau_mem) * (a(n.v_leak) - st["v"] + a(n.r) * st["i"])
                y = st["v"]
                if isinstance(n, nir.CubaLIF):
                    y = (st["v"] > a(n.v_threshold)).double()
                    st["v"] = torch.where(y > 0, a(n.v_reset).expand_as(x), st["v"])
            else:
                raise NotImplementedError(type(n).__name__)
            val[k] = y.clone()
        prev = val
    return {k: torch.stack(v) for k, v in outs.items()}
