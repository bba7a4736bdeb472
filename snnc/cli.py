"""The `snnc` command line."""

from __future__ import annotations

import json
import re
import sys
import traceback
from pathlib import Path
from typing import Optional

import typer

from snnc.errors import InputError, SnncError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="snnc: compile spiking neural networks.\n\nExample: snnc compile model.snnir --calib digits "
                       "-T 32 -o out/cpu")
_state = {"verbose": 0, "quiet": False}
MODEL_HELP = "Model file (.snnir, .pt2, .onnx, .nir, NetX .net), an artifact folder, or package.module:attribute."


@app.callback()
def _main(verbose: int = typer.Option(0, "-v", "--verbose", count=True, help="More output; -v shows tracebacks."),
          quiet: bool = typer.Option(False, "-q", "--quiet", help="Only errors.")) -> None:
    _state["verbose"], _state["quiet"] = verbose, quiet


def _say(msg: str) -> None:
    if not _state["quiet"]:
        typer.echo(msg)


def parse_input_shape(spec: str) -> tuple[str | None, tuple[int, ...]]:
    """'x:[1,1,8,8]' or '[1,1,8,8]' -> (name, per-sample shape); the leading batch dim is dropped."""
    m = re.fullmatch(r"\s*(?:([A-Za-z_][\w.]*)\s*:)?\s*\[?\s*([0-9,\s]+?)\s*\]?\s*", spec)
    if not m:
        raise InputError(f"cannot parse input shape {spec!r}", hint="write it as x:[1,1,8,8] (batch first)")
    dims = tuple(int(d) for d in m.group(2).split(",") if d.strip())
    if len(dims) < 2:
        raise InputError(f"input shape {spec!r} needs a batch dim and at least one feature dim")
    return m.group(1), dims[1:]


def load_array(spec: str, what: str):
    """A .npy/.npz file (or a folder of them), or 'digits' for the bundled data set."""
    import numpy as np

    if spec == "digits":
        from snnc import datasets

        return datasets.digits().x_train[:512].numpy()
    p = Path(spec)
    if p.is_dir():
        parts = [load_array(str(f), what) for f in sorted(p.iterdir()) if f.suffix in (".npy", ".npz")]
        if not parts:
            raise InputError(f"{what} folder {p} has no .npy/.npz files")
        return np.concatenate(parts)
    if not p.is_file():
        raise InputError(f"{what} file {p} does not exist", hint="give a .npy/.npz file, a folder of them, or 'digits'")
    try:
        data = np.load(p, allow_pickle=False)
    except Exception as e:  # noqa: BLE001
        raise InputError(f"cannot read {what} file {p}: {e}") from None
    if hasattr(data, "files"):
        keys = list(data.files)
        if not keys:
            raise InputError(f"{what} file {p} is empty")
        key = next((k for k in ("x", "inputs", "data") if k in keys), keys[0])
        return data[key]
    return data


def _is_snn(graph) -> bool:
    from snnc.ir import ops

    return any(isinstance(op, ops.NeuronOp) for op in graph)


def _load_graph(model: str, input_shape: Optional[str], weights: Optional[str], trust_pickle: bool = False):
    from snnc.frontends.loader import load_model

    shape = parse_input_shape(input_shape)[1] if input_shape else None
    return load_model(model, input_shape=shape, weights=weights, trust_pickle=trust_pickle)


@app.command()
def convert(model: str = typer.Argument(..., help=MODEL_HELP),
            calib: str = typer.Option(..., "--calib", help="Calibration data: .npy/.npz, a folder of them, or 'digits'."),
            mode: str = typer.Option("99.9%", "--mode", help="Normalization: max, P% (e.g. 99.9%), mse, or a float in (0,1]."),
            output: Path = typer.Option(..., "-o", "--output", help="Output .snnir file."),
            input_shape: Optional[str] = typer.Option(None, "--input-shape", help="e.g. x:[1,1,8,8] (batch first)."),
            weights: Optional[str] = typer.Option(None, "--weights", help="state_dict file for a Python model spec."),
            trust_pickle: bool = typer.Option(False, "--trust-pickle", help="Allow unpickling a whole-model torch.save "
                                              "file (runs any code in it: only files you made)."),
            channelwise: bool = typer.Option(False, "--channelwise", help="One scale per channel instead of per layer."),
            v_init: float = typer.Option(0.5, "--v-init", help="Initial membrane potential / threshold, in [0, 1)."),
            time_steps: Optional[int] = typer.Option(None, "-T", "--time-steps", help="The T that --mode mse and --bias-correction tune for."),
            bias_correction: bool = typer.Option(False, "--bias-correction", help="Correct biases by the mean rate-code error at T.")):
    """Convert a ReLU ANN into an SNN and save it as .snnir.

    Example: snnc convert out/demo/digits_ann.snnir --calib digits --mode 99.9% -o digits_snn.snnir
    """
    import snnc
    from snnc.ir import save

    graph = _load_graph(model, input_shape, weights, trust_pickle)
    snn = snnc.convert(graph, load_array(calib, "calibration"), mode, channelwise=channelwise, v_init=v_init,
                       time_steps=time_steps, bias_correction=bias_correction)
    save(snn, output)
    _say(f"wrote {output}")


