"""snnc report: the HTML's data and plots match what the API computes."""

import html
import json
import re
import shutil
import subprocess

import matplotlib.image as mpimg
import pytest

import snnc
from snnc import datasets
from snnc.demo import accuracy, pretrained_digits_cnn
from snnc.report import collect, write_report
from snnc.runtime import Session


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    data = datasets.digits()
    model = pretrained_digits_cnn(data)
    graph = snnc.trace(model, (1, 8, 8), name="digits")
    calib, x, y = data.x_train[:128], data.x_test[:120], data.y_test[:120]
    rep = collect(graph, x, y, calib, modes=("max", "99.9%"), t_values=(4, 16), detail_batch=32)
    out = write_report(rep, tmp_path_factory.mktemp("rep") / "r")
    return out, model, calib, x, y


def _data(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="snnc-data">(.*?)</script>', page, re.S)
    return json.loads(html.unescape(m.group(1)))


def test_accuracy_series_match_the_api(report_dir):
    out, model, calib, x, y = report_dir
    d = _data(out.read_text())
    for mode in ("max", "99.9%"):
        s = Session(snnc.convert(model, calib, mode, show_progress=False))
        for T in (4, 16):
            assert d["accuracy"][mode][str(T)] == pytest.approx(accuracy(s.predict(x, T), y))
    assert 90 < d["ann_accuracy"] <= 100 and set(d["rates"]) == {"features_2_if", "features_6_if"}
    assert all(0 < r < 1 for r in d["rates"].values())


def test_every_plot_is_inlined_and_saved(report_dir):
    out, *_ = report_dir
    page = out.read_text()
    for key in ("accuracy", "rates", "raster", "scatter", "graph"):
        assert f'id="img-{key}"' in page
        img = mpimg.imread(out.parent / f"{key}.png")
        assert img.shape[0] > 100 and img.shape[1] > 100 and img.std() > 0.01  # not blank


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")), reason="chromium not installed")
def test_report_opens_in_headless_chromium(report_dir, tmp_path):
    out, *_ = report_dir
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    shot = tmp_path / "shot.png"
    r = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                        "--window-size=1200,2400", out.as_uri()], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and shot.stat().st_size > 10_000
