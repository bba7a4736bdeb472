"""The `snnc` command line."""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Optional

import typer

from snnc.cli_args import (backend_options, fresh_dump_dir, input_feeds, is_snn, load_array, load_graph,
                           load_labelled, parse_options, parse_time_list, run_device)
from snnc.cli_options import (ANALOG_HELP, CLI_FLAGS, SIGNED_HELP, DtOption, InputScaleOption, InputShapeOption,
                              ModelArgument, TrustPickleOption, WeightsOption)
from snnc.core import spelling
from snnc.core.errors import InputError, SnncError

# Plain (click) help: flags show no value placeholder; rich help would print `--json <bool>`, `-v <int>`.
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="snnc: compile spiking neural networks.\n\nExample: snnc compile model.snnir --calib digits "
                       "-T 32 -o out/cpu")
_state = {"verbose": 0, "quiet": False}


def _version(value: bool) -> None:
    if value:
        from snnc.core import __version__

        typer.echo(f"snnc {__version__}")
        raise typer.Exit()


@app.callback()
def _main(ctx: typer.Context,
          verbose: int = typer.Option(0, "-v", "--verbose", count=True, metavar="", show_default=False,
                                      help="More output; -v shows tracebacks and per-pass timings."),
          quiet: bool = typer.Option(False, "-q", "--quiet", help="Only errors."),
          version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                       help="Print the snnc version and exit.")) -> None:
    _state["verbose"], _state["quiet"] = verbose, quiet
    ctx.with_resource(spelling.command_line(CLI_FLAGS))  # hints name flags while the command runs


def _say(msg: str) -> None:
    if not _state["quiet"]:
        typer.echo(msg)


def _say_analog(graph) -> None:
    """The analog share of a hybrid conversion (graph.meta['analog']), when it left analog ops."""
    from snnc.passes.analog import AnalogReport

    report = AnalogReport.of(graph)
    if report is not None:
        _say(report.summary())


@app.command()
def convert(model: ModelArgument,
            calib: str = typer.Option(..., "--calib", help="Calibration data: .npy/.npz/.pt, a folder of them, "
                                                                 "or 'digits'."),
            mode: str = typer.Option("99.9%", "--mode", help="Normalization: max, P% (e.g. 99.9%), mse, or a float in (0,1]."),
            output: Path = typer.Option(..., "-o", "--output", help="Output .snnir file."),
            input_shape: InputShapeOption = None,
            weights: WeightsOption = None,
            trust_pickle: TrustPickleOption = False,
            dt: DtOption = None,
            input_scale: InputScaleOption = None,
            channelwise: bool = typer.Option(False, "--channelwise", help="One scale per channel instead of per layer."),
            v_init: float = typer.Option(0.5, "--v-init", help="Initial membrane potential / threshold, in [0, 1)."),
            time_steps: Optional[int] = typer.Option(None, "-T", "--time-steps", help="The T that --mode mse and --bias-correction tune for."),
            bias_correction: bool = typer.Option(False, "--bias-correction", help="Correct biases by the mean rate-code error at T."),
            signed: bool = typer.Option(False, "--signed", help=SIGNED_HELP),
            analog: Optional[str] = typer.Option(None, "--analog", metavar="OP,...", help=ANALOG_HELP),
            force: bool = typer.Option(False, "--force", help="Replace -o even if it is not an earlier snnc "
                                       ".snnir file (never a device).")):
    """Convert a ReLU ANN into an SNN and save it as .snnir.

    \b
    Example: snnc convert out/demo/digits_ann.snnir --calib digits --mode 99.9% -o digits_snn.snnir
    """
    import snnc
    from snnc.core.fileio import check_destination
    from snnc.ir import save
    from snnc.ir.serialize import is_snnir_file
    from snnc.core.userdata import check_time_steps

    check_time_steps(time_steps, "-T")
    check_destination(output, replaces=is_snnir_file, force=force, what=".snnir file")  # before any work
    graph = load_graph(model, input_shape, weights, trust_pickle, dt=dt)
    snn = snnc.convert(graph, load_array(calib, "calibration", input_scale), mode, channelwise=channelwise,
                       v_init=v_init, time_steps=time_steps, bias_correction=bias_correction, analog=analog,
                       signed=signed)
    save(snn, output, force=force)
    _say_analog(snn)
    _say(f"wrote {output}")