def parse_options(pairs: list[str]) -> dict[str, str]:
    """['batch_size=32', 'dtype=f16'] -> {'batch_size': '32', 'dtype': 'f16'}."""
    out = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"backend option {item!r} is not key=value", hint="e.g. -O batch_size=32")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def backend_options(target: str, given: dict[str, object]):
    """The target's Options model from CLI values; unknown keys list the target's options."""
    from pydantic import ValidationError

    from snnc import backends

    fields = backends.get(target).Options.model_fields
    unknown = sorted(set(given) - set(fields))
    if unknown:
        raise InputError(f"target {target!r} has no option {', '.join(unknown)}",
                         hint=f"its options: {', '.join(fields) or 'none'}")
    try:
        return backends.get(target).Options(**given)
    except ValidationError as e:
        raise InputError(f"bad option for target {target!r}: {e.errors()[0]['loc'][0]}: {e.errors()[0]['msg']}") from None


@app.command()
def compile(model: str = typer.Argument(..., help=MODEL_HELP),
            target: str = typer.Option("cpu", "--target", help="Backend: cpu, triton, lynxi, lava, nir (see snnc targets)."),
            output: Path = typer.Option(..., "-o", "--output", help="Output artifact folder (written atomically)."),
            calib: Optional[str] = typer.Option(None, "--calib", help="Calibration data (converts an ANN first): "
                                                ".npy/.npz, a folder of them, or 'digits'."),
            mode: str = typer.Option("99.9%", "--mode", help="Normalization: max, P%, mse, or a float in (0,1]."),
            channelwise: bool = typer.Option(False, "--channelwise", help="Conversion: one scale per channel."),
            v_init: float = typer.Option(0.5, "--v-init", help="Conversion: initial potential / threshold, in [0, 1)."),
            bias_correction: bool = typer.Option(False, "--bias-correction", help="Conversion: correct biases at -T."),
            time_steps: Optional[int] = typer.Option(None, "-T", "--time-steps", help="Number of time steps."),
            batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Static batch size (lynxi)."),
            dtype: Optional[str] = typer.Option(None, "--dtype", help="Artifact dtype where the target has one: f32, f16."),
            option: list[str] = typer.Option([], "-O", "--option", help="Backend option key=value (repeatable); "
                                             "see docs/<target>.md."),
            input_shape: Optional[str] = typer.Option(None, "--input-shape", help="e.g. x:[1,1,8,8] (batch first)."),
            weights: Optional[str] = typer.Option(None, "--weights", help="state_dict for a Python model spec."),
            trust_pickle: bool = typer.Option(False, "--trust-pickle", help="Allow unpickling a whole-model torch.save "
                                              "file (runs any code in it: only files you made)."),
            passes: Optional[str] = typer.Option(None, "--passes", help="Comma-separated passes instead of the target's pipeline."),
            print_after: Optional[str] = typer.Option(None, "--print-after", help="Print the IR after these passes (comma-separated, or 'all')."),
            verify_each: bool = typer.Option(False, "--verify-each", help="Run the verifier after every pass."),
            dump_dir: Optional[Path] = typer.Option(None, "--dump-dir", help="Write the IR after every pass here."),
            as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary.")):
    """Compile a model for a target and write the artifact folder.

    Examples:
      snnc compile out/demo/digits_ann.snnir --calib digits -T 32 -o out/digits_cpu
      snnc compile out/demo/digits_ann.snnir --calib digits --target lynxi -T 8 --batch-size 16 -o out/digits_lynxi
    """
    import snnc
    from snnc.passes import PIPELINES, PassManager, parse_pipeline

    if time_steps is not None and time_steps <= 0:
        raise InputError(f"-T must be positive, got {time_steps}")
    given: dict[str, object] = parse_options(option)
    for key, value in (("time_steps", time_steps), ("batch_size", batch_size), ("dtype", dtype)):
        if value is not None:
            given[key] = value
    from snnc import backends

    fields = backends.get(target).Options.model_fields
    if time_steps is not None and "time_steps" not in fields:
        given.pop("time_steps")  # -T then only tunes the conversion
    opts = backend_options(target, given)
    graph = _load_graph(model, input_shape, weights, trust_pickle)
    if not _is_snn(graph):
        if calib is None:
            raise InputError(f"{model} is an ANN (it has no spiking neurons): give --calib to convert it",
                             hint="e.g. --calib digits, or --calib calib.npy")
        data = load_array(calib, "calibration")
        if target == "lava":  # Loihi resets to 0: calibrate thresholds for that, with a spiking readout
            from snnc.backends.lava.convert import convert as lava_convert

            graph = lava_convert(graph, data, mode, T=time_steps or 32)
        else:
            graph = snnc.convert(graph, data, mode, channelwise=channelwise, v_init=v_init,
                                 time_steps=time_steps, bias_correction=bias_correction)
    pm = PassManager(parse_pipeline(passes if passes is not None else PIPELINES.get(target, "")),
                     verify_each=verify_each, print_after=set((print_after or "").split(",")) - {""},
                     printer=typer.echo, dump_dir=dump_dir)
    graph = pm.run(graph)
    artifact = backends.get(target).lower(graph, opts, output)
    if _state["verbose"]:
        typer.echo(pm.report())
    if as_json:
        typer.echo(json.dumps({"artifact": str(artifact.path), "target": artifact.target,
                               "format_version": artifact.manifest.get("format_version"),
                               "inputs": artifact.manifest.get("inputs"), "outputs": artifact.manifest.get("outputs"),
                               "files": sorted(p.name for p in artifact.path.iterdir()),
                               "passes": [n for n, _ in pm.timings],
                               "pass_ms": [round(t * 1000, 3) for _, t in pm.timings]}, indent=2))
    else:
        _say(f"wrote {artifact.path} (target {target})")


@app.command()
def run(artifact: Path = typer.Argument(..., help="Artifact folder (or .snnir file)."),
        inputs: Path = typer.Option(..., "-i", "--inputs", help=".npz (one array per input name) or .npy."),
        output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write outputs to this .npz."),
        time_steps: Optional[int] = typer.Option(None, "-T", "--time-steps", help="Time steps (default: the artifact's)."),
        stats: bool = typer.Option(False, "--stats", help="Print firing rates, spikes per step, SOPs vs ANN MACs "
                                   "and an energy estimate."),
        encoder: str = typer.Option("constant", "--encoder", help="Input encoding: constant, poisson, latency, periodic."),
        seed: int = typer.Option(0, "--seed", help="Seed of the poisson encoder."),
        print_time: bool = typer.Option(False, "--print-time", help="Print the wall time of the run."),
        max_memory: Optional[str] = typer.Option(None, "--max-memory", help="Memory the run may use (e.g. 2G); "
                                                 "a larger estimate runs in smaller time windows or fails early."),
        eager_exact: bool = typer.Option(False, "--eager-exact", help="Dense NCHW convolutions: every value "
                                         "bit-identical to eager PyTorch (slower; the default runs convs in "
                                         "channels_last and convs on spikes event-driven).")):
    """Run a compiled artifact on inputs and save the output sequences [T, N, *].

    Example: snnc run out/digits_cpu -i out/demo/test_inputs.npz -o outputs.npz -T 32 --stats
    """
    import numpy as np
    import torch

    from snnc.backends.artifact import Artifact
    from snnc.fileio import atomic_path

    art = Artifact.open(artifact)
    exact = {"channels_last": False, "event_conv": False} if eager_exact and art.target != "lava" else {}
    session = art.session(**exact)
    data = np.load(inputs, allow_pickle=False) if inputs.is_file() else None
    if data is None:
        raise InputError(f"inputs file {inputs} does not exist")
    from snnc.runtime.loihi import LoihiSession

    if isinstance(session, LoihiSession):  # a lava artifact: the bit-exact Loihi emulation
        if stats or encoder != "constant":
            raise InputError("--stats and --encoder are not available for lava artifacts (Loihi emulation)")
        x = data[data.files[0]] if hasattr(data, "files") else data
        T = time_steps or (art.manifest.get("time_steps") if artifact.is_dir() else None)
        out = {"out": session.run(torch.from_numpy(x), T)}
        _write_outputs(out, output)
        return
    T = time_steps or (session.artifact.manifest.get("time_steps") if session.artifact else None)
    if hasattr(data, "files"):
        feeds = {k: torch.from_numpy(data[k]) for k in data.files}
        if len(session.input_names) == 1 and session.input_names[0] not in feeds and len(feeds) == 1:
            feeds = {session.input_names[0]: next(iter(feeds.values()))}
    else:
        feeds = {session.input_names[0]: torch.from_numpy(data)}
    import time

    if max_memory is not None:
        from snnc.limits import parse_bytes

        try:
            session.max_memory = parse_bytes(max_memory)
        except ValueError:
            raise InputError(f"--max-memory: not a size: {max_memory!r}", hint="e.g. 512M or 2G") from None
    start = time.perf_counter()
    result = session.execute(feeds, T, encoder=encoder, seed=seed, stats=stats)
    if print_time:
        typer.echo(f"run: {(time.perf_counter() - start) * 1000:.1f} ms")
    _write_outputs(result.outputs, output)
    if result.stats is not None:
        typer.echo(result.stats.table())
        if result.memory is not None:
            typer.echo(result.memory.line())


def _write_outputs(out: dict, output: Optional[Path]) -> None:
    import numpy as np

    from snnc.fileio import atomic_path

    if output is not None:
        with atomic_path(output) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **{k: v.numpy() for k, v in out.items()})
        _say(f"wrote {output}")
    for k, v in out.items():
        _say(f"{k}: shape {list(v.shape)}, mean over T argmax (first 10): {v.float().mean(0).argmax(-1)[:10].tolist()}")


