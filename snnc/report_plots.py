"""The figures of `snnc report`: matplotlib only, legends outside the axes, constrained layout.

Each `*_figure` returns a matplotlib Figure (so tests can measure it) and `png`
renders one. `draw_graph` draws the IR graph with each node's op and output type,
with graphviz `dot` when installed, else a layered layout in matplotlib.
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.report_data import Raster, ReportData, Trace

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 120
_CATEGORY_COLOURS = {"input/output": "#e4e4e4", "weighted": "#cfe0f5", "neuron": "#fbd5a8", "other": "#f7f7f7"}


def _figure(width: float, height: float) -> "Figure":
    # a bare Figure, not pyplot: no global state, no window, and the caller's backend is left alone
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png(fig: "Figure") -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.08)
    return buf.getvalue()


# ---------------------------------------------------------------- accuracy
def accuracy_ylim(data: "ReportData") -> tuple[float, float]:
    """The accuracy axis (percent): from a multiple of 10 below every interval, spanning at least 20 points.

    A fixed floor instead of matplotlib's auto-scaling keeps a one-sample step
    (100/n points) a small fraction of the axis, so it does not look like a jump.
    """
    lows = [s.interval[0] for series in data.accuracy.values() for s in series.values()]
    if data.ann is not None:
        lows.append(data.ann.interval[0])
    lo = max(0.0, min(80.0, 10.0 * math.floor(min(lows) / 10.0)))
    return lo, 100.0 + 0.02 * (100.0 - lo)


def accuracy_figure(data: "ReportData") -> "Figure":
    from matplotlib.ticker import PercentFormatter

    fig = _figure(7.5, 4.0)
    ax = fig.subplots()
    modes = list(data.accuracy)
    ts = sorted({t for s in data.accuracy.values() for t in s})
    n = next(iter(next(iter(data.accuracy.values())).values())).n
    for i, mode in enumerate(modes):
        series = data.accuracy[mode]
        shift = 2.0 ** (0.05 * (i - (len(modes) - 1) / 2))  # side by side, so error bars do not hide each other
        xs = [t * shift for t in sorted(series)]
        scores = [series[t] for t in sorted(series)]
        ys = [s.percent for s in scores]
        err = [[y - s.interval[0] for y, s in zip(ys, scores)], [s.interval[1] - y for y, s in zip(ys, scores)]]
        ax.errorbar(xs, ys, yerr=err, marker="o", ms=4, capsize=3, lw=1.3, label=f"SNN, {mode}")
    if data.ann is not None:
        lo, hi = data.ann.interval
        ax.axhspan(lo, hi, color="k", alpha=0.08, lw=0)
        ax.axhline(data.ann.percent, color="k", ls="--", lw=1,
                   label=f"ANN {data.ann.percent:.2f}% [{lo:.1f}, {hi:.1f}]")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ts, [str(t) for t in ts])
    ax.minorticks_off()
    ax.set_xlim(ts[0] / 1.3, ts[-1] * 1.3)
    ax.set_ylim(*accuracy_ylim(data))
    ax.yaxis.set_major_formatter(PercentFormatter(100, decimals=0))
    ax.set_xlabel("time steps T")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"accuracy vs T, n = {n} samples, 95% Wilson intervals", fontsize=10)
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8)
    return fig


# ---------------------------------------------------------------- spikes
def rates_figure(data: "ReportData") -> "Figure":
    names = list(data.rates)
    fig = _figure(max(7.5, 0.7 * len(names)), 4.0)
    ax = fig.subplots()
    ax.bar(range(len(names)), [data.rates[n] for n in names], color="#4c72b0")
    labels = [f"{n}\n({data.layer_sizes.get(n, '?')})" for n in names]
    ax.set_xticks(range(len(names)), labels, rotation=30 if len(names) > 6 else 0,
                  ha="right" if len(names) > 6 else "center", fontsize=8)
    ax.set_ylabel("mean firing rate (spikes / step)")
    ax.set_title(f"per-layer firing rates, T={data.T}, {data.detail_samples} samples", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return fig


def raster_figure(r: "Raster") -> "Figure":
    T, k = len(r.spikes), len(r.neurons)
    fig = _figure(7.5, 4.0)
    ax = fig.subplots()
    events = [[t for t in range(T) if r.spikes[t][j]] for j in range(k)]
    ax.eventplot(events, lineoffsets=list(range(k)), linelengths=0.8, linewidths=1.0, colors="k")
    if not any(events):
        ax.text(0.5, 0.5, "no spikes in this sample", transform=ax.transAxes, ha="center", va="center")
    ax.set_xlim(-0.5, T - 0.5)
    ax.set_ylim(-0.7, k - 0.3)
    step = max(1, math.ceil(k / 8))
    ax.set_yticks(range(0, k, step), [str(r.neurons[j]) for j in range(0, k, step)], fontsize=8)
    ax.set_xlabel("time step t")
    ax.set_ylabel("neuron (flat index in the layer)")
    ax.set_title(f"spike raster, {r.layer}: {k} of {r.total} neurons, sample {r.sample}", fontsize=10)
    return fig


def trace_figure(tr: "Trace") -> "Figure":
    fig = _figure(7.5, 4.0)
    ax = fig.subplots()
    T = len(tr.v)
    for j, idx in enumerate(tr.neurons):
        k = tr.spike_counts[j]
        ax.plot(range(T), [row[j] for row in tr.v], lw=1.2, label=f"neuron {idx} ({k} spike{'' if k == 1 else 's'})")
    ax.axhline(tr.threshold, color="k", ls="--", lw=1, label=f"threshold {tr.threshold:g}")
    ax.set_xlabel("time step t")
    ax.set_ylabel("V after the reset of step t")
    ax.set_title(f"membrane potential, {tr.layer}, sample 0", fontsize=10)
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8)
    return fig


def scatter_figure(scatter: dict[str, tuple[list[float], list[float]]]) -> "Figure":
    n = len(scatter)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig = _figure(3.3 * cols + 0.5, 3.1 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, (layer, (act, rate)) in zip(axes.flat, scatter.items()):
        ax.scatter(act, rate, s=3, alpha=0.4)
        ax.plot([0, 1], [0, 1], "r--", lw=1)
        ax.set_xlim(-0.05, 1.5)
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("ANN activation / λ")
        ax.set_ylabel("SNN rate")
        ax.set_title(layer, fontsize=9)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig


# ---------------------------------------------------------------- graph
@dataclass(frozen=True)
class Node:
    name: str
    kind: str
    type: str  # the inferred output type, e.g. "spike[T,N,16,8,8] TNX"
    group: str | None  # fusion group
    category: str  # a key of _CATEGORY_COLOURS

    @property
    def label(self) -> str:
        return f"%{self.name}\n{self.kind}\n{self.type}" + (f"\ngroup {self.group}" if self.group else "")


def _category(op) -> str:
    if isinstance(op, (ops.Input, ops.Output)):
        return "input/output"
    if ops.is_neuron(op):
        return "neuron"
    return "weighted" if op.param_refs() else "other"


def graph_nodes(graph: Graph) -> list[Node]:
    """Every node with its op kind and output type (from the IR's type inference), in node order."""
    groups = graph.meta.get("fusion_groups") or {}
    member = {m: g for g, ms in groups.items() for m in ms} if isinstance(groups, dict) else {}
    types = graph.types
    return [Node(op.name, op.kind, str(types[op.name]), member.get(op.name), _category(op)) for op in graph]


def draw_graph(graph: Graph) -> tuple[bytes, str]:
    """A PNG of the graph and how it was laid out ('graphviz' or 'layered')."""
    if shutil.which("dot"):
        try:
            out = subprocess.run(["dot", "-Tpng", f"-Gdpi={DPI}"], input=to_dot(graph).encode(), capture_output=True,
                                 check=True, timeout=60).stdout
            return out, "graphviz"
        except (subprocess.SubprocessError, OSError):
            pass
    return png(graph_figure(graph)), "layered"


def _dot_str(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def to_dot(graph: Graph) -> str:
    nodes = graph_nodes(graph)
    groups = graph.meta.get("fusion_groups") or {}
    lines = ["digraph G {", '  rankdir=TB; node [shape=box, style="rounded,filled", fontsize=10];']
    for gname, members in (groups.items() if isinstance(groups, dict) else ()):
        lines.append(f'  subgraph "cluster_{_dot_str(gname)}" {{ label="{_dot_str(gname)}"; style=dashed;')
        lines += [f'    "{_dot_str(m)}";' for m in members]
        lines.append("  }")
    for node in nodes:
        label = f"%{node.name}\n{node.kind}\n{node.type}"
        lines.append(f'  "{_dot_str(node.name)}" [label="{_dot_str(label)}", '
                     f'fillcolor="{_CATEGORY_COLOURS[node.category]}"];')
    for op in graph:
        lines += [f'  "{_dot_str(i)}" -> "{_dot_str(op.name)}";' for i in op.inputs]
    return "\n".join(lines + ["}"])


_ROWS_PER_COLUMN = 14  # longer graphs wrap into several columns, left to right
_UNIT_W, _UNIT_H = 2.1, 0.85  # inches per node slot
_FONT = 7  # points, node labels


def _half_height(label: str) -> float:
    """Half a node box's height in rows: its lines at 1.2 line spacing plus the box padding, and a small gap."""
    return ((label.count("\n") + 1) * 1.2 * _FONT + 2 * 0.3 * _FONT) / 2 / 72 / _UNIT_H + 0.02


def _half_width(label: str) -> float:
    """Half a node box's width in node slots, from its longest line (about 0.6 em per character)."""
    return (max(len(line) for line in label.split("\n")) * 0.6 * _FONT + 2 * 0.3 * _FONT) / 2 / 72 / _UNIT_W


def graph_layout(graph: Graph) -> dict[str, tuple[float, float]]:
    """(x, y) of every node: depth goes down the page and wraps into columns; nodes of equal depth side by side."""
    depth: dict[str, int] = {}
    for op in graph:
        depth[op.name] = 1 + max((depth[i] for i in op.inputs), default=-1)
    levels: dict[int, list[str]] = {}
    for name, d in depth.items():
        levels.setdefault(d, []).append(name)
    n_levels = max(levels) + 1
    cols = math.ceil(n_levels / _ROWS_PER_COLUMN)
    per_col = math.ceil(n_levels / cols)
    width = max(len(v) for v in levels.values())
    pos = {}
    for d, names in levels.items():
        c, r = divmod(d, per_col)
        for j, name in enumerate(names):
            pos[name] = (c * (width + 0.5) + (j + 0.5) * width / len(names), -float(r))
    return pos


def graph_figure(graph: Graph) -> "Figure":
    from matplotlib.patches import Patch

    nodes = graph_nodes(graph)
    half = {n.name: _half_height(n.label) for n in nodes}
    width = {n.name: _half_width(n.label) for n in nodes}
    pos = graph_layout(graph)

    def between(x: float, y_low: float, y_high: float) -> list[str]:
        return [n for n, (px, py) in pos.items() if px == x and y_low <= py <= y_high]

    xs, ys = [p[0] for p in pos.values()], [p[1] for p in pos.values()]
    span_x, span_y = max(xs) - min(xs) + 1, max(ys) - min(ys) + 1
    fig = _figure(_UNIT_W * max(span_x, 2), _UNIT_H * span_y + 0.8)
    ax = fig.subplots()
    for op in graph:
        x1, y1 = pos[op.name]
        for i in op.inputs:
            x0, y0 = pos[i]
            if x0 != x1 and y1 > y0:  # into the next column: down, across, then up to the top and down
                mid = (x0 + x1) / 2
                ax.plot([x0, x0, mid, mid, x1], [y0 - half[i], y0 - 0.5, y0 - 0.5, y1 + 0.5, y1 + 0.5],
                        color="#555", lw=0.8)
                ax.annotate("", (x1, y1 + half[op.name]), (x1, y1 + 0.5), arrowprops={"arrowstyle": "->", "lw": 0.8,
                                                                               "color": "#555"})
            elif y0 - y1 > 1.5 and x0 == x1:  # skips a level: around the left of the boxes between
                side = x0 - max(width[n] for n in between(x0, y1, y0)) - 0.06
                ax.plot([x0 - width[i], side, side], [y0, y0, y1], color="#555", lw=0.8)
                ax.annotate("", (x1 - width[op.name], y1), (side, y1), arrowprops={"arrowstyle": "->", "lw": 0.8,
                                                                                   "color": "#555"})
            else:
                ax.annotate("", (x1, y1 + half[op.name]), (x0, y0 - half[i]),
                            arrowprops={"arrowstyle": "->", "lw": 0.8, "color": "#555"})
    for node in nodes:
        x, y = pos[node.name]
        ax.text(x, y, node.label, ha="center", va="center", fontsize=_FONT, gid=f"node:{node.name}",
                bbox={"boxstyle": "round,pad=0.3", "fc": _CATEGORY_COLOURS[node.category], "ec": "#555"})
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    ax.axis("off")
    used = [c for c in _CATEGORY_COLOURS if any(n.category == c for n in nodes)]
    fig.legend(handles=[Patch(fc=_CATEGORY_COLOURS[c], ec="#555", label=c) for c in used],
               loc="outside upper center", ncols=len(used), fontsize=8, frameon=False)
    return fig
