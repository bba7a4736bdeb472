"""`snnc report`: one self-contained HTML file (plus PNGs) on how a conversion behaves.

Sections: accuracy vs T per normalization mode, per-layer firing rates, a spike
raster and membrane-potential trace of one sample, ANN activation vs SNN rate
per layer, and a drawing of the graph with its fusion groups. The numbers
behind every plot are embedded as JSON (`<script id="snnc-data">`) so they can
be checked and reused.
"""

from __future__ import annotations

import base64
import html
import io
import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import torch

from snnc import dynamics
from snnc.fileio import atomic_path
from snnc.ir import ops
from snnc.ir.graph import Graph

DEFAULT_MODES = ("max", "99.9%", 0.5)
DEFAULT_T = (4, 8, 16, 32, 64)


@dataclass
class ReportData:
    title: str
    ann_accuracy: float | None
    accuracy: dict[str, dict[int, float]]  # mode -> T -> accuracy (%)
    rates: dict[str, float] = field(default_factory=dict)  # neuron layer -> mean firing rate
    raster: dict[str, list[list[int]]] = field(default_factory=dict)  # layer -> [T][neurons] for one sample
    v_trace: dict[str, list[list[float]]] = field(default_factory=dict)  # layer -> [T][few neurons]
    scatter: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)  # layer -> (ann/λ, rate)
    T: int = 32
    snn_graph: Graph | None = None  # the converted graph the details and the drawing show

    def to_json(self) -> str:
        return json.dumps({"title": self.title, "ann_accuracy": self.ann_accuracy,
                           "accuracy": {m: {str(t): a for t, a in v.items()} for m, v in self.accuracy.items()},
                           "rates": self.rates, "T": self.T}, indent=1)


def _accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float((pred == y).float().mean()) * 100.0


def _is_snn(graph: Graph) -> bool:
    return any(isinstance(op, ops.NeuronOp) for op in graph)


def collect(graph: Graph, x_eval: torch.Tensor, y_eval: torch.Tensor, calib=None, *,
            modes=DEFAULT_MODES, t_values=DEFAULT_T, detail_T: int = 32, detail_batch: int = 128) -> ReportData:
    """Compute everything the report shows."""
    import snnc
    from snnc.passes import fuse_bn
    from snnc.runtime import Interpreter, Session

    ann_acc = None
    snns: dict[str, Graph] = {}
    if _is_snn(graph):
        mode = str(graph.meta.get("conversion", {}).get("mode", "snn"))
        snns[mode] = graph
        ann = None
    else:
        if calib is None:
            raise ValueError("an ANN needs calibration data for the report")
        ann = fuse_bn(graph)
        out = Interpreter(ann).run({ann.inputs[0].name: x_eval})[ann.outputs[0].name]
        ann_acc = _accuracy(out.argmax(-1), y_eval)
        for m in modes:
            snns[str(m)] = snnc.convert(graph, calib, m, show_progress=False)
    accuracy = {}
    for m, g in snns.items():
        s = Session(g)
        accuracy[m] = {T: _accuracy(s.predict(x_eval, T), y_eval) for T in t_values}
    primary_mode = "99.9%" if "99.9%" in snns else next(iter(snns))
    data = ReportData(title=graph.name, ann_accuracy=ann_acc, accuracy=accuracy, T=detail_T,
                      snn_graph=snns[primary_mode])
    _details(data, snns[primary_mode], ann, x_eval[:detail_batch], detail_T)
    return data


