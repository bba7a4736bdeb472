"""snnc report: what the page says matches the data, the intervals, the metadata; the plots are legible.

No test trains a network: the model is built with set weights (a nearest-class-mean
classifier on the digits data, plus fixed random conv channels), so any CPU gets
the same report up to float rounding, and every check compares the report with
an independent computation, never with stored numbers.
"""

import datetime
import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from itertools import combinations

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
import torch.nn as nn

import snnc
from snnc.core import datasets
from snnc.core.errors import InputError
from snnc.ir import ops, save
from snnc.report import RASTER_NEURONS, collect, is_report_folder, make_raster, write_report
from snnc.report_data import ReportData, Score, wilson_interval
from snnc.report_plots import (accuracy_figure, accuracy_ylim, graph_figure, graph_layout, graph_nodes, to_dot,
                               trace_figure)
from snnc.runtime import Interpreter, Session

MODES, T_VALUES, N_EVAL, N_CALIB, DETAIL = ("max", "99.9%"), (4, 16), 90, 64, 16


class TemplateNet(nn.Module):
    """conv (channel 0 passes the image through) -> relu -> fc1 (class-mean templates, ±) -> relu -> fc2 (±).

    fc2(relu(s) - relu(-s)) = s, the nearest-class-mean score: about 90% on digits without any training.
    """

    def __init__(self, data: datasets.Split):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc1 = nn.Linear(256, 20)
        self.fc2 = nn.Linear(20, 10)
        with torch.no_grad():
            # integers over powers of two: torch.randint gives the same numbers on every CPU (randn may not)
            self.conv.weight.copy_(torch.randint(-4, 5, (4, 1, 3, 3), generator=g) / 8.0)
            self.conv.bias.copy_(torch.randint(0, 3, (4,), generator=g) / 16.0)
            self.conv.weight[0] = 0.0
            self.conv.weight[0, 0, 1, 1] = 1.0
            self.conv.bias[0] = 0.0
            mu = torch.stack([data.x_train[data.y_train == c].mean(0).flatten() for c in range(10)])
            w = torch.zeros(10, 256)
            w[:, :64] = mu
            b = -0.5 * (mu * mu).sum(1)
            self.fc1.weight.copy_(torch.cat([w, -w]))
            self.fc1.bias.copy_(torch.cat([b, -b]))
            self.fc2.weight.copy_(torch.cat([torch.eye(10), -torch.eye(10)], 1))
            self.fc2.bias.zero_()

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(torch.flatten(torch.relu(self.conv(x)), 1))))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    data = datasets.digits()
    model = TemplateNet(data).eval()
    graph = snnc.trace(model, (1, 8, 8), name="template")
    calib, x, y = data.x_train[:N_CALIB], data.x_test[:N_EVAL], data.y_test[:N_EVAL]
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    rep = collect(graph, x, y, calib, modes=MODES, t_values=T_VALUES, detail_T=16, detail_batch=DETAIL,
                  model_source="tests/test_report.py:TemplateNet", eval_source="digits test[:90]",
                  calib_source="digits train[:64]")
    out = write_report(rep, tmp_path_factory.mktemp("rep") / "r")
    return {"rep": rep, "out": out, "page": out.read_text(encoding="utf-8"), "model": model, "calib": calib,
            "x": x, "y": y, "before": before}


def _data(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="snnc-data">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))  # plain JSON: no HTML unescaping needed


# ---------------------------------------------------------------- Wilson interval
@pytest.mark.parametrize("k, n, lo, hi", [  # Newcombe (1998), Stat. Med. 17:857, Table II, method 3 (score)
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)])
def test_wilson_interval_matches_published_values(k, n, lo, hi):
    got = wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=6e-5)


