"""`snnc report`: one self-contained HTML file (plus PNGs) on how a conversion behaves.

Sections: what was measured (versions, date, modes, T values, sample counts),
accuracy vs T per normalization mode with 95% Wilson score intervals, per-layer
firing rates, a spike raster and membrane-potential trace of one sample, ANN
activation vs SNN rate per layer, and the graph with each node's op and type.
The numbers behind every plot are embedded as JSON (`<script id="snnc-data">`)
so they can be checked and reused. The plots themselves are in `report_plots`.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import os
import platform
from pathlib import Path
from typing import Any

import torch

from snnc.core import dynamics
from snnc.core.errors import InputError
from snnc.core.fileio import atomic_path, open_regular
from snnc.ir import ops
from snnc.ir.graph import Graph
from snnc.ir.types import Layout, TensorType
from snnc.evaluate import correct_at, rank_and_world
from snnc.passes import distributed
from snnc.report_data import Raster, ReportData, Score, Trace

DEFAULT_MODES = ("max", "99.9%", 0.5)
DEFAULT_T = (4, 8, 16, 32, 64)
RASTER_NEURONS = 64  # at most this many neurons in the raster
TRACE_NEURONS = 4  # membrane traces drawn


def _is_snn(graph: Graph) -> bool:
    return any(ops.is_neuron(op) for op in graph)


def _count(data) -> int | None:
    shape = getattr(data, "shape", None)
    return int(shape[0]) if shape is not None and len(shape) > 0 else None


def _check_eval(x: torch.Tensor, y: torch.Tensor, source: str) -> None:
    if x.dim() < 2 or x.shape[0] == 0:
        raise InputError(f"evaluation data {source}: inputs have shape {list(x.shape)}, need [num_samples, ...] "
                         "with at least one sample")
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise InputError(f"evaluation data {source}: {x.shape[0]} inputs but labels of shape {list(y.shape)}",
                         hint="labels are one class index per input")


def collect(graph: Graph, x_eval: torch.Tensor, y_eval: torch.Tensor, calib=None, *,
            modes=DEFAULT_MODES, t_values=DEFAULT_T, detail_T: int = 32, detail_batch: int = 128,
            model_source: str | None = None, eval_source: str | None = None,
            calib_source: str | None = None, analog: str | None = None, signed: bool = False) -> ReportData:
    """Compute everything the report shows.

    `graph` is an ANN (converted here with each of `modes`, which needs `calib`)
    or an already converted SNN. The `*_source` strings only label the metadata; `analog` is the
    hybrid conversion's op kinds (snnc.convert's `analog`), `signed` its signed neurons.
    """
    import snnc
    from snnc.core import __version__
    from snnc.passes import fuse_bn
    from snnc.runtime import Interpreter, Session

    eval_source = eval_source or "(given as tensors)"
    _check_eval(x_eval, y_eval, eval_source)
    if any(t <= 0 for t in t_values) or not t_values:
        raise InputError(f"the report needs positive time steps, got {list(t_values)}")
    n = int(x_eval.shape[0])
    ann_score = None
    snns: dict[str, Graph] = {}
    if _is_snn(graph):
        mode = str(graph.meta.get("conversion", {}).get("mode", "snn"))
        snns[mode] = graph
        ann = None
    else:
        if calib is None:
            raise InputError(f"model {graph.name} is an ANN: the report needs calibration data to convert it")
        ann = fuse_bn(graph)
        out = Interpreter(ann).run({ann.inputs[0].name: x_eval})[ann.outputs[0].name]
        ann_score = Score(int((out.argmax(-1) == y_eval).sum()), n)
        for m in modes:
            snns[str(m)] = snnc.convert(graph, calib, m, show_progress=False, distributed=False,
                                        **({} if analog is None else {"analog": analog}),
                                        **({"signed": True} if signed else {}))
    # under torchrun each rank scores its rows of the evaluation set and the counts are summed (snnc.evaluate)
    rank, world = rank_and_world()
    ts = tuple(sorted(set(t_values)))
    correct = torch.stack([correct_at(Session(g, progress=False), x_eval[rank::world], y_eval[rank::world], ts)
                           for g in snns.values()])
    correct = distributed.all_reduce_sums(correct)[0]
    accuracy = {m: {T: Score(int(correct[i, j]), n) for j, T in enumerate(ts)} for i, m in enumerate(snns)}
    primary_mode = "99.9%" if "99.9%" in snns else next(iter(snns))
    primary = snns[primary_mode]
    conv = primary.meta.get("conversion", {})
    meta = {
        "model": graph.name, "model_source": model_source or "(given as a Python object)",
        "snnc_version": __version__, "torch_version": torch.__version__, "python_version": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "converted_here": ann is not None, "modes": list(snns), "t_values": sorted(set(t_values)),
        "n_eval": n, "eval_source": eval_source,
        "n_calib": _count(calib) if ann is not None else None,
        "calib_source": (calib_source or "(given as data)") if ann is not None else None,
        "channelwise": conv.get("channelwise"), "v_init": conv.get("v_init"),
        "detail_mode": primary_mode, "detail_T": detail_T,
    }
    data = ReportData(title=graph.name, ann=ann_score, accuracy=accuracy, meta=meta, T=detail_T,
                      snn_graph=primary)
    _details(data, primary, ann, x_eval[:detail_batch], detail_T)
    data.meta["detail_samples"] = data.detail_samples
    return data


def _time_major(value: torch.Tensor, ty: TensorType, T: int) -> torch.Tensor:
    """A runtime value of type `ty` as [T, N, *features]."""
    if ty.layout is Layout.TNX:
        return value
    if ty.layout is Layout.NXT:
        return value.movedim(-1, 0)
    if ty.layout is Layout.TN:
        return value.reshape(T, -1, *value.shape[1:])
    raise InputError(f"value of type {ty} has no time dimension; the report needs neuron layers with time")


def _spread(items: list[int], k: int) -> list[int]:
    """k items of `items` at evenly spaced positions, the first and last included."""
    if len(items) <= k:
        return list(items)
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)] if k > 1 else [items[0]]


def make_raster(layer: str, spikes: torch.Tensor) -> Raster:
    """Sample 0 of `spikes` [T, N, *]: every neuron if few; else a spread (by index) of those that spike."""
    flat = spikes[:, 0].reshape(spikes.shape[0], -1)
    counts = flat.sum(0)
    total = flat.shape[1]
    active = torch.nonzero(counts > 0).flatten().tolist()
    if total <= RASTER_NEURONS:
        chosen, rule = list(range(total)), "all of them"
    elif not active:
        chosen, rule = list(range(RASTER_NEURONS)), f"none spikes, so the first {RASTER_NEURONS} by index"
    elif len(active) <= RASTER_NEURONS:
        chosen, rule = active, "every neuron that spikes at least once"
    else:
        chosen = _spread(active, RASTER_NEURONS)
        rule = f"evenly spaced by index among the {len(active)} that spike at least once"
    return Raster(layer=layer, sample=0, total=total, neurons=chosen, spikes=flat[:, chosen].int().tolist(),
                  active=len(active), rule=rule)


def _potentials(op, drive: torch.Tensor) -> torch.Tensor:
    """The membrane potential after each step of neuron `op` driven by `drive` [T, ...]."""
    if isinstance(op, ops.SignedIF):
        v, count, out = torch.full_like(drive[0], op.v_init), torch.zeros_like(drive[0]), []
        for t in range(drive.shape[0]):
            _, v, count = dynamics.signed_if_step(v, count, drive[t], op.v_threshold)
            out.append(v)
        return torch.stack(out)
    return dynamics.multi_step(op.to_params(), drive, op.initial_v(), return_v_seq=True)[2]


def _details(data: ReportData, snn: Graph, ann: Graph | None, x: torch.Tensor, T: int) -> None:
    from snnc.runtime import Interpreter

    neurons = [op for op in snn if ops.is_neuron(op)]
    types = snn.types
    seen: dict[str, torch.Tensor] = {}
    wanted = {op.name for op in neurons} | {op.inputs[0] for op in neurons}
    Interpreter(snn).run({snn.inputs[0].name: x}, T, observe=lambda op, v: seen.__setitem__(op.name, v)
                         if op.name in wanted else None)
    data.detail_samples = int(x.shape[0])
    for op in neurons:
        spikes = _time_major(seen[op.name], types[op.name], T)  # [T, N, *]
        data.rates[op.name] = float(spikes.abs().mean())  # a SignedIF's -1 spikes count too
        data.layer_sizes[op.name] = int(spikes[0, 0].numel())
    first = neurons[0]
    spikes = _time_major(seen[first.name], types[first.name], T)
    data.raster = make_raster(first.name, spikes)
    # the traced neurons: the raster's, at evenly spaced ranks of spike count (busiest to quietest)
    counts = torch.tensor(data.raster.spikes).sum(0).tolist()
    by_count = sorted(range(len(counts)), key=lambda j: (-counts[j], j))
    rows = _spread(by_count, TRACE_NEURONS)
    traced = [data.raster.neurons[j] for j in rows]
    drive = _time_major(seen[first.inputs[0]], types[first.inputs[0]], T)[:, :1]
    v_seq = _potentials(first, drive)
    data.trace = Trace(layer=first.name, neurons=traced, v=v_seq[:, 0].reshape(T, -1)[:, traced].tolist(),
                       threshold=float(first.v_threshold), spike_counts=[int(counts[j]) for j in rows])
    if ann is None:
        return
    acts: dict[str, torch.Tensor] = {}
    Interpreter(ann).run({ann.inputs[0].name: x}, observe=lambda op, v: acts.__setitem__(op.name, v)
                         if op.kind == "relu" else None)
    scales = snn.meta.get("conversion", {}).get("scales", {})
    for relu, a in acts.items():
        name = f"{relu}_if"
        scale = scales.get(relu)
        if name in seen and isinstance(scale, (int, float)) and scale > 0:  # per-channel scales are not plotted
            rate = _time_major(seen[name], types[name], T).mean(0).reshape(-1)
            act = (a / scale).reshape(-1)
            idx = torch.randperm(act.numel(), generator=torch.Generator().manual_seed(0))[:2000]
            data.scatter[name] = (act[idx].tolist(), rate[idx].tolist())


# ---------------------------------------------------------------- HTML
_META_ROWS = (  # key in ReportData.meta -> label
    ("model", "model"), ("model_source", "model source"), ("snnc_version", "snnc version"),
    ("torch_version", "torch version"), ("python_version", "Python version"), ("date", "date (UTC)"),
    ("modes", "normalization modes"), ("t_values", "T values"), ("n_eval", "evaluation samples"),
    ("eval_source", "evaluation data"), ("n_calib", "calibration samples"), ("calib_source", "calibration data"),
    ("channelwise", "channel-wise scales"), ("v_init", "initial potential (× threshold)"),
    ("detail_mode", "mode of the detail plots"), ("detail_T", "T of the detail plots"),
    ("detail_samples", "samples of the detail plots"),
)

_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,sans-serif;margin:0;padding:1rem 2vw;width:100%;line-height:1.35}
h1{font-size:1.5rem;margin:.2rem 0 1rem}h2{font-size:1.15rem;margin:1.6rem 0 .5rem}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
td,th{border:1px solid #bbb;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#f3f3f3}td.l,th.l{text-align:left}
table.meta td{text-align:left}small{color:#555}
.scroll{overflow-x:auto;max-width:100%}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,560px),1fr));gap:1.2rem 2vw}
figure{margin:0}figure img{display:block;width:100%;height:auto}
figcaption{font-size:.9rem;color:#333;margin-top:.3rem}
.graph{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,420px),1fr));gap:1.2rem 2vw;
align-items:start}
.graph img{display:block;max-width:100%;height:auto}
"""