def _details(data: ReportData, snn: Graph, ann: Graph | None, x: torch.Tensor, T: int) -> None:
    from snnc.runtime import Interpreter

    neurons = [op for op in snn if isinstance(op, ops.NeuronOp)]
    seen: dict[str, torch.Tensor] = {}
    wanted = {op.name for op in neurons} | {op.inputs[0] for op in neurons}
    Interpreter(snn).run({snn.inputs[0].name: x}, T, observe=lambda op, v: seen.__setitem__(op.name, v)
                         if op.name in wanted else None)
    for op in neurons:
        spikes = seen[op.name]  # [T, N, *]
        data.rates[op.name] = float(spikes.mean())
        flat = spikes[:, 0].reshape(T, -1)
        data.raster[op.name] = flat[:, :64].int().tolist()
        _, _, v_seq = dynamics.multi_step(op.to_params(), seen[op.inputs[0]][:, :1], op.initial_v(),
                                          return_v_seq=True)
        data.v_trace[op.name] = v_seq[:, 0].reshape(T, -1)[:, :4].tolist()
    if ann is None:
        return
    acts: dict[str, torch.Tensor] = {}
    Interpreter(ann).run({ann.inputs[0].name: x}, observe=lambda op, v: acts.__setitem__(op.name, v)
                         if op.kind == "relu" else None)
    scales = snn.meta.get("conversion", {}).get("scales", {})
    for relu, a in acts.items():
        name = f"{relu}_if"
        if name in seen and relu in scales and scales[relu] > 0:
            rate = seen[name].mean(0).reshape(-1)
            act = (a / scales[relu]).reshape(-1)
            idx = torch.randperm(act.numel(), generator=torch.Generator().manual_seed(0))[:2000]
            data.scatter[name] = (act[idx].tolist(), rate[idx].tolist())


# ---------------------------------------------------------------- plots
def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def plot_accuracy(data: ReportData) -> bytes:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for mode, series in data.accuracy.items():
        ts = sorted(series)
        ax.plot(ts, [series[t] for t in ts], marker="o", label=f"SNN {mode}")
    if data.ann_accuracy is not None:
        ax.axhline(data.ann_accuracy, color="k", ls="--", label=f"ANN {data.ann_accuracy:.2f}%")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("time steps T")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("accuracy vs T")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def plot_rates(data: ReportData) -> bytes:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    names = list(data.rates)
    ax.bar(range(len(names)), [data.rates[n] for n in names])
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("mean firing rate")
    ax.set_title(f"per-layer firing rates (T={data.T})")
    return _png(fig)


def plot_raster_and_trace(data: ReportData) -> bytes:
    import matplotlib.pyplot as plt

    layer = next(iter(data.raster))
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.2))
    r = torch.tensor(data.raster[layer])
    t_idx, n_idx = torch.nonzero(r, as_tuple=True)
    a.scatter(t_idx.tolist(), n_idx.tolist(), s=4, marker="|", color="k")
    a.set_xlabel("t")
    a.set_ylabel("neuron")
    a.set_title(f"spike raster, {layer}, sample 0")
    v = torch.tensor(data.v_trace[layer])
    for j in range(v.shape[1]):
        b.plot(v[:, j].tolist(), label=f"neuron {j}")
    b.set_xlabel("t")
    b.set_ylabel("V")
    b.set_title(f"membrane potential, {layer}")
    b.legend(fontsize=7)
    return _png(fig)


def plot_scatter(data: ReportData) -> bytes | None:
    import matplotlib.pyplot as plt

    if not data.scatter:
        return None
    n = len(data.scatter)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.1), squeeze=False)
    for ax, (layer, (act, rate)) in zip(axes[0], data.scatter.items()):
        ax.scatter(act, rate, s=3, alpha=0.4)
        ax.plot([0, 1], [0, 1], "r--", lw=1)
        ax.set_xlim(-0.05, 1.5)
        ax.set_xlabel("ANN activation / λ")
        ax.set_ylabel("SNN rate")
        ax.set_title(layer, fontsize=9)
    return _png(fig)


def plot_graph(graph: Graph) -> tuple[bytes, str]:
    """A drawing of the graph: graphviz `dot` when installed, else a layered layout in matplotlib."""
    if shutil.which("dot"):
        try:
            png = subprocess.run(["dot", "-Tpng"], input=to_dot(graph).encode(), capture_output=True,
                                 check=True, timeout=60).stdout
            return png, "graphviz"
        except (subprocess.SubprocessError, OSError):
            pass
    return _plot_graph_layers(graph), "layered"


def to_dot(graph: Graph) -> str:
    groups = graph.meta.get("fusion_groups") or {}
    lines = ["digraph G {", "  rankdir=TB; node [shape=box, fontsize=10];"]
    for gname, members in groups.items():
        lines.append(f'  subgraph "cluster_{gname}" {{ label="{gname}"; style=dashed;')
        lines += [f'    "{m}";' for m in members]
        lines.append("  }")
    for op in graph:
        lines.append(f'  "{op.name}" [label="{op.name}\\n{op.kind}"];')
        lines += [f'  "{i}" -> "{op.name}";' for i in op.inputs]
    return "\n".join(lines + ["}"])