def test_wilson_interval_edges_and_symmetry():
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(0, 10)[0] == 0.0
    assert 0.69 < wilson_interval(10, 10)[0] < 0.73  # not the empty interval p ± 0 of the normal approximation
    for k in range(0, 31):
        lo, hi = wilson_interval(k, 30)
        lo2, hi2 = wilson_interval(30 - k, 30)
        assert lo <= k / 30 <= hi and lo == pytest.approx(1 - hi2) and hi == pytest.approx(1 - lo2)
    assert wilson_interval(45, 50)[1] - wilson_interval(45, 50)[0] > wilson_interval(450, 500)[1] - \
        wilson_interval(450, 500)[0]  # more samples, narrower
    for bad in ((1, 0), (-1, 5), (6, 5)):
        with pytest.raises(ValueError):
            wilson_interval(*bad)


# ---------------------------------------------------------------- accuracy
def test_scores_match_the_api_and_carry_their_intervals(built):
    rep, page, model, calib, x, y = (built[k] for k in ("rep", "page", "model", "calib", "x", "y"))
    d = _data(page)
    with torch.no_grad():
        ann_correct = int((model(x).argmax(-1) == y).sum())
    assert d["ann"]["correct"] == ann_correct and d["ann"]["n"] == N_EVAL
    table = re.search(r'<table id="accuracy">(.*?)</table>', page, re.S).group(1)
    assert re.findall(r"<th>(T=\d+|ANN)</th>", table) == ["ANN"] + [f"T={t}" for t in T_VALUES]
    seen = set()
    for mode in MODES:
        s = Session(snnc.convert(model, calib, mode, show_progress=False))
        row = re.search(rf'<tr><td class="l">SNN {re.escape(mode)}</td>(.*?)</tr>', table).group(1)
        cells = re.findall(r'<td data-correct="(\d+)" data-n="(\d+)">([\d.]+)<br><small>(\d+)/(\d+) · '
                           r"\[([\d.]+), ([\d.]+)\]</small></td>", row)
        assert len(cells) == 1 + len(T_VALUES) and cells[0][:2] == (str(ann_correct), str(N_EVAL))
        for T, cell in zip(T_VALUES, cells[1:]):
            correct = int((s.predict(x, T) == y).sum())
            seen.add(correct)
            got = d["scores"][mode][str(T)]
            lo, hi = (100 * v for v in wilson_interval(correct, N_EVAL))
            assert (got["correct"], got["n"]) == (correct, N_EVAL)
            assert got["percent"] == pytest.approx(100 * correct / N_EVAL)
            assert got["interval95"] == pytest.approx([lo, hi])
            assert cell == (str(correct), str(N_EVAL), f"{100 * correct / N_EVAL:.2f}", str(correct), str(N_EVAL),
                            f"{lo:.1f}", f"{hi:.1f}")
    assert len(seen) > 1  # the fixture is not degenerate: the scores differ between modes or T


def test_accuracy_axis_keeps_one_sample_steps_small():
    n = 450
    high = ReportData("m", Score(448, n), {"max": {4: Score(443, n), 8: Score(447, n), 16: Score(448, n)}})
    lo, hi = accuracy_ylim(high)
    assert lo <= 80 and hi >= 100  # a floor, not auto-scaling to the 98-100% the data spans
    assert (100 / n) / (hi - lo) < 0.015  # one image is a small step on this axis
    low = ReportData("m", None, {"max": {2: Score(150, n), 4: Score(440, n)}})
    lo, hi = accuracy_ylim(low)
    assert lo <= Score(150, n).interval[0] and lo % 10 == 0 and hi >= 100
    ax = accuracy_figure(high).axes[0]
    assert ax.get_ylim() == pytest.approx(accuracy_ylim(high)) and "%" in ax.get_ylabel()
    assert "n = 450" in ax.get_title()
    # every point has an error bar: one vertical segment per (mode, T), spanning its Wilson interval
    segs = [s for c in ax.collections for s in c.get_segments()]
    spans = sorted((round(float(s[0][1]), 6), round(float(s[1][1]), 6)) for s in segs)
    want = sorted((round(sc.interval[0], 6), round(sc.interval[1], 6)) for sc in high.accuracy["max"].values())
    assert spans == want


