"""ANN-to-SNN conversion fidelity on the standard architectures (issue 19): snnc next to SpikingJelly.

    python benchmarks/conversion_zoo.py                          # all 14, real widths (long: hours on 2 cores)
    python benchmarks/conversion_zoo.py --quick                  # width 1/4, 2 blocks per stage, 8 images, T <= 64
    python benchmarks/conversion_zoo.py --arch resnet18,vgg11_bn --images 16
    python benchmarks/conversion_zoo.py --markdown benchmarks/RESULTS.md   # ... and write the table there
    python benchmarks/conversion_zoo.py --analog all --arch efficientnet_b0,regnet_y_400mf,mobilenet_v3_small
    python benchmarks/conversion_zoo.py --weights trained        # trained on digits (cached), 64 digits test images
    python benchmarks/conversion_zoo.py --weights trained --signed --snnc-modes 99.99%,max   # signed IF neurons
    python benchmarks/conversion_zoo.py --weights random-uncalibrated   # BatchNorm at its initial statistics

Each architecture of tests/zoo/ann.py (written in this repository: torchvision's CPU
wheels do not import on our torch) is built with seeded random weights and BatchNorm
statistics calibrated on smooth random images, then converted

* by `snnc.convert(model, calib, mode)` for each snnc mode (default: '99.9%' with
  snnc's defaults), run on the CPU reference runtime (constant analog input); with
  --analog OPS in the hybrid mode (`analog=OPS`: SiLU, sigmoid, ... run on decoded
  rates), and each hybrid network's analog share of the MACs is listed under the table;
* by SpikingJelly 2.0's `Converter(recipe=RateCodingRecipe(loader, mode=...))` for
  each of its modes (Max, 99.9%, 0.5) when spikingjelly is installed.

For every T in --T it prints the cosine between the SNN's output averaged over the
first T steps and the ANN's logits (mean over the test images), and the share of
images whose argmax agrees. Each network runs once, for the largest T; the smaller
T are the first steps of that run (the conversion does not depend on T). A model
snnc refuses gets a row with the refusal's one line; a SpikingJelly failure likewise.

`--weights trained` takes each architecture trained briefly on the digits data set instead
(benchmarks/zoo_trained.py: a fixed number of seeded Adam steps, the state dicts cached under
~/.cache/snnc/zoo_trained/ so that a rerun skips training): BatchNorm statistics and the
conversion are calibrated on digits training images and the test images are held-out digits
images; each architecture's training and its ANN test accuracy are listed under the table.
Its markdown section is a separate one, so the random-weight table stays.

`--weights random-uncalibrated` keeps the random weights but leaves every BatchNorm at its
initial statistics (mean 0, variance 1), as a freshly built torchvision model has them and as
issue 19's first table was measured; its section is a separate one too.

The architectures come from tests/zoo/ann.py, shared with the tests
(tests/zoo/test_ann_zoo.py) so that both see the same networks; the script puts the
repository root on sys.path to import it, as the tests do through pytest's rootdir.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import io
import os
import platform
import re
import sys
import time
from pathlib import Path

import torch

os.environ.setdefault("TQDM_DISABLE", "1")  # SpikingJelly's calibration progress bars
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import snnc  # noqa: E402
from snnc.core.errors import SnncError  # noqa: E402
from snnc.passes.analog import AnalogReport  # noqa: E402
from snnc.runtime import Session  # noqa: E402
from benchmarks import zoo_trained  # noqa: E402
from benchmarks.zoo_sensitivity import cosine  # noqa: E402
from tests.zoo.ann import ARCHITECTURES, build, images  # noqa: E402

T_VALUES = (4, 8, 16, 32, 64, 256)
SNNC_MODES = {"snnc 99.9%": "99.9%", "snnc max": "max"}
SJ_MODES = {"SJ Max": "Max", "SJ 99.9%": "99.9%", "SJ 0.5": 0.5}
HEADING = "## ANN zoo conversion fidelity (`benchmarks/conversion_zoo.py`)"
HEADING_TRAINED = "## ANN zoo conversion fidelity on trained weights (`benchmarks/conversion_zoo.py --weights trained`)"
HEADING_UNCALIBRATED = ("## ANN zoo conversion fidelity with BatchNorm at its initial statistics "
                        "(`benchmarks/conversion_zoo.py --weights random-uncalibrated`)")
DEFAULT_IMAGES = {"random": 32, "random-uncalibrated": 32, "trained": 64}

Row = "list[tuple[float, float]] | str"  # a (cosine, agreement) per T, or why there is none


def scores(outputs: torch.Tensor, logits: torch.Tensor, ts: tuple[int, ...]) -> list[tuple[float, float]]:
    """(mean cosine to the logits, argmax agreement) of the output averaged over the first T steps, per T."""
    csum = outputs.double().cumsum(0)
    res = []
    for T in ts:
        rate = csum[T - 1] / T
        cos = float(cosine(rate, logits.double()).mean())
        res.append((cos, float((rate.argmax(-1) == logits.argmax(-1)).float().mean())))
    return res


def snnc_options(args, ts: tuple[int, ...]) -> dict:
    """The options given to every `snnc.convert` call: --channelwise, --bias-correction (at the largest T),
    --signed."""
    opts = {}
    if getattr(args, "channelwise", False):
        opts["channelwise"] = True
    if getattr(args, "bias_correction", False):
        opts.update(bias_correction=True, time_steps=max(ts))
    if getattr(args, "signed", False):
        opts["signed"] = True
    return opts


def method_name(mode: str, options: dict) -> str:
    """The table's method column: 'snnc 99.9%', with ' channelwise', ' +BC(T=256)' and ' signed' when set."""
    return (f"snnc {mode}" + (" channelwise" if options.get("channelwise") else "")
            + (f" +BC(T={options['time_steps']})" if options.get("bias_correction") else "")
            + (" signed" if options.get("signed") else ""))