def _fmt_meta(v: Any) -> str:
    if v is None:
        return "not used (the model was converted before the report)"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    return str(v)


def _meta_table(meta: dict[str, Any]) -> str:
    rows = "".join(f'<tr><th class="l">{html.escape(label)}</th><td data-key="{key}">'
                   f"{html.escape(_fmt_meta(meta[key]))}</td></tr>" for key, label in _META_ROWS if key in meta)
    return f'<table class="meta" id="meta">{rows}</table>'


def _score_cell(s: Score) -> str:
    lo, hi = s.interval
    return (f'<td data-correct="{s.correct}" data-n="{s.n}">{s.percent:.2f}'
            f"<br><small>{s.correct}/{s.n} · [{lo:.1f}, {hi:.1f}]</small></td>")


def _accuracy_table(data: ReportData) -> str:
    ts = sorted({t for s in data.accuracy.values() for t in s})
    ann = data.ann is not None
    head = ('<tr><th class="l">mode</th>' + ("<th>ANN</th>" if ann else "")
            + "".join(f"<th>T={t}</th>" for t in ts) + "</tr>")
    rows = [f'<tr><td class="l">SNN {html.escape(m)}</td>' + (_score_cell(data.ann) if ann else "")
            + "".join(_score_cell(series[t]) if t in series else "<td></td>" for t in ts) + "</tr>"
            for m, series in data.accuracy.items()]
    return f'<div class="scroll"><table id="accuracy">{head}{"".join(rows)}</table></div>'