def _plot_graph_layers(graph: Graph) -> bytes:
    import matplotlib.pyplot as plt

    depth: dict[str, int] = {}
    for op in graph:
        depth[op.name] = 1 + max((depth[i] for i in op.inputs), default=-1)
    rows: dict[int, list[str]] = {}
    for name, d in depth.items():
        rows.setdefault(d, []).append(name)
    groups = graph.meta.get("fusion_groups") or {}
    member = {m: g for g, ms in groups.items() for m in ms}
    palette = ["#cde", "#fdc", "#dfc", "#fcf", "#ffc", "#cff"]
    colour = {g: palette[i % len(palette)] for i, g in enumerate(groups)}
    width = max(len(r) for r in rows.values())
    fig, ax = plt.subplots(figsize=(2.2 * max(width, 2), 0.7 * (len(rows) + 1)))
    pos = {}
    for d, names in rows.items():
        for j, n in enumerate(names):
            pos[n] = ((j + 0.5) * width / len(names), -d)
    for op in graph:
        for i in op.inputs:
            (x0, y0), (x1, y1) = pos[i], pos[op.name]
            ax.annotate("", (x1, y1 + 0.25), (x0, y0 - 0.25), arrowprops={"arrowstyle": "->", "lw": 0.8})
    for op in graph:
        x, y = pos[op.name]
        fc = colour.get(member.get(op.name), "#eee")
        ax.text(x, y, f"{op.name}\n{op.kind}", ha="center", va="center", fontsize=7,
                bbox={"boxstyle": "round", "fc": fc, "ec": "#555"})
    ax.set_xlim(-0.2, width + 0.2)
    ax.set_ylim(-len(rows), 1)
    ax.axis("off")
    ax.set_title("graph" + (" (colours: fusion groups)" if groups else ""))
    return _png(fig)


# ---------------------------------------------------------------- HTML
def write_report(data: ReportData, out_dir: str | Path) -> Path:
    """Write report.html (self-contained, images inlined) and the PNGs to out_dir atomically."""
    images = {"accuracy": plot_accuracy(data), "rates": plot_rates(data), "raster": plot_raster_and_trace(data)}
    scatter = plot_scatter(data)
    if scatter is not None:
        images["scatter"] = scatter
    images["graph"], how = plot_graph(data.snn_graph)
    rows = "".join(f"<tr><td>{html.escape(m)}</td>" + "".join(f"<td>{a:.2f}</td>" for _, a in sorted(s.items()))
                   + "</tr>" for m, s in data.accuracy.items())
    ts = sorted(next(iter(data.accuracy.values())))
    body = [f"<h1>snnc report: {html.escape(data.title)}</h1>",
            f"<p>ANN accuracy: {data.ann_accuracy:.2f}%</p>" if data.ann_accuracy is not None else "",
            "<h2>Accuracy (%) by normalization mode and T</h2><table><tr><th>mode</th>" + "".join(f"<th>T={t}</th>" for t in ts) + "</tr>"
            + rows + "</table>"]
    captions = {"accuracy": "Accuracy vs T", "rates": "Per-layer firing rates",
                "raster": "Spike raster and membrane potential (one sample)",
                "scatter": "ANN activation vs SNN firing rate", "graph": f"Graph ({how} layout)"}
    for key, png in images.items():
        b64 = base64.b64encode(png).decode()
        body.append(f'<h2>{captions[key]}</h2><img id="img-{key}" alt="{key}" src="data:image/png;base64,{b64}">')
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>snnc report</title><style>"
            "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}img{max-width:100%}</style></head><body>"
            + "\n".join(body)
            + f'<script type="application/json" id="snnc-data">{html.escape(data.to_json(), quote=False)}</script>'
            + "</body></html>\n")
    out = Path(out_dir)
    with atomic_path(out, directory=True) as tmp:
        (tmp / "report.html").write_text(page)
        for key, png in images.items():
            (tmp / f"{key}.png").write_bytes(png)
    return out / "report.html"