# ---------------------------------------------------------------- metadata
def test_metadata_names_versions_data_and_settings(built):
    page, before = built["page"], built["before"]
    meta = _data(page)["meta"]
    assert meta["snnc_version"] == snnc.__version__ and meta["torch_version"] == torch.__version__
    assert meta["model"] == "template" and meta["model_source"] == "tests/test_report.py:TemplateNet"
    assert meta["modes"] == list(MODES) and meta["t_values"] == list(T_VALUES)
    assert meta["n_eval"] == N_EVAL and meta["n_calib"] == N_CALIB and meta["detail_samples"] == DETAIL
    assert meta["eval_source"] == "digits test[:90]" and meta["calib_source"] == "digits train[:64]"
    date = datetime.datetime.fromisoformat(meta["date"])
    assert before <= date <= datetime.datetime.now(datetime.timezone.utc)
    table = re.search(r'<table class="meta" id="meta">(.*?)</table>', page, re.S).group(1)
    for key, shown in (("snnc_version", snnc.__version__), ("torch_version", torch.__version__),
                       ("modes", "max, 99.9%"), ("t_values", "4, 16"), ("n_eval", str(N_EVAL)),
                       ("n_calib", str(N_CALIB)), ("model_source", "tests/test_report.py:TemplateNet")):
        assert f'data-key="{key}">{shown}</td>' in table


def test_ann_without_calibration_and_bad_eval_data_are_input_errors(built):
    graph = snnc.trace(built["model"], (1, 8, 8))
    x, y = built["x"], built["y"]
    with pytest.raises(InputError, match="ANN"):
        collect(graph, x, y, None)
    with pytest.raises(InputError, match=r"evaluation data labels\.npz: 90 inputs but labels of shape \[89\]"):
        collect(graph, x, y[:-1], built["calib"], eval_source="labels.npz")
    with pytest.raises(InputError, match="positive time steps"):
        collect(graph, x, y, built["calib"], t_values=(4, 0))


# ---------------------------------------------------------------- raster and trace
def test_raster_says_which_neurons_of_how_many(built):
    rep, page = built["rep"], built["page"]
    snn = rep.snn_graph
    first = next(op for op in snn if isinstance(op, ops.NeuronOp))
    seen = {}
    Interpreter(snn).run({snn.inputs[0].name: built["x"][:DETAIL]}, 16,
                         observe=lambda op, v: seen.__setitem__(op.name, v) if op.name == first.name else None)
    spikes = seen[first.name][:, 0].reshape(16, -1)  # sample 0, [T, neurons]
    total = int(np.prod(snn.types[first.name].features))
    active = set(torch.nonzero(spikes.sum(0) > 0).flatten().tolist())
    r = rep.raster
    assert (r.layer, r.total, r.active) == (first.name, total, len(active)) and total == 256
    assert len(r.neurons) == RASTER_NEURONS < len(active)  # this fixture exercises the subset case
    assert set(r.neurons) <= active and r.neurons == sorted(set(r.neurons))
    assert torch.equal(torch.tensor(r.spikes), spikes[:, r.neurons].int())
    caption = f"{RASTER_NEURONS} of {total} neurons shown"
    assert caption in r.caption and caption in page and f"{len(active)} of {total} neurons spike" in page
    # the trace shows neurons of the raster, busiest first, with their spike counts
    counts = spikes.sum(0)
    assert set(rep.trace.neurons) <= set(r.neurons)
    assert rep.trace.spike_counts == [int(counts[i]) for i in rep.trace.neurons]
    assert rep.trace.spike_counts == sorted(rep.trace.spike_counts, reverse=True)