def _node_table(graph: Graph) -> str:
    from snnc.report_plots import graph_nodes

    rows = "".join(f'<tr><td class="l">%{html.escape(n.name)}</td><td class="l">{html.escape(n.kind)}</td>'
                   f'<td class="l"><code>{html.escape(n.type)}</code></td><td class="l">{html.escape(n.group or "")}'
                   "</td></tr>" for n in graph_nodes(graph))
    return ('<div class="scroll"><table id="nodes"><tr><th class="l">value</th><th class="l">op</th>'
            f'<th class="l">type</th><th class="l">fusion group</th></tr>{rows}</table></div>')


def _figure(key: str, png: bytes, caption: str) -> str:
    b64 = base64.b64encode(png).decode()
    return (f'<figure id="fig-{key}"><img id="img-{key}" alt="{html.escape(caption)}" '
            f'src="data:image/png;base64,{b64}"><figcaption>{html.escape(caption)}</figcaption></figure>')


_REPORT_FILES = {"report.html", "accuracy.png", "rates.png", "raster.png", "trace.png", "scatter.png", "graph.png"}
_MARKER = '<script type="application/json" id="snnc-data">'


def is_report_folder(path: Path) -> bool:
    """Whether `path` is a folder an earlier `write_report` wrote (so it may be replaced)."""
    try:
        names = set(os.listdir(path))
        if "report.html" not in names or not names <= _REPORT_FILES:
            return False
        with open_regular(path / "report.html") as f:
            return _MARKER.encode() in f.read(1 << 26)
    except OSError:
        return False