@app.command()
def bench(artifact: Path = typer.Argument(..., help="Artifact folder (or .snnir file)."),
          time_steps: int = typer.Option(32, "-T", "--time-steps", help="Time steps per run."),
          batch: int = typer.Option(64, "--batch", help="Samples per run (random inputs of the declared shape)."),
          repeat: int = typer.Option(5, "--repeat", help="Timed runs (after one warm-up); the median is reported."),
          as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON.")):
    """Measure the throughput of an artifact on this machine (median of --repeat runs).

    Example: snnc bench out/digits_cpu -T 32 --batch 256
    """
    import statistics
    import time

    import torch

    import snnc

    if time_steps <= 0 or batch <= 0 or repeat <= 0:
        raise InputError("-T, --batch and --repeat must be positive")
    session = snnc.load(artifact)
    graph = session.graph if hasattr(session, "graph") else None
    feats = graph.inputs[0].type.features if graph is not None else session.network.layers[0].shape
    x = torch.rand(batch, *feats, generator=torch.Generator().manual_seed(0))
    session.run(x, time_steps)  # warm-up: plans, native kernels, caches
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        session.run(x, time_steps)
        times.append(time.perf_counter() - start)
    med = statistics.median(times)
    figures = {"artifact": str(artifact), "T": time_steps, "batch": batch, "median_s": med,
               "samples_per_s": batch / med, "runs": repeat}
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
    else:
        typer.echo(f"{artifact}: T={time_steps}, batch {batch}: median {med * 1000:.1f} ms per run, "
                   f"{batch / med:.1f} samples/s ({repeat} runs)")


@app.command()
def inspect(path: Path = typer.Argument(..., help="A model file or an artifact folder."),
            table: bool = typer.Option(True, "--table/--no-table", help="Also print the per-op table.")):
    """Print the IR of a model file or artifact, then a per-op table: output shape, parameters,
    activation memory per sample, and MACs per sample (per time step for an SNN).

    Example: snnc inspect out/demo/digits_snn.snnir
    """
    from snnc.backends.artifact import Artifact
    from snnc.frontends.loader import load_model

    graph = Artifact.open(path).graph() if path.is_dir() else load_model(path)
    typer.echo(str(graph), nl=False)
    if table:
        typer.echo(op_table(graph))


def op_table(graph) -> str:
    """A fixed-width table of every op: kind, output type, parameter count, bytes and MACs per sample."""
    import math

    from snnc.runtime.stats import synaptic_ops

    types = graph.types
    macs = {k: v.macs for k, v in synaptic_ops(graph).items()}
    rows = [("op", "kind", "output", "params", "act. bytes", "MACs")]
    total_p = total_b = total_m = 0
    for op in graph:
        n_params = sum(graph.params[p].numel() for p in op.param_refs().values())
        t = types[op.name]
        nbytes = math.prod(t.features) * 4
        m = macs.get(op.name, 0)
        total_p, total_b, total_m = total_p + n_params, total_b + nbytes, total_m + m
        rows.append((f"%{op.name}", op.kind, str(t), str(n_params), str(nbytes), str(m)))
    rows.append(("total", "", "", str(total_p), str(total_b), str(total_m)))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    return "\n".join(["", *lines])


@app.command("passes")
def list_passes():
    """List the registered passes and the named pipelines."""
    from snnc.passes import PASSES, PIPELINES

    for name, info in sorted(PASSES.items()):
        typer.echo(f"{name:20s} {info.doc}")
    typer.echo("")
    for target, spec in PIPELINES.items():
        typer.echo(f"pipeline {target}: {spec}")


def load_labelled(spec: str):
    """(x, y) from 'digits' (the test split) or an .npz with arrays x/inputs and y/labels."""
    import numpy as np
    import torch

    if spec == "digits":
        from snnc import datasets

        d = datasets.digits()
        return d.x_test, d.y_test
    p = Path(spec)
    try:
        data = np.load(p, allow_pickle=False)
        keys = set(data.files)
    except Exception as e:  # noqa: BLE001
        raise InputError(f"cannot read evaluation file {p}: {e}", hint="an .npz with arrays 'x' and 'y'") from None
    xk = next((k for k in ("x", "inputs", "data") if k in keys), None)
    yk = next((k for k in ("y", "labels", "targets") if k in keys), None)
    if xk is None or yk is None:
        raise InputError(f"evaluation file {p} needs arrays 'x' and 'y' (has {sorted(keys)})")
    return torch.from_numpy(data[xk]).float(), torch.from_numpy(data[yk]).long()


@app.command()
def report(model: str = typer.Argument(..., help="An ANN (.snnir or module:attr) or a converted SNN / artifact."),
           calib: Optional[str] = typer.Option(None, "--calib", help="Calibration data (needed for an ANN)."),
           eval_data: str = typer.Option("digits", "--eval", help="Labelled data: .npz with x and y, or 'digits'."),
           output: Path = typer.Option(Path("report"), "-o", "--output", help="Output folder (report.html + PNGs)."),
           time_steps: str = typer.Option("4,8,16,32,64", "-T", "--time-steps", help="Comma-separated T values."),
           input_shape: Optional[str] = typer.Option(None, "--input-shape", help="e.g. x:[1,1,8,8] (batch first).")):
    """Write an HTML report: accuracy vs T per mode, firing rates, raster, traces, scatter, graph.

    Example: snnc report out/demo/digits_ann.snnir --calib digits --eval digits -o out/report
    """
    from snnc.backends.artifact import Artifact
    from snnc.report import collect, write_report

    path = Path(model)
    graph = Artifact.open(path).graph() if path.is_dir() else _load_graph(model, input_shape, None)
    x, y = load_labelled(eval_data)
    try:
        ts = tuple(int(t) for t in time_steps.split(",") if t.strip())
    except ValueError:
        raise InputError(f"-T must be a comma-separated list of positive ints, got {time_steps!r}") from None
    if not ts or min(ts) <= 0:
        raise InputError(f"-T must be a comma-separated list of positive ints, got {time_steps!r}")
    if not _is_snn(graph) and calib is None:
        raise InputError(f"{model} is an ANN: give --calib to convert it for the report")
    data = collect(graph, x, y, load_array(calib, "calibration") if calib else None, t_values=ts)
    out = write_report(data, output)
    _say(f"wrote {out}")


@app.command()
def targets():
    """List the compilation targets and whether each can be used on this machine."""
    from snnc.backends import TARGETS, available

    have = available()
    for t in TARGETS:
        typer.echo(f"{t:8s} {'available' if t in have else 'not built yet'}")


@app.command()
def demo(out: Optional[Path] = typer.Option(None, "--out", help="Also write the models and data here."),
         loihi: bool = typer.Option(True, "--loihi/--no-loihi", help="Also evaluate the Loihi emulation (~1 min).")):
    """Train (cached) a CNN on the digits data set, convert it, and print accuracy vs T."""
    from snnc.demo import run_demo

    run_demo(out, loihi=loihi)


def main() -> None:
    """Entry point: snnc errors print one line (`error: ...`, then a hint) and exit with their family's code."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        if not _state["quiet"]:
            typer.echo(f"warning: {message}", err=True)

    warnings.showwarning = show
    try:
        app()  # standalone: usage errors exit 2 with click's message
    except SnncError as e:
        if _state["verbose"]:
            traceback.print_exc()
        typer.echo(f"error: {e.message}", err=True)
        if e.hint:
            typer.echo(f"hint: {e.hint}", err=True)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