def test_raster_selection_rules():
    def spikes(counts):  # [T=8, N=1, M]: neuron j spikes in its first counts[j] steps
        t = torch.arange(8)[:, None]
        return (t < torch.tensor(counts)[None]).float()[:, None]

    small = make_raster("l", spikes([0, 3, 0, 1]))
    assert small.neurons == [0, 1, 2, 3] and small.active == 2 and "4 of 4 neurons" in small.caption
    silent = make_raster("l", spikes([0] * 100))
    assert silent.neurons == list(range(RASTER_NEURONS)) and silent.active == 0 and "none spikes" in silent.rule
    few = [1 if j % 5 == 0 else 0 for j in range(300)]  # 60 active neurons
    r = make_raster("l", spikes(few))
    assert r.neurons == [j for j in range(300) if j % 5 == 0] and "60 of 300 neurons shown" in r.caption
    many = [j % 7 for j in range(1000)]  # active unless j % 7 == 0
    r = make_raster("l", spikes(many))
    active = [j for j in range(1000) if j % 7]
    assert len(r.neurons) == RASTER_NEURONS and set(r.neurons) <= set(active)
    assert r.neurons[0] == active[0] and r.neurons[-1] == active[-1]  # spread over the whole layer
    assert f"{RASTER_NEURONS} of 1000 neurons shown" in r.caption and f"{len(active)} that spike" in r.caption


# ---------------------------------------------------------------- graph
def test_graph_nodes_show_op_and_output_type(built):
    snn, page = built["rep"].snn_graph, built["page"]
    nodes = {n.name: n for n in graph_nodes(snn)}
    dot = to_dot(snn)
    assert list(nodes) == [op.name for op in snn]
    for op in snn:
        ty = str(snn.types[op.name])
        assert nodes[op.name].kind == op.kind and nodes[op.name].type == ty
        assert nodes[op.name].label.split("\n")[1:3] == [op.kind, ty]
        assert f"%{op.name}\\n{op.kind}\\n{ty}" in dot
        assert f"<td class=\"l\">%{op.name}</td><td class=\"l\">{op.kind}</td><td class=\"l\"><code>{ty}</code>" in page
    assert any(n.type.startswith("spike[") for n in nodes.values())


def _residual_mlp_snn():
    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = (nn.Conv2d(1 if i == 0 else 4, 4, 3, padding=1) for i in range(3))
            self.fcs = nn.ModuleList(nn.Linear(256 if i == 0 else 32, 32) for i in range(5))
            self.out = nn.Linear(32, 10)

        def forward(self, x):
            x = torch.relu(self.a(x))
            x = torch.flatten(torch.relu(x + self.c(torch.relu(self.b(x)))), 1)
            for fc in self.fcs:
                x = torch.relu(fc(x))
            return self.out(x)

    return snnc.convert(Res().eval(), torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(0)), "max",
                        show_progress=False)


@pytest.mark.parametrize("which", ["template", "residual"])
def test_graph_drawing_boxes_do_not_overlap(built, which):
    graph = built["rep"].snn_graph if which == "template" else _residual_mlp_snn()
    fig = graph_figure(graph)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    boxes = [t.get_bbox_patch().get_window_extent(r) for t in fig.axes[0].texts if t.get_gid()]
    assert len(boxes) == len(graph)
    assert not [(a, b) for a, b in combinations(boxes, 2) if a.overlaps(b)]
    for leg in fig.legends:
        assert not leg.get_window_extent(r).overlaps(fig.axes[0].get_tightbbox(r).shrunk(1, 0.97))
    if which == "residual":  # 30+ levels wrap into columns, left to right
        assert len({x for x, _ in graph_layout(graph).values()}) > 1


# ---------------------------------------------------------------- page and plots
def test_legends_are_outside_the_plotting_area(built):
    for fig in (accuracy_figure(built["rep"]), trace_figure(built["rep"].trace)):
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
        assert legends
        for leg in legends:
            for ax in fig.axes:
                assert not leg.get_window_extent(r).overlaps(ax.get_window_extent(r))


def test_page_uses_the_full_width(built):
    page = built["page"]
    css = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    body = re.search(r"(?:^|\})\s*body\{([^}]*)\}", css).group(1)
    assert "max-width" not in body and "width:100%" in body
    assert not re.search(r"max-width:\s*\d+px", css)  # nothing caps the page at a fixed width
    assert re.search(r"\.plots\{display:grid;grid-template-columns:repeat\(auto-fit", css)
    assert "figure img{display:block;width:100%;height:auto}" in css
    assert "name='viewport' content='width=device-width" in page