def snnc_row(model, calib, x, logits, mode, ts, analog: str | None = None, shares: dict | None = None,
             options: dict | None = None) -> Row:
    """snnc's row; a hybrid conversion's analog share goes into `shares[mode]`."""
    try:
        graph = snnc.convert(model, calib, mode, show_progress=False, analog=analog, **(options or {}))
        report = AnalogReport.of(graph)
        if report is not None and shares is not None:
            shares[mode] = report.summary()
        return scores(Session(graph).run(x, max(ts)), logits, ts)
    except SnncError as e:
        return f"refused: {e.message}"


def spikingjelly_row(model, calib, x, logits, mode, ts) -> Row:
    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based.ann2snn import Converter, RateCodingRecipe

    loader = [(calib[i:i + 64], torch.zeros(0)) for i in range(0, calib.shape[0], 64)]
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # its calibration's tqdm bars (they ignore TQDM_DISABLE)
            snn = Converter(recipe=RateCodingRecipe(loader, mode=mode)).convert(copy.deepcopy(model))
        snn.eval()
        functional.reset_net(snn)
        with torch.no_grad():
            outs = torch.stack([snn(x) for _ in range(max(ts))])
    except Exception as e:  # noqa: BLE001 - a third-party converter: report whatever stops it
        first = re.sub(r" at 0x[0-9a-f]+", "", str(e).splitlines()[0]) if str(e) else ""  # no memory addresses
        return f"SpikingJelly failed: {type(e).__name__}: {first[:120]}"
    return scores(outs, logits, ts)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def table(results: dict[str, dict[str, Row]], ts: tuple[int, ...]) -> list[str]:
    """Markdown: one row per architecture and method, 'cosine (agreement %)' per T."""
    lines = ["| architecture | method | " + " | ".join(f"T={T}" for T in ts) + " |",
             "|---|---|" + "---:|" * len(ts)]
    for arch, rows in results.items():
        for method, row in rows.items():
            if isinstance(row, str):
                lines.append(f"| {arch} | {method} | {row.replace('|', '/')} |" + " |" * (len(ts) - 1))
            else:
                lines.append(f"| {arch} | {method} | " + " | ".join(f"{c:.4f} ({100 * a:.0f}%)" for c, a in row) + " |")
    return lines