def write_report(data: ReportData, out_dir: str | Path, *, force: bool = False) -> Path:
    """Write report.html (self-contained, images inlined) and the PNGs to out_dir atomically.

    An existing out_dir is replaced only if it is an earlier report (or empty), or with `force`.
    """
    from snnc import report_plots as rp

    n = next(iter(next(iter(data.accuracy.values())).values())).n
    images: dict[str, tuple[bytes, str]] = {
        "accuracy": (rp.png(rp.accuracy_figure(data)),
                     f"Accuracy vs T on {n} evaluation samples; error bars and the band around the ANN line are "
                     "95% Wilson score intervals."),
        "rates": (rp.png(rp.rates_figure(data)),
                  f"Mean firing rate of each neuron layer over {data.detail_samples} samples, T={data.T}, "
                  "all neurons of the layer (neurons per sample in brackets)."),
    }
    if data.raster is not None:
        images["raster"] = (rp.png(rp.raster_figure(data.raster)), data.raster.caption[0].upper()
                            + data.raster.caption[1:] + ".")
    if data.trace is not None:
        images["trace"] = (rp.png(rp.trace_figure(data.trace)),
                           f"Membrane potential of {len(data.trace.neurons)} neurons of {data.trace.layer} "
                           "(from the raster's, busiest to quietest), sample 0, after each step's reset; "
                           "dashed: the threshold.")
    if data.scatter:
        k = len(next(iter(data.scatter.values()))[0])
        images["scatter"] = (rp.png(rp.scatter_figure(data.scatter)),
                             f"ANN activation / λ vs SNN firing rate (T={data.T}), {k} random neurons × samples "
                             f"per layer out of {data.detail_samples} samples; red: rate = activation.")
    graph_png, how = rp.draw_graph(data.snn_graph)
    images["graph"] = (graph_png, f"The converted graph ({data.meta.get('detail_mode', '')}), {how} layout: "
                       "each node shows its value name, op and output type.")
    plots = "".join(_figure(k, png, cap) for k, (png, cap) in images.items() if k != "graph")
    body = [f"<h1>snnc report: {html.escape(data.title)}</h1>",
            "<h2>What was measured</h2>", _meta_table(data.meta),
            f"<h2>Accuracy (%) by normalization mode and T</h2><p>{n} evaluation samples; each cell: accuracy, "
            "correct/n and the 95% Wilson score interval.</p>", _accuracy_table(data),
            "<h2>Plots</h2>", f'<div class="plots">{plots}</div>',
            "<h2>Graph</h2>", f'<div class="graph">{_figure("graph", *images["graph"])}'
                              f"{_node_table(data.snn_graph)}</div>"]
    payload = data.to_json().replace("<", "\\u003c")  # still valid JSON; cannot end the script element
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>snnc report: {html.escape(data.title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(body)
            + f"{_MARKER}{payload}</script>"
            + "</body></html>\n")
    out = Path(out_dir)
    with atomic_path(out, directory=True, replaces=is_report_folder, force=force, what="report") as tmp:
        (tmp / "report.html").write_text(page, encoding="utf-8")
        for key, (png, _) in images.items():
            (tmp / f"{key}.png").write_bytes(png)
    return out / "report.html"
