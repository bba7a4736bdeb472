"""The `snnc` command line's arguments turned into checked models, data, options and devices.

What several commands share and what raises one `InputError` per bad argument (snnc.cli prints it);
the commands themselves are in snnc.cli.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Optional

from snnc.core.errors import InputError, VerifyError


def parse_input_shape(spec: str) -> tuple[str | None, tuple[int, ...]]:
    """'x:[1,1,8,8]', 'x:[N,1,8,8]' or '[1,1,8,8]' (batch first) -> (name or None, per-sample shape (1, 8, 8))."""
    m = re.fullmatch(r"\s*(?:([A-Za-z_][\w.]*)\s*:)?\s*\[?\s*([0-9A-Za-z,\s]+?)\s*\]?\s*", spec)
    dims = [d.strip() for d in m.group(2).split(",")] if m else []
    if not m or len(dims) < 2 or not (dims[0].isdigit() or dims[0] in ("N", "n")) \
            or not all(d.isdigit() and int(d) > 0 for d in dims[1:]):
        raise InputError(f"--input-shape {spec!r}: expected NAME:[N,d1,d2,...], batch first, with positive sizes "
                         "after the batch dim", hint="e.g. --input-shape x:[1,1,8,8] for 1x8x8 inputs")
    return m.group(1), tuple(int(d) for d in dims[1:])


def load_array(spec: str, what: str, scale: Optional[str] = None):
    """A float tensor from a .npy/.npz/.pt file (or a folder of them), or 'digits' for the bundled data set.

    Checked by snnc.core.userdata (dtype policy, finite values); `scale` is --input-scale.
    """
    import torch

    from snnc.core.userdata import as_float, check_finite, parse_scale, read_arrays

    factor = parse_scale(scale) if scale is not None else None
    if spec == "digits":
        from snnc.core import datasets

        return as_float(datasets.digits().x_train[:512], "the digits data", scale=factor)
    p = Path(spec)
    if p.is_dir():
        files = [f for f in sorted(p.iterdir()) if f.suffix in (".npy", ".npz", ".pt")]
        if not files:
            raise InputError(f"{what} folder {p} has no .npy, .npz or .pt files")
        parts = [load_array(str(f), what, scale) for f in files]
        if len({tuple(t.shape[1:]) for t in parts}) > 1:
            raise InputError(f"the files in {what} folder {p} hold samples of different shapes: "
                             + ", ".join(f"{f.name} {list(t.shape)}" for f, t in zip(files, parts)))
        return torch.cat(parts)
    arrays = read_arrays(p, what)
    key = next((k for k in (None, "x", "inputs", "data") if k in arrays), next(iter(arrays)))
    where = f"{what} file {p}" + (f", array '{key}'" if key is not None else "")
    x = as_float(arrays[key], where, scale=factor)
    check_finite(x, where)
    return x


def is_snn(graph) -> bool:
    from snnc.ir import ops

    return any(ops.is_neuron(op) or isinstance(op, ops.SigmaDelta) for op in graph)


def load_graph(model: str, input_shape: Optional[str], weights: Optional[str], trust_pickle: bool = False,
               dt: Optional[float] = None):
    """The model as an IR graph; --input-shape must name one of its inputs and, for a model file, agree with it.
    `dt` (--dt) is the time step of a NIR model (refused for other inputs)."""
    from snnc.frontends.loader import load_model

    name, shape = parse_input_shape(input_shape) if input_shape else (None, None)
    try:
        graph = load_model(model, input_shape=shape, weights=weights, trust_pickle=trust_pickle, dt=dt)
    except VerifyError as e:  # a shape the model's first layers do not take: say how the option was read
        if shape is not None:
            e.with_hint(f"--input-shape is batch first: {input_shape!r} gives the model samples of shape "
                        f"{list(shape)}")
        raise
    if input_shape is not None:
        inputs = {op.name: tuple(op.type.features) for op in graph.inputs}
        if name is None and len(inputs) == 1:
            name = next(iter(inputs))
        if name not in inputs:
            raise InputError(f"--input-shape {input_shape!r} names input {name!r}, but {model} has "
                             f"input(s) {', '.join(inputs)}", hint=f"e.g. --input-shape {next(iter(inputs))}:[1,"
                             f"{','.join(map(str, next(iter(inputs.values()))))}]")
        if inputs[name] != shape:
            raise InputError(f"--input-shape {input_shape!r} gives input {name!r} samples of shape {list(shape)}, "
                             f"but {model} declares {list(inputs[name])}",
                             hint="a model file declares its own input shapes: drop --input-shape, or make it agree")
    return graph


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
    from snnc.api import target_options

    return target_options(target, given)


_DUMP_FILE = re.compile(r"\d{2,}-.+\.txt")  # what --dump-dir writes: 00-input.txt, 01-<pass>.txt, ...


def fresh_dump_dir(path: Path, force: bool) -> Path:
    """--dump-dir: a new or empty folder, or an earlier dump (its files are removed first, so none is stale)."""
    from snnc.core.fileio import check_destination

    def is_dump(p: Path) -> bool:
        return all(_DUMP_FILE.fullmatch(e.name) and e.is_file() and not e.is_symlink() for e in p.iterdir())

    dst = check_destination(path, directory=True, replaces=is_dump, force=force, what="IR dump folder")
    if dst.is_dir() and not dst.is_symlink():
        for e in dst.iterdir():
            if _DUMP_FILE.fullmatch(e.name) and e.is_file() and not e.is_symlink():
                e.unlink()
    return dst


def input_feeds(arrays: dict, inputs: dict[str, tuple[int, ...]], path: Path, scale: Optional[float]) -> dict:
    """Input name -> checked float tensor, from the arrays of an inputs file (snnc.core.userdata.read_arrays);
    `inputs` maps each input name to its per-sample shape."""
    from snnc.core.userdata import as_float, check_finite

    names = list(inputs)
    if None in arrays or (len(names) == 1 and len(arrays) == 1):  # one array: the one input, whatever its name
        if len(names) != 1:
            raise InputError(f"inputs file {path} holds one array, but the model takes inputs {', '.join(names)}",
                             hint="save one array per input name: numpy.savez(path, "
                                  + ", ".join(f"{n}=..." for n in names) + ")")
        (key, x), = arrays.items()
        named = {names[0]: (x, f"inputs file {path}" + (f", array '{key}'" if key is not None else ""))}
    else:
        unknown, missing = sorted(set(arrays) - set(names)), [n for n in names if n not in arrays]
        if unknown or missing:
            held = ", ".join(map(repr, list(arrays)[:5])) + (f", ... ({len(arrays)} arrays)" if len(arrays) > 5 else "")
            raise InputError(f"inputs file {path} holds arrays {held}, but the model takes inputs "
                             f"{', '.join(map(repr, names))}", hint="save one array per input name")
        named = {k: (arrays[k], f"inputs file {path}, array '{k}'") for k in names}
    feeds = {}
    for name, (x, where) in named.items():
        x = feeds[name] = as_float(x, where, scale=scale)
        feats = inputs[name]
        if tuple(x.shape[x.dim() - len(feats):]) != feats or x.dim() not in (len(feats) + 1, len(feats) + 2):
            dims = ", ".join(map(str, feats))
            raise InputError(f"{where} has shape {list(x.shape)}, but input %{name} takes [N, {dims}] (held "
                             f"constant over T) or [T, N, {dims}] (a sequence)")
        check_finite(x, where)
    return feeds


def run_device(device: Optional[str], target: str) -> Optional[str]:
    """--device checked against this machine; a triton artifact without a GPU runs in Triton's CPU interpreter."""
    import torch

    if device is not None and not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise InputError(f"--device {device!r}: expected cpu, cuda or cuda:N")
    if device is not None and device.startswith("cuda"):
        if not torch.cuda.is_available():
            build = "" if torch.version.cuda else f" (this torch {torch.__version__} is a CPU-only build)"
            raise InputError(f"--device {device}: no CUDA GPU is visible here{build}", hint="run with --device cpu")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise InputError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
        return device
    if target == "triton" and (device == "cpu" or not torch.cuda.is_available()):
        triton_on_cpu()
    return device