def summary(results: dict[str, dict[str, Row]], ts: tuple[int, ...], target: float = 0.995) -> list[str]:
    """Per architecture, issue 19's checks on snnc's best mode at each T: the cosine at the largest T against
    `target`, whether it grows at every step of T, and whether it beats SpikingJelly's best mode at T <= 16."""
    out = []
    for arch, rows in results.items():
        best = {}
        for side in ("snnc", "SJ"):
            got = [r for m, r in rows.items() if m.startswith(side) and not isinstance(r, str)]
            best[side] = [max(r[i][0] for r in got) if got else None for i in range(len(ts))]
        if best["snnc"][0] is None:
            continue
        s = best["snnc"]
        drops = [f"{ts[i]}->{ts[i + 1]}" for i in range(len(ts) - 1) if s[i + 1] <= s[i]]
        line = (f"- {arch}: best snnc cosine {s[-1]:.4f} at T={ts[-1]} ({'>=' if s[-1] >= target else '<'} {target}); "
                + ("grows at every step of T" if not drops else f"does not grow at T {', '.join(drops)}"))
        low = [T for T in ts if T <= 16]
        if best["SJ"][0] is None:
            failed = [r for m, r in rows.items() if m.startswith("SJ") and isinstance(r, str)]
            line += "; no SpikingJelly row to compare" + (f" ({failed[0]})" if failed else "")
        elif low:
            ahead = [T for i, T in enumerate(ts) if T <= 16 and s[i] > best["SJ"][i]]
            line += (f"; ahead of SpikingJelly's best mode at T = {', '.join(map(str, ahead)) or 'none'}"
                     f" of {', '.join(map(str, low))}")
        out.append(line)
    return out


def training_lines(trained: dict[str, "zoo_trained.Trained"], n_test: int) -> list[str]:
    """One line per trained architecture: its recipe, how long it trained and its ANN test accuracy."""
    return [f"- {arch}: {t.recipe.describe()}, {t.train_seconds:.0f} s"
            f"{' (when it was trained; loaded from the cache now)' if t.cached else ''}; "
            f"ANN test accuracy {100 * t.test_accuracy:.1f}% on the {n_test} digits test images"
            for arch, t in trained.items()]


def training(trained: dict, digits) -> list[str]:
    """The section's list of trained architectures (empty for random weights)."""
    if not trained:
        return []
    return ["", "Trained weights (benchmarks/zoo_trained.py; training seconds on the machine that trained them):",
            *training_lines(trained, digits.x_test.shape[0])]


def write_markdown(path: Path, section: list[str]) -> None:
    """Replace the section of `path` that starts with `section`'s first line, the heading (or append it)."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    block = "\n".join(section) + "\n"
    pattern = re.compile(r"^" + re.escape(section[0]) + r"$.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: block + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


def heading(args) -> str:
    """The heading of this run's RESULTS.md section (by weights and neuron kind)."""
    text = {"trained": HEADING_TRAINED, "random-uncalibrated": HEADING_UNCALIBRATED}.get(args.weights, HEADING)
    return text.replace("`)", " --signed`): signed IF neurons") if getattr(args, "signed", False) else text


def architectures_in_section(path: Path, head: str) -> list[str]:
    """The architectures whose rows the section of `path` headed `head` holds (none when there is no such section)."""
    if not path.exists():
        return []
    m = re.search(r"^" + re.escape(head) + r"$(.*?)(?=^## |\Z)", path.read_text(), re.S | re.M)
    if m is None:
        return []
    names = [line.split("|")[1].strip() for line in m.group(1).splitlines() if line.startswith("| ")]
    return list(dict.fromkeys(n for n in names if n in ARCHITECTURES))