@app.command()
def compile(model: ModelArgument,
            target: str = typer.Option("cpu", "--target", help="Backend: cpu, triton, lynxi, lava, nir (see snnc targets)."),
            output: Path = typer.Option(..., "-o", "--output", help="Output artifact folder (written atomically)."),
            calib: Optional[str] = typer.Option(None, "--calib", help="Calibration data (converts an ANN first): "
                                                ".npy/.npz/.pt, a folder of them, or 'digits'."),
            mode: str = typer.Option("99.9%", "--mode", help="Normalization: max, P%, mse, or a float in (0,1]."),
            channelwise: bool = typer.Option(False, "--channelwise", help="Conversion: one scale per channel."),
            v_init: Optional[float] = typer.Option(None, "--v-init", show_default=False,
                                                   help="Conversion: initial potential / threshold, in [0, 1) "
                                                        "[default: 0.5]."),
            bias_correction: bool = typer.Option(False, "--bias-correction", help="Conversion: correct biases at -T."),
            signed: bool = typer.Option(False, "--signed", help="Conversion: " + SIGNED_HELP),
            analog: Optional[str] = typer.Option(None, "--analog", metavar="OP,...", help="Conversion: " + ANALOG_HELP),
            time_steps: Optional[int] = typer.Option(None, "-T", "--time-steps", help="Number of time steps."),
            batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Static batch size (lynxi)."),
            dtype: Optional[str] = typer.Option(None, "--dtype", help="Artifact dtype where the target has one: f32, f16."),
            option: list[str] = typer.Option([], "-O", "--option", metavar="KEY=VALUE",
                                             help="Backend option key=value (repeatable); "
                                             "see docs/<target>.md."),
            input_shape: InputShapeOption = None,
            weights: WeightsOption = None,
            trust_pickle: TrustPickleOption = False,
            dt: DtOption = None,
            input_scale: InputScaleOption = None,
            passes: Optional[str] = typer.Option(None, "--passes", help="Comma-separated passes instead of the target's pipeline."),
            print_after: Optional[str] = typer.Option(None, "--print-after", help="Print the IR after these passes (comma-separated, or 'all')."),
            verify_each: bool = typer.Option(False, "--verify-each", help="Run the verifier after every pass."),
            dump_dir: Optional[Path] = typer.Option(None, "--dump-dir", help="Write the IR after every pass here."),
            as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary."),
            force: bool = typer.Option(False, "--force", help="Replace -o even if it is not an earlier snnc "
                                       "artifact (never a device).")):
    """Compile a model for a target and write the artifact folder.

    An ANN given with --calib runs the conversion pipeline first (snnc passes: 'pipeline convert',
    then the target's own conversion passes), in the same pass manager as the target's pipeline:
    --print-after, --verify-each and --dump-dir see every pass; --passes replaces the target's part.

    \b
    Examples:
      snnc compile out/demo/digits_ann.snnir --calib digits -T 32 -o out/digits_cpu
      snnc compile out/demo/digits_ann.snnir --calib digits --target lynxi -T 8 --batch-size 16 -o out/digits_lynxi
    """
    from snnc.core.userdata import check_time_steps
    from snnc.passes import PIPELINES, PassManager, conversion_context, conversion_pipeline, parse_pipeline

    check_time_steps(time_steps, "-T")
    given: dict[str, object] = parse_options(option)
    for key, value in (("time_steps", time_steps), ("batch_size", batch_size), ("dtype", dtype)):
        if value is not None:
            given[key] = value
    from snnc import backends

    fields = backends.get(target).Options.model_fields
    if time_steps is not None and "time_steps" not in fields:
        given.pop("time_steps")  # -T then only tunes the conversion
    opts = backend_options(target, given)
    from snnc.backends.artifact import check_output

    check_output(output, force=force)  # before any work
    if dump_dir is not None:
        dump_dir = fresh_dump_dir(dump_dir, force)
    graph = load_graph(model, input_shape, weights, trust_pickle, dt=dt)
    spec = passes if passes is not None else PIPELINES.get(target, "")
    context = None
    if not is_snn(graph):
        if calib is None:
            raise InputError(f"{model} is an ANN (it has no spiking neurons): give --calib to convert it",
                             hint="e.g. --calib digits, or --calib calib.npy")
        conversion = {"v_init": v_init} if v_init is not None else {}  # unset: the default, and lava keeps quiet
        if analog is not None:
            conversion["analog"] = analog
        context = conversion_context(load_array(calib, "calibration", input_scale), mode, channelwise=channelwise,
                                     time_steps=time_steps, bias_correction=bias_correction, signed=signed,
                                     **conversion)
        spec = ",".join(p for p in (conversion_pipeline(target), spec) if p)
    backends.register_passes()  # a target's own passes (quantize-loihi) are named by --passes too
    pm = PassManager(parse_pipeline(spec), verify_each=verify_each,
                     print_after=set((print_after or "").split(",")) - {""}, printer=typer.echo, dump_dir=dump_dir,
                     context=context)
    graph = pm.run(graph)
    artifact = backends.get(target).lower(graph, opts, output, force=force)
    if not as_json:
        _say_analog(graph)
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
        inputs: Path = typer.Option(..., "-i", "--inputs", help=".npz (one array per input name), .npy, or .pt "
                                    "(torch.save of a tensor or a dict of tensors)."),
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
                                         "channels_last and convs on spikes event-driven)."),
        force: bool = typer.Option(False, "--force", help="Replace -o even if it is not an earlier run's "
                                   "outputs (never a device)."),
        input_scale: InputScaleOption = None,
        device: Optional[str] = typer.Option(None, "--device", metavar="cpu|cuda",
                                             help="Where to run (default: cuda for triton artifacts when there "
                                                  "is a GPU, else cpu)."),
        probe: Optional[list[str]] = typer.Option(None, "--probe", metavar="NAME[:v]",
                                                  help="Also save a node's output, or with ':v' a neuron's "
                                                       "potential (sigma of a sigma-delta neuron), [T, N, *]; "
                                                       "repeatable. Lava artifacts: a NetX layer index or "
                                                       "graph neuron name, e.g. --probe 10:v."),
        reset_interval: Optional[int] = typer.Option(None, "--reset-interval", metavar="N",
                                                     help="Lava artifacts: zero every CUBA neuron's state every "
                                                          "N steps, layer k at step k mod N, as netx's "
                                                          "Network(reset_interval=N) does.")):
    """Run a compiled artifact on inputs and save the output sequences [T, N, *].

    \b
    Example: snnc run out/digits_cpu -i out/demo/test_inputs.npz -o outputs.npz -T 32 --stats
    """
    import time

    from snnc.ir.formats.artifact import Artifact
    from snnc.core.fileio import check_destination, npz_with_keys
    from snnc.runtime.loihi import LoihiSession
    from snnc.runtime.protocol import open_session
    from snnc.core.userdata import check_time_steps, parse_scale, read_arrays

    check_time_steps(time_steps, "-T")
    scale = parse_scale(input_scale) if input_scale is not None else None
    art = Artifact.open(artifact)
    probes = list(probe or ())
    if art.target == "lava":  # the bit-exact Loihi emulation: integer arithmetic on the CPU, no options
        given = [f for f, on in (("--stats", stats), ("--encoder", encoder != "constant"),
                                 ("--eager-exact", eager_exact), ("--max-memory", max_memory is not None),
                                 (f"--device {device}", device not in (None, "cpu"))) if on]
        if given:
            raise InputError(f"{', '.join(given)}: not available for lava artifacts (the Loihi emulation runs "
                             "bit-exact on the CPU)")
        if reset_interval is not None and reset_interval < 1:
            raise InputError(f"--reset-interval must be at least 1, got {reset_interval}")
        session = open_session(art, reset_interval=reset_interval)
        silent = session.silent_output
        if silent is not None and not any(p.split(":")[0] in (silent, f"layer{silent}_neuron") for p in probes):
            probes.append(f"{silent}:v")  # its spikes are all zero by construction: its potential is the output
            _say(f"note: the output layer {silent} never fires (vThMant >= 2^17, an integrator readout); its "
                 f"potential is saved too, as '{silent}:v'")
    elif reset_interval is not None:
        raise InputError(f"--reset-interval: only for lava artifacts (the Loihi emulation), not {art.target}",
                         hint="it is netx's Network(reset_interval=N); compile the model with --target lava")
    else:
        exact = {"channels_last": False, "event_conv": False} if eager_exact else {}
        session = open_session(art, device=run_device(device, art.target), **exact)
    if output is not None:  # before the run: -o may replace only an earlier run's outputs
        names = (["out"] if isinstance(session, LoihiSession) else session.output_names) + probes
        check_destination(output, replaces=npz_with_keys(names), force=force, what="outputs file (.npz)")
    arrays = read_arrays(inputs, "inputs")
    T = time_steps
    if T is None and artifact.is_dir():
        T = check_time_steps(art.manifest.get("time_steps"), f"the time_steps in {artifact}/manifest.json")
    if isinstance(session, LoihiSession):
        feeds = input_feeds(arrays, {"input": tuple(session.network.input_shape)}, inputs, scale)
        start = time.perf_counter()
        out = session.run(next(iter(feeds.values())), T, probes=probes)
        out = out if isinstance(out, dict) else {"out": out}
        if print_time:
            typer.echo(f"run: {(time.perf_counter() - start) * 1000:.1f} ms")
        _write_outputs(out, output, force)
        return
    feeds = input_feeds(arrays, {op.name: tuple(op.type.features) for op in session.graph.inputs}, inputs, scale)
    if max_memory is not None:
        from snnc.core.limits import parse_bytes

        try:
            session.max_memory = parse_bytes(max_memory)
        except ValueError:
            raise InputError(f"--max-memory: not a size: {max_memory!r}", hint="e.g. 512M or 2G") from None
    start = time.perf_counter()
    result = session.execute(feeds, T, encoder=encoder, seed=seed, stats=stats, probes=probes)
    if print_time:
        typer.echo(f"run: {(time.perf_counter() - start) * 1000:.1f} ms")
    _write_outputs({**result.outputs, **result.probes}, output, force)
    if result.stats is not None:
        typer.echo(result.stats.table())
        if result.memory is not None:
            typer.echo(result.memory.line())