def triton_on_cpu() -> None:
    """Run Triton's kernels in its CPU interpreter (set before triton is imported), with a warning."""
    import os
    import warnings

    from snnc.runtime import triton as snnc_triton

    if not snnc_triton.is_available():
        raise InputError("this is a triton artifact, but the triton package is not installed here",
                         hint="compile the model for --target cpu, which runs the same IR")
    if "triton" in sys.modules:
        from snnc.runtime.triton.launch import interpreting

        if not interpreting():
            raise InputError("Triton's kernels were loaded for the GPU in this process; they cannot run on the CPU",
                             hint="set TRITON_INTERPRET=1 before snnc starts, or use --device cuda")
    else:
        os.environ["TRITON_INTERPRET"] = "1"
    warnings.warn("running the Triton kernels in Triton's CPU interpreter (no CUDA GPU in use): slow, for testing; "
                  "--target cpu runs the same IR fast on a CPU", stacklevel=2)


def parse_time_list(spec: str) -> tuple[int, ...]:
    """-T as a comma-separated list of positive ints, e.g. '4,8,16'."""
    try:
        ts = tuple(int(t) for t in spec.split(",") if t.strip())
    except ValueError:
        raise InputError(f"-T must be a comma-separated list of positive ints, got {spec!r}") from None
    if not ts or min(ts) <= 0:
        raise InputError(f"-T must be a comma-separated list of positive ints, got {spec!r}")
    return ts


def load_labelled(spec: str, scale: Optional[str] = None):
    """(x, y) from 'digits' (the test split) or a file with arrays x/inputs/data and y/labels/targets.

    x is checked by snnc.core.userdata (`scale` is --input-scale); y must hold integer labels.
    """
    import numpy as np
    import torch

    from snnc.core.userdata import as_float, check_finite, parse_scale, read_arrays

    factor = parse_scale(scale) if scale is not None else None
    if spec == "digits":
        from snnc.core import datasets

        d = datasets.digits()
        return as_float(d.x_test, "the digits test set", scale=factor), d.y_test
    p = Path(spec)
    arrays = read_arrays(p, "evaluation")
    xk = next((k for k in ("x", "inputs", "data") if k in arrays), None)
    yk = next((k for k in ("y", "labels", "targets") if k in arrays), None)
    if xk is None or yk is None:
        raise InputError(f"evaluation file {p} needs arrays 'x' and 'y' (it has "
                         f"{', '.join(repr(k) for k in arrays if k is not None) or 'one unnamed array'})",
                         hint="save them with numpy.savez(path, x=inputs, y=labels)")
    x = as_float(arrays[xk], f"evaluation file {p}, array '{xk}'", scale=factor)
    check_finite(x, f"evaluation file {p}, array '{xk}'")
    y = arrays[yk]  # an ndarray or a tensor: integers, or floats with integer values
    if isinstance(y, np.ndarray):
        y = torch.from_numpy(y) if y.dtype.kind in "iuf" else None
    elif y.is_complex() or y.dtype == torch.bool:
        y = None
    if y is None or (y.is_floating_point() and not bool((y == y.round()).all())):  # shapes: report.collect
        raise InputError(f"evaluation file {p}: array '{yk}' must hold integer class labels; it has dtype "
                         f"{arrays[yk].dtype}" + ("" if y is None else " with fractional values"))
    return x, y.long()