def section(args, argv, results, ts, start: float, load0: float, done: bool) -> list[str]:
    """This script's RESULTS.md section: the machine, the settings and the table."""
    elapsed = time.perf_counter() - start
    command = " ".join(argv if argv is not None else sys.argv[1:])
    trained = args.weights == "trained"
    data = (f"weights trained on the digits data set (8x8 grey images upsampled to 32x32, 3 equal channels, "
            f"normalized; benchmarks/zoo_trained.py, recipes and test accuracies below), BatchNorm statistics "
            f"recalibrated on all the digits training images, the conversion calibrated on "
            f"{args.calib} of them, {args.images} held-out digits test images"
            if trained else
            f"random weights (seed 0), BatchNorm statistics and conversion calibrated on {args.calib} smooth "
            f"random images, {args.images} test images"
            if args.weights == "random" else
            f"random weights (seed 0), every BatchNorm at its initial statistics (mean 0, variance 1), the "
            f"conversion calibrated on {args.calib} smooth random images, {args.images} test images")
    return [heading(args), "",
            f"Machine: {cpu_model()}, {os.cpu_count()} cores, shared (load average {load0:.1f} at the start, "
            f"{os.getloadavg()[0]:.1f} at the end); Python {platform.python_version()}, torch {torch.__version__} "
            f"with {torch.get_num_threads()} threads. Run on {datetime.date.today().isoformat()} with "
            f"`python benchmarks/conversion_zoo.py {command}` ({elapsed:.0f} s"
            f"{'' if done else f'; stopped early: {len(results)} architectures done'}).",
            "",
            f"Width {args.width:g} of the real channels, "
            f"{'every block' if args.blocks is None else f'at most {args.blocks} blocks per stage'}, {data} "
            "(3x32x32). Each cell: cosine between the SNN output averaged over "
            "T steps and the ANN logits (mean over images), and in brackets the share of images whose argmax "
            "agrees with the ANN's. snnc: `snnc.convert(model, calib, mode)` with its defaults (V starts at half "
            "the threshold)" + (f" and {', '.join(f'{k}={v}' for k, v in snnc_options(args, ts).items())}"
                                if snnc_options(args, ts) else "")
            + ", CPU reference runtime; SJ: SpikingJelly 2.0 `RateCodingRecipe(mode=...)`.", "",
            *table(results, ts)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", help=f"comma list (default: all): {', '.join(ARCHITECTURES)}")
    ap.add_argument("--width", type=float, default=1.0, help="channel multiplier (1.0: the real networks)")
    ap.add_argument("--blocks", type=int, default=None, help="at most this many blocks per stage (default: all)")
    ap.add_argument("--weights", choices=("random", "trained", "random-uncalibrated"), default="random",
                    help="random (seeded) weights, or each architecture trained briefly on the digits data set "
                         "(cached under ~/.cache/snnc/zoo_trained/; benchmarks/zoo_trained.py), or random "
                         "weights with every BatchNorm left at its initial statistics")
    ap.add_argument("--train-steps", type=int, default=None,
                    help="--weights trained: Adam steps for every architecture (default: zoo_trained.STEPS, "
                         f"else {zoo_trained.DEFAULT_STEPS})")
    ap.add_argument("--train-batch", type=int, default=zoo_trained.DEFAULT_BATCH, help="--weights trained: batch")
    ap.add_argument("--images", type=int, default=None,
                    help=f"test images (default: {DEFAULT_IMAGES['random']} random, or the first "
                         f"{DEFAULT_IMAGES['trained']} digits test images with --weights trained)")
    ap.add_argument("--calib", type=int, default=256, help="calibration images (BatchNorm and conversion)")
    ap.add_argument("--T", type=int, nargs="+", default=list(T_VALUES), help="time steps to report")
    ap.add_argument("--snnc-modes", default=",".join(SNNC_MODES.values()), help="snnc normalization modes")
    ap.add_argument("--sj-modes", default="Max,99.9%,0.5", help="SpikingJelly modes ('' for none)")
    ap.add_argument("--no-spikingjelly", action="store_true", help="skip SpikingJelly even when installed")
    ap.add_argument("--quick", action="store_true", help="width 1/4, 2 blocks per stage, 8 images, T <= 64")
    ap.add_argument("--markdown", type=Path, help="write the table into this file (replacing its earlier section)")
    ap.add_argument("--channelwise", action="store_true", help="snnc: one scale per channel (channelwise=True)")
    ap.add_argument("--signed", action="store_true", help="snnc: signed IF neurons (signed=True); the markdown "
                                                          "section is a separate one")
    ap.add_argument("--bias-correction", action="store_true",
                    help="snnc: bias_correction=True tuned for the largest --T (time_steps=max(T)); it simulates "
                         "the --calib images for T steps twice per ReLU (long at T=256)")
    ap.add_argument("--analog", default=None, help="snnc's hybrid mode: op kinds run on decoded rates "
                                                   "(e.g. silu,sigmoid,hardswish,hardsigmoid, or all)")
    args = ap.parse_args(argv)
    if args.images is None:
        args.images = DEFAULT_IMAGES[args.weights]
    if args.quick:
        args.width, args.blocks, args.images, args.calib = 0.25, 2, 8, 64
        args.T = [T for T in args.T if T <= 64]
    names = args.arch.split(",") if args.arch else list(ARCHITECTURES)
    unknown = [n for n in names if n not in ARCHITECTURES]
    if unknown:
        ap.error(f"unknown architecture {', '.join(unknown)}; known: {', '.join(ARCHITECTURES)}")
    if args.markdown:  # the run replaces its whole section: refuse to drop the rows of architectures it skips
        lost = [n for n in architectures_in_section(args.markdown, heading(args)) if n not in names]
        if lost:
            ap.error(f"--markdown {args.markdown} would drop the rows of {', '.join(lost)} from its section "
                     f"{heading(args)!r}: add them to --arch, or write this run to another file")
    ts = tuple(sorted(set(args.T)))
    sj_modes = [] if args.no_spikingjelly else [float(m) if m[0].isdigit() and not m.endswith("%") else m
                                                for m in args.sj_modes.split(",") if m]
    try:
        import spikingjelly.activation_based.ann2snn  # noqa: F401
    except ImportError as e:
        sj_modes, sj_note = [], f"spikingjelly does not import ({e}): no SpikingJelly rows"
    else:
        sj_note = ""

    start = time.perf_counter()
    load0 = os.getloadavg()[0]
    digits = zoo_trained.digits32() if args.weights == "trained" else None
    if digits is not None:
        calib, x = digits.x_train[:args.calib], digits.x_test[:args.images]
    else:
        calib, x = images(args.calib, seed=101), images(args.images, seed=202)
    results: dict[str, dict[str, Row]] = {}
    trained: dict[str, zoo_trained.Trained] = {}
    analog_shares: list[str] = []
    for name in names:
        t0 = time.perf_counter()
        if digits is not None:
            r = zoo_trained.recipe(name, args.train_steps, args.train_batch, width=args.width, blocks=args.blocks)
            trained[name] = zoo_trained.load_or_train(r, digits)
            model = trained[name].model
            print(f"{name}: " + training_lines({name: trained[name]}, digits.x_test.shape[0])[0][len(name) + 4:],
                  flush=True)
            t0 = time.perf_counter()
        else:
            bn_images = 0 if args.weights == "random-uncalibrated" else args.calib  # 0: the initial statistics
            model = build(name, width=args.width, blocks=args.blocks, calib_images=bn_images)
        with torch.no_grad():
            logits = model(x)
        rows: dict[str, Row] = {}
        shares: dict[str, str] = {}
        options = snnc_options(args, ts)
        for mode in args.snnc_modes.split(","):
            rows[method_name(mode, options)] = snnc_row(model, calib, x, logits, mode, ts, args.analog, shares,
                                                       options)
        analog_shares += [f"- {name}, snnc {mode}: {text}" for mode, text in shares.items()]
        for mode in sj_modes:
            rows[f"SJ {mode}"] = spikingjelly_row(model, calib, x, logits, mode, ts)
        results[name] = rows
        print("\n".join(table({name: rows}, ts)[2:]) + f"   ({time.perf_counter() - t0:.0f} s)", flush=True)
        if args.markdown and name != names[-1]:  # a long run leaves its table so far
            write_markdown(args.markdown, [*section(args, argv, results, ts, start, load0, done=False), "",
                                           *summary(results, ts), *training(trained, digits)])

    lines = section(args, argv, results, ts, start, load0, done=True)
    if sj_note:
        lines += ["", f"({sj_note})"]
    sm = summary(results, ts)
    if sm:
        lines += ["", *sm]
    lines += training(trained, digits)
    if analog_shares:
        lines += ["", f"Hybrid mode (`--analog {args.analog}`):", *analog_shares]
        print("\n".join(analog_shares))
    print("\n".join(sm or [sj_note or "(no architecture has both an snnc and a SpikingJelly row)"]))
    if args.markdown:
        write_markdown(args.markdown, lines)
        print(f"wrote the table into {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