def _write_outputs(out: dict, output: Optional[Path], force: bool = False) -> None:
    import numpy as np

    from snnc.core.fileio import atomic_path, npz_with_keys

    if output is not None:
        with atomic_path(output, replaces=npz_with_keys(out), force=force, what="outputs file (.npz)") as tmp:
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

    \b
    Example: snnc bench out/digits_cpu -T 32 --batch 256
    """
    import statistics
    import time

    import torch

    from snnc.ir.formats.artifact import Artifact
    from snnc.runtime.protocol import open_session

    if time_steps <= 0 or batch <= 0 or repeat <= 0:
        raise InputError("-T, --batch and --repeat must be positive")
    art = Artifact.open(artifact)
    # the Loihi emulation takes no device (it runs bit-exact integers on the CPU)
    session = open_session(art) if art.target == "lava" else open_session(art, device=run_device(None, art.target))
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
def inspect(path: Path = typer.Argument(..., help="A model file, an artifact folder, or package.module:attribute (or file.py:attribute)."),
            table: bool = typer.Option(True, "--table/--no-table", help="Also print the per-op table."),
            input_shape: InputShapeOption = None,
            weights: WeightsOption = None,
            trust_pickle: TrustPickleOption = False,
            dt: DtOption = None):
    """Print the IR of a model file or artifact, then a per-op table: output shape, parameters,
    activation memory per sample, and MACs per sample (per time step for an SNN).

    \b
    Example: snnc inspect out/demo/digits_snn.snnir
    """
    graph = _artifact_graph(path, dt) if path.is_dir() else load_graph(str(path), input_shape, weights, trust_pickle,
                                                                       dt=dt)
    typer.echo(str(graph), nl=False)
    if table:
        typer.echo(op_table(graph))


def _artifact_graph(path: Path, dt: Optional[float]):
    """The graph of an artifact folder (--dt applies to NIR input only)."""
    from snnc.ir.formats.artifact import Artifact

    if dt is not None:
        raise InputError(f"--dt applies to NIR input; {path} is an artifact folder, compiled with its own time step")
    return Artifact.open(path).graph()


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
    from snnc.backends import register_passes
    from snnc.passes import PASSES, PIPELINES

    register_passes()  # the targets' own passes
    for name, info in sorted(PASSES.items()):
        typer.echo(f"{name:20s} {info.doc}")
    typer.echo("")
    for target, spec in PIPELINES.items():
        typer.echo(f"pipeline {target}: {spec}")


@app.command()
def report(model: str = typer.Argument(..., help="An ANN (.snnir or module:attr) or a converted SNN / artifact."),
           calib: Optional[str] = typer.Option(None, "--calib", help="Calibration data (needed for an ANN)."),
           eval_data: str = typer.Option("digits", "--eval", help="Labelled data: .npz with x and y, or 'digits'."),
           output: Path = typer.Option(Path("report"), "-o", "--output", help="Output folder (report.html + PNGs)."),
           time_steps: str = typer.Option("4,8,16,32,64", "-T", "--time-steps", help="Comma-separated T values."),
           input_shape: InputShapeOption = None,
           weights: WeightsOption = None,
           trust_pickle: TrustPickleOption = False,
           dt: DtOption = None,
           input_scale: InputScaleOption = None,
           analog: Optional[str] = typer.Option(None, "--analog", metavar="OP,...", help="Conversion: " + ANALOG_HELP),
           signed: bool = typer.Option(False, "--signed", help="Conversion: " + SIGNED_HELP),
           force: bool = typer.Option(False, "--force", help="Replace -o even if it is not an earlier snnc report "
                                      "(never a device).")):
    """Write an HTML report: accuracy vs T per mode, firing rates, raster, traces, scatter, graph.

    \b
    Example: snnc report out/demo/digits_ann.snnir --calib digits --eval digits -o out/report
    """
    from snnc.core.fileio import check_destination
    from snnc.evaluate import is_main_rank
    from snnc.report import collect, is_report_folder, write_report

    # before any work: -o may replace only an earlier report
    check_destination(output, directory=True, replaces=is_report_folder, force=force, what="report")
    path = Path(model)
    graph = _artifact_graph(path, dt) if path.is_dir() else load_graph(model, input_shape, weights, trust_pickle,
                                                                       dt=dt)
    x, y = load_labelled(eval_data, input_scale)
    ts = parse_time_list(time_steps)
    if not is_snn(graph) and calib is None:
        raise InputError(f"{model} is an ANN: give --calib to convert it for the report")
    data = collect(graph, x, y, load_array(calib, "calibration", input_scale) if calib else None, t_values=ts,
                   model_source=model, eval_source=eval_data, calib_source=calib, analog=analog, signed=signed)
    if not is_main_rank():  # under torchrun every rank scored its part; rank 0 writes the report
        return
    out = write_report(data, output, force=force)
    _say(f"wrote {out}")


@app.command("eval")
def eval_(model: ModelArgument,
          data: str = typer.Option("digits", "--data", help="Labelled data: 'digits', an .npz with x and y, or a "
                                   "folder of shards (.npz with x and y, or NAME.x.npy + NAME.y.npy pairs)."),
          time_steps: str = typer.Option("4,8,16,32", "-T", "--time-steps", help="Comma-separated T values."),
          mode: str = typer.Option("max", "--mode", help="Comma-separated normalization modes to convert an ANN "
                                   "with: max, P% (e.g. 99.9%), mse, or a float in (0,1]."),
          calib: Optional[str] = typer.Option(None, "--calib", help="Calibration data (needed for an ANN): "
                                              ".npy/.npz/.pt, a folder of them, or 'digits'."),
          batch_size: int = typer.Option(256, "--batch-size", help="Samples per run."),
          output: Optional[Path] = typer.Option(None, "-o", "--output", help="Also write the results to this .json."),
          as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
          input_shape: InputShapeOption = None,
          weights: WeightsOption = None,
          trust_pickle: TrustPickleOption = False,
          input_scale: InputScaleOption = None,
          analog: Optional[str] = typer.Option(None, "--analog", metavar="OP,...", help="Conversion: " + ANALOG_HELP),
          signed: bool = typer.Option(False, "--signed", help="Conversion: " + SIGNED_HELP),
          force: bool = typer.Option(False, "--force", help="Replace -o even if it is not an earlier eval's "
                                     "results (never a device).")):
    """Accuracy against T over a labelled data set; runs unchanged under torchrun (each rank takes its shards).

    \b
    Example: snnc eval out/demo/digits_ann.snnir --calib digits --data digits -T 4,8,16,32 --mode max,99.9%
             torchrun --nproc-per-node 2 -m snnc eval model.snnir --calib digits --data shards/ -T 8,32
    """
    from snnc.core.fileio import atomic_path, check_destination
    from snnc.core.userdata import parse_scale
    from snnc.evaluate import evaluate, is_main_rank, is_eval_json
    from snnc.ir.formats.artifact import Artifact

    ts = parse_time_list(time_steps)
    modes = [m.strip() for m in mode.split(",") if m.strip()]
    if not modes:
        raise InputError(f"--mode: no mode in {mode!r}", hint="e.g. max or max,99.9%")
    if output is not None:  # before any work
        check_destination(output, replaces=is_eval_json, force=force, what="results file (.json)")
    path = Path(model)
    graph = Artifact.open(path).graph() if path.is_dir() else load_graph(model, input_shape, weights, trust_pickle)
    scale = parse_scale(input_scale) if input_scale is not None else None
    result = evaluate(graph, data, ts, calib=load_array(calib, "calibration", input_scale) if calib else None,
                      modes=modes, batch_size=batch_size, scale=scale, analog=analog, signed=signed)
    if not is_main_rank():
        return
    doc = result.to_json()
    if output is not None:
        with atomic_path(output, replaces=is_eval_json, force=force, what="results file (.json)") as tmp:
            Path(tmp).write_text(json.dumps(doc, indent=1) + "\n")
    typer.echo(json.dumps(doc, indent=1) if as_json else result.table())
    if output is not None:
        _say(f"wrote {output}")


@app.command()
def targets():
    """List the compilation targets and whether each can be used on this machine."""
    from snnc.backends import TARGETS, available

    have = available()
    for t in TARGETS:
        status = "available" if t in have else "not available in this build of snnc"
        if t == "triton" and t in have:
            status = _triton_status()
        typer.echo(f"{t:8s} {status}")


def _triton_status() -> str:
    """Whether triton artifacts can run here, and how: on a CUDA GPU, or in Triton's CPU interpreter."""
    import torch

    from snnc.runtime import triton as snnc_triton

    if not snnc_triton.is_available():
        return "compiles; cannot run here: the triton package is not installed (it has wheels for Linux only)"
    if torch.cuda.is_available():
        return f"available: runs on the CUDA GPU ({torch.cuda.get_device_name(0)})"
    return ("compiles; no CUDA GPU here, so `snnc run` runs its kernels in Triton's CPU interpreter "
            "(slow; for testing)")


@app.command()
def demo(out: Optional[Path] = typer.Option(None, "--out", help="Also write the models and data here."),
         loihi: bool = typer.Option(True, "--loihi/--no-loihi", help="Also evaluate the Loihi emulation (~1 min)."),
         force: bool = typer.Option(False, "--force", help="Replace --out even if it is not an earlier demo's "
                                    "folder (never a device).")):
    """Train (cached) a CNN on the digits data set, convert it, and print accuracy vs T."""
    from snnc.demo import run_demo

    run_demo(out, loihi=loihi, force=force)


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
    except Exception as e:  # noqa: BLE001 - a bug in snnc: still one line, the traceback with -v
        if _state["verbose"]:
            traceback.print_exc()
        typer.echo(f"error: internal error: {type(e).__name__}: {(str(e).splitlines() or [''])[0][:300]}", err=True)
        typer.echo("hint: this is a bug in snnc; run again with -v for the traceback and report it", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