def test_every_plot_is_inlined_saved_and_captioned(built):
    out, page = built["out"], built["page"]
    for key in ("accuracy", "rates", "raster", "trace", "scatter", "graph"):
        assert f'id="img-{key}"' in page
        assert re.search(rf'<figure id="fig-{key}"><img [^>]*><figcaption>[^<]+</figcaption></figure>', page)
        img = mpimg.imread(out.parent / f"{key}.png")
        assert img.shape[0] > 100 and img.shape[1] > 100 and img.std() > 0.01  # not blank
    assert f"on {N_EVAL} evaluation samples" in page and "95% Wilson score intervals" in page


def test_json_survives_any_title(built, tmp_path):
    rep = replace(built["rep"], title="a</script><b>&")
    page = write_report(rep, tmp_path / "r").read_text(encoding="utf-8")
    assert page.count("</script>") == 1 and _data(page)["title"] == "a</script><b>&"
    assert "<h1>snnc report: a&lt;/script&gt;&lt;b&gt;&amp;</h1>" in page


def test_only_an_earlier_report_is_replaced(built, tmp_path):
    out = built["out"].parent
    assert is_report_folder(out)
    other = tmp_path / "mine"
    other.mkdir()
    (other / "report.html").write_text("<html>my own page</html>")
    assert not is_report_folder(other)
    (tmp_path / "extra").mkdir()
    shutil.copy(out / "report.html", tmp_path / "extra" / "report.html")
    (tmp_path / "extra" / "notes.txt").write_text("keep me")
    assert not is_report_folder(tmp_path / "extra")


def test_cli_report_of_a_converted_snn(built, tmp_path):
    snn = snnc.convert(built["model"], built["calib"], "max", show_progress=False)
    save(snn, tmp_path / "snn.snnir")
    np.savez(tmp_path / "eval.npz", x=built["x"][:20].numpy(), y=built["y"][:20].numpy())
    cmd = [sys.executable, "-m", "snnc.cli", "report", str(tmp_path / "snn.snnir"), "--eval",
           str(tmp_path / "eval.npz"), "-T", "2,4", "-o", str(tmp_path / "rep")]
    for _ in range(2):  # the second run replaces the first report
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    d = _data((tmp_path / "rep" / "report.html").read_text(encoding="utf-8"))
    meta = d["meta"]
    assert meta["model_source"] == str(tmp_path / "snn.snnir") and meta["eval_source"] == str(tmp_path / "eval.npz")
    assert meta["n_eval"] == 20 and meta["n_calib"] is None and meta["converted_here"] is False
    assert meta["modes"] == ["max"] and meta["t_values"] == [2, 4] and d["ann"] is None
    s = Session(snn)
    for T in (2, 4):
        assert d["scores"]["max"][str(T)]["correct"] == int((s.predict(built["x"][:20], T) == built["y"][:20]).sum())
    assert "not used (the model was converted before the report)" in (tmp_path / "rep" / "report.html").read_text()


def test_cli_bad_eval_data_is_one_error_line(built, tmp_path):
    save(snnc.trace(built["model"], (1, 8, 8)), tmp_path / "ann.snnir")
    np.save(tmp_path / "calib.npy", built["calib"].numpy())
    np.savez(tmp_path / "eval.npz", x=built["x"][:5].numpy(), y=built["y"][:4].numpy())
    r = subprocess.run([sys.executable, "-m", "snnc.cli", "report", str(tmp_path / "ann.snnir"), "--calib",
                        str(tmp_path / "calib.npy"), "--eval", str(tmp_path / "eval.npz"), "-T", "2",
                        "-o", str(tmp_path / "rep")], capture_output=True, text=True, timeout=300)
    assert r.returncode == InputError.exit_code and "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: evaluation data {tmp_path / 'eval.npz'}: 5 inputs but labels of shape [4]"]
    assert not (tmp_path / "rep").exists()


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")), reason="chromium not installed")
def test_report_opens_in_headless_chromium(built, tmp_path):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    shot = tmp_path / "shot.png"
    r = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                        "--window-size=1600,2400", built["out"].as_uri()], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and shot.stat().st_size > 10_000
