"""NIR frontend: read a NIR graph (a `.nir`/`.h5` file or a nir.NIRGraph) into an IR graph.

NIR neurons are continuous-time; they are discretised with a time step dt
chosen here (see snnc.ir.formats.nir and docs/nir.md). Each NIR node type has
its lowering in LOWERINGS; nested NIRGraph nodes are flattened first. Files written
by snnc carry each neuron's exact IR op in their metadata, which is used when
it still matches the NIR parameters. Several edges entering one node are
summed (NIR's rule), which becomes a chain of IR Add ops.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import networkx as nx
import numpy as np
import torch

from snnc.core import spelling
from snnc.core.dynamics import FireCompare
from snnc.core.errors import MalformedFileError, SnncError, UnsupportedAttributeError, UnsupportedOpError
from snnc.core.safety import H5Dataset, H5Group, open_hdf5
from snnc.frontends.fx_ops import same_padding
from snnc.ir import ops
from snnc.ir.formats.nir import (DEFAULT_DT, META_KEY, NEURON_TYPES, SOURCE_KEY, NirSource, clean, exact_op,
                                 from_nir_node, uniform, values)
from snnc.ir.graph import Graph
from snnc.ir.ops import SourceLoc
from snnc.ir.types import DType, Layout, TensorType
from snnc.ir.verify import verify

NEURONS = ("IF", "LIF", "CubaLIF", "LI", "I", "CubaLI")  # where a recurrent edge is cut (read one step late)
_SKIP_FIELDS = {"input_type", "output_type", "metadata"}


def load_nir(path: str | os.PathLike, *, dt: float | None = None, fire: FireCompare | str = FireCompare.GT,
             use_metadata: bool = True, name: str | None = None) -> Graph:
    """Read a NIR file (HDF5 written by nir.write), checking its structure first."""
    import nir

    p = Path(path)
    # read whole in a child process under a time limit (a damaged file cannot hang this one); external
    # links/storage and oversized datasets refused; nir then builds its graph from that copy, never the file
    with open_hdf5(p, "NIR") as f:
        check_structure(f, p)
        try:
            graph = _nir_graph(f["node"], nir)
        except SnncError:
            raise
        except Exception as e:  # noqa: BLE001 - nir raises assertion/key/value errors for bad content
            raise MalformedFileError(f"{p}: nir cannot read it: {type(e).__name__}: {str(e)[:300]}") from None
    return from_nir(graph, dt=dt, fire=fire, use_metadata=use_metadata, name=name or p.stem, source=str(p))


def _nir_graph(root, nir) -> Any:
    """What nir.read makes of the file's /node group (its hdf2dict + dict2NIRNode), from the in-memory copy."""
    def to_dict(group) -> dict:
        out = {}
        for key, item in group.items():
            if isinstance(item, H5Group):
                out[key] = to_dict(item)
            elif isinstance(item, H5Dataset):
                value = item[()]
                out[key] = value.decode("utf8") if isinstance(value, bytes) else value
        return out

    data = to_dict(root)
    if "type_check" in data:
        raise ValueError("the 'type_check' key in the NIR graph clashes with nir.read's parameter")
    data["type_check"] = False
    return nir.dict2NIRNode(data)


def check_structure(f, p: Path) -> None:
    """Name the node and field of a truncated or incomplete NIR file (`f`, read by open_hdf5) before nir trips."""
    import nir

    try:
        _check_graph(f, p, nir)
    except SnncError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged or missing dataset
        raise MalformedFileError(f"{p}: damaged NIR file: {type(e).__name__}: {e}") from None


def _text(ds) -> str:
    v = ds[()]
    return v.decode() if isinstance(v, bytes) else str(v)


def _check_graph(f, p: Path, nir) -> None:
    if "node" not in f or "version" not in f:
        raise MalformedFileError(f"{p}: HDF5 file without /node and /version: not a NIR file")
    root = f["node"]
    if "type" not in root or _text(root["type"]) != "NIRGraph" or "nodes" not in root or "edges" not in root:
        raise MalformedFileError(f"{p}: /node is not a NIRGraph with nodes and edges")
    names = set(root["nodes"].keys())
    for name in names:
        grp = root["nodes"][name]
        if "type" not in grp:
            raise MalformedFileError(f"{p}: NIR node '{name}' has no type")
        kind = _text(grp["type"])
        cls = getattr(nir, kind, None)
        if kind == "NIRGraph" or cls is None or not dataclasses.is_dataclass(cls):
            continue  # unknown or nested: reported as unsupported with its name later
        if kind in ("Input", "Output"):
            required = ["shape"]
        else:
            required = [fl.name for fl in dataclasses.fields(cls) if fl.name not in _SKIP_FIELDS
                        and fl.default is dataclasses.MISSING and fl.default_factory is dataclasses.MISSING
                        and fl.name != "input_shape"]
        missing = [r for r in required if r not in grp]
        if missing:
            raise MalformedFileError(f"{p}: NIR node '{name}' ({kind}) is missing its {', '.join(missing)} "
                                     "(a truncated or incomplete file)")
        for r in required:
            grp[r][()]  # reads the data: a truncated dataset fails here, named
    for edge in root["edges"][()]:
        src, dst = (e.decode() if isinstance(e, bytes) else str(e) for e in edge)
        for end in (src, dst):
            if end not in names and end.split(".")[0] not in names:  # 'node' or 'node.port'
                raise MalformedFileError(f"{p}: edge {src} -> {dst} refers to a node '{end}' that does not exist")


def from_nir(graph: Any, *, dt: float | None = None, fire: FireCompare | str = FireCompare.GT,
             use_metadata: bool = True, name: str = "nir", source: str = "NIR graph") -> Graph:
    """Lower a nir.NIRGraph into an IR graph (inputs TNX [T, N, *]).

    Nested NIRGraph nodes are flattened: their nodes are named '<graph>.<node>'
    and their Input/Output nodes become plain edges.

    Args:
        dt: seconds per step used to discretise NIR neurons. None: the dt snnc
            recorded in the graph's metadata, else 1e-4 s with a warning.
        fire: the comparison for neurons without snnc metadata; NIR says
            v > threshold ('gt').
        use_metadata: read back the exact IR op snnc recorded in a neuron's
            metadata (soft reset, >=, ...) when it matches the NIR parameters.
    """
    import nir

    if not isinstance(graph, nir.NIRGraph):
        raise UnsupportedOpError(f"{source}: expected a nir.NIRGraph, got {type(graph).__name__}")
    fire = FireCompare(fire)
    flat = flatten(graph, source)
    back = _back_edges(flat, source)
    order = _topological(flat, source, back)
    dt, dt_from = _choose_dt(graph, flat, dt, source)
    ctx = _Context(Graph(name), dt, fire, use_metadata)
    values: dict[str, str | None] = {}
    preds: dict[str, list[str]] = {n: [] for n in flat.nodes}
    for src, dst in flat.edges:
        preds[dst].append(src)
    recurs: dict[str, str] = {}  # NIR node -> the recur op reading it one step late
    for key in order:
        node = flat.nodes[key]
        kind = type(node).__name__
        where = f"NIR node '{key}' ({kind}) in {source}"
        loc = SourceLoc(module_path=key, module_type=f"nir.{kind}")
        x = _summed(ctx.g, [_recur_for(ctx.g, flat, s, recurs) if (s, key) in back else values[s] for s in preds[key]
                            if (s, key) in back or values[s] is not None], key, loc)
        if node is PASS:
            values[key] = x  # a nested graph's Input/Output: an edge
            continue
        if kind != "Input" and x is None:
            raise MalformedFileError(f"{where} has no incoming edge")
        try:
            values[key] = LOWERINGS[kind](ctx, node, key, x, loc, where)
        except ValueError as e:
            raise UnsupportedAttributeError(str(e)) from None
    g = ctx.g
    if not g.outputs:
        raise MalformedFileError(f"{source}: the NIR graph has no Output node")
    _close_recurrences(g, recurs, values)
    g.meta = {**g.meta, SOURCE_KEY: NirSource(dt=dt, dt_from=dt_from, source=source)}
    return verify(g)


@dataclasses.dataclass
class _Context:
    """What every node's lowering needs: the graph being built and the reading options."""

    g: Graph
    dt: float
    fire: FireCompare
    use_metadata: bool


PASS = object()  # a nested graph's Input/Output node after flattening: its value is its (summed) input


@dataclasses.dataclass
class Flat:
    """A NIR graph with its nested graphs flattened: node name -> node (or PASS), edges between names."""

    nodes: dict[str, Any]
    edges: list[tuple[str, str]]


def flatten(graph: Any, source: str, prefix: str = "") -> Flat:
    """Inline every nested NIRGraph node, naming its nodes '<graph>.<node>' (recursively)."""
    import nir

    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    inner: dict[str, Flat] = {}
    for key, node in graph.nodes.items():
        name = prefix + key
        if isinstance(node, nir.NIRGraph):
            sub = flatten(node, source, name + ".")
            inner[key] = sub
            nodes.update(sub.nodes)
            edges.extend(sub.edges)
        else:
            nodes[name] = PASS if prefix and isinstance(node, (nir.Input, nir.Output)) else node
    for src, dst in graph.edges:
        edges.append((_end(graph, inner, src, prefix, "Output", source), _end(graph, inner, dst, prefix, "Input", source)))
    return Flat(nodes, edges)


def _end(graph: Any, inner: dict, end: str, prefix: str, role: str, source: str) -> str:
    """The flat name of an edge end: a node, a nested graph (its one Input/Output), or 'graph.port'."""
    import nir

    if end in graph.nodes and end not in inner:
        return prefix + end
    head, _, port = end.partition(".")
    sub = head if head in inner else (end if end in inner else None)
    if sub is None:
        raise MalformedFileError(f"{source}: edge end '{prefix}{end}' names a node that does not exist")
    g = graph.nodes[sub]
    if port and sub == head:
        return f"{prefix}{sub}.{port}"
    ends = [k for k, n in g.nodes.items() if type(n).__name__ == role]
    if len(ends) != 1:
        raise UnsupportedOpError(f"{source}: edge to nested graph '{prefix}{sub}' does not say which of its "
                                 f"{len(ends)} {role} nodes it means ('{sub}.<name>')")
    return f"{prefix}{sub}.{ends[0]}"


def _back_edges(graph: "Flat", source: str) -> set[tuple[str, str]]:
    """The edges that close NIR's cycles, each read one step late (a `recur` op): in every cycle, the first
    edge leaving a neuron (what snnTorch, Norse and SpikingJelly feed back: last step's spikes), else its
    last edge. A cycle is legal in NIR; its time step is the simulators' convention, not written in the file."""
    dg = nx.DiGraph()
    dg.add_nodes_from(graph.nodes)
    dg.add_edges_from((s, d) for s, d in graph.edges if s in graph.nodes and d in graph.nodes)
    back: set[tuple[str, str]] = set()
    while True:
        try:
            cycle = nx.find_cycle(dg)
        except nx.NetworkXNoCycle:
            return back
        edge = next(((u, v) for u, v in cycle if type(graph.nodes[u]).__name__ in NEURONS), cycle[-1][:2])
        dg.remove_edge(*edge)
        back.add(edge)


def _recur_for(g: Graph, graph: Any, key: str, recurs: dict[str, str]) -> str:
    """The recur op reading NIR node `key` one step late (one per node; its type and input are set when the
    whole graph is lowered, by _close_recurrences)."""
    if key not in recurs:
        feats = _output_features(graph.nodes[key])
        spikes = type(graph.nodes[key]).__name__ in ("IF", "LIF", "CubaLIF")  # provisional: set at the end
        recurs[key] = g.add(ops.Recur(name=g.fresh_name(f"{key}_prev"), inputs=(key,), loc=SourceLoc(
            module_path=key, module_type="recurrent edge"), type=TensorType(
                shape=("T", "N", *feats), dtype=DType.SPIKE if spikes else DType.F32, layout=Layout.TNX)))
    return recurs[key]


def _output_features(node: Any) -> tuple[int, ...]:
    out = getattr(node, "output_type", None) or {}
    shape = next(iter(out.values()), None) if isinstance(out, dict) else None
    feats = tuple(int(d) for d in np.asarray(shape).reshape(-1)) if shape is not None else ()
    return feats or (1,)


def _close_recurrences(g: Graph, recurs: dict[str, str], values: dict[str, str]) -> None:
    """Point each recur op at its source's IR value, with that value's type."""
    for key, rec in recurs.items():
        g.replace_op(g[rec].replace(inputs=(values[key],)))
    types = g.infer_forward()
    for key, rec in recurs.items():
        g.replace_op(g[rec].replace(type=types[values[key]]))


def _topological(flat: Flat, source: str, back: set[tuple[str, str]] = frozenset()) -> list[str]:
    unknown = [f"'{k}' ({type(n).__name__})" for k, n in flat.nodes.items()
               if n is not PASS and type(n).__name__ not in LOWERINGS]
    if unknown:
        raise UnsupportedOpError(f"{source}: NIR node(s) {', '.join(unknown)} are not supported",
                                 hint=f"supported NIR nodes: {', '.join(SUPPORTED)}")
    dg = nx.DiGraph()
    dg.add_nodes_from(flat.nodes)
    for src, dst in flat.edges:
        if src not in flat.nodes or dst not in flat.nodes:
            raise MalformedFileError(f"{source}: edge {src} -> {dst} names a node that does not exist")
        if (src, dst) not in back:
            dg.add_edge(src, dst)
    try:
        cycle = nx.find_cycle(dg)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        raise UnsupportedOpError(f"{source}: the NIR graph is recurrent ({' -> '.join(e[0] for e in cycle)} -> "
                                 f"{cycle[0][0]})", hint="snnc reads feed-forward NIR graphs only")
    rank = {k: i for i, k in enumerate(flat.nodes)}
    return list(nx.lexicographical_topological_sort(dg, key=lambda k: rank[k]))


def _choose_dt(graph: Any, flat: Flat, dt: float | None, source: str) -> tuple[float, str]:
    """(dt, where it came from): given, snnc's record in the file, or DEFAULT_DT with a warning."""
    import json

    if dt is not None:
        if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
            raise UnsupportedAttributeError(f"dt must be a positive number of seconds, got {dt!r}")
        return float(dt), "given"
    raw = (graph.metadata or {}).get(META_KEY)
    if raw is not None:
        try:
            return float(json.loads(raw if isinstance(raw, str) else bytes(raw).decode())["dt"]), "metadata"
        except (ValueError, KeyError, TypeError):
            pass
    neurons = [k for k, n in flat.nodes.items() if n is not PASS and type(n).__name__ in NEURON_TYPES]
    if neurons:
        warnings.warn(f"{source}: NIR graphs carry no time step; discretising its neurons ({', '.join(neurons[:4])}"
                      f"{', ...' if len(neurons) > 4 else ''}) with dt={DEFAULT_DT} s (the SpikingJelly/snnTorch "
                      "convention); choose the file's own with " + spelling.flag("dt"), stacklevel=4)
    return DEFAULT_DT, "default"


def _summed(g: Graph, xs: list[str], key: str, loc: SourceLoc) -> str | None:
    """NIR sums the edges entering a node: one Add per extra input."""
    if not xs:
        return None
    acc = xs[0]
    for i, x in enumerate(xs[1:]):
        acc = g.add(ops.Add(name=g.fresh_name(f"{key}_in{i + 1}"), inputs=(acc, x), loc=loc))
    return acc


def _param(g: Graph, key: str, field: str, value: Any) -> str:
    return g.add_param(f"{key}.{field}", torch.from_numpy(np.array(value, dtype=np.float32, copy=True)))


def _pair(v: Any) -> tuple[int, int]:
    a = np.asarray(v).reshape(-1)
    return (int(a[0]), int(a[0])) if a.size == 1 else (int(a[0]), int(a[1]))


# -- one lowering per NIR node type: (context, node, key, summed input, loc, where) -> the IR value
def _input(ctx: _Context, node: Any, key: str, x: str | None, loc: SourceLoc, where: str) -> str:
    feats = tuple(int(d) for d in np.asarray(node.input_type["input"]).reshape(-1))
    if not feats:
        raise UnsupportedAttributeError(f"{where} has an empty (scalar) type; snnc needs feature dims")
    g = ctx.g
    return g.add(ops.Input(name=g.fresh_name(key), type=TensorType(shape=("T", "N", *feats), layout=Layout.TNX)))


def _output(ctx: _Context, node: Any, key: str, x: str, loc: SourceLoc, where: str) -> str:
    return ctx.g.add(ops.Output(name=ctx.g.fresh_name(key), inputs=(x,)))


def _affine(ctx: _Context, node: Any, key: str, x: str, loc: SourceLoc, where: str) -> str:
    import nir

    g = ctx.g
    w = np.asarray(node.weight)
    if w.ndim != 2:
        raise UnsupportedAttributeError(f"{where} has a {w.ndim}-D weight; snnc reads [out, in] matrices")
    bias = None
    if isinstance(node, nir.Affine):
        b = np.asarray(node.bias)
        if b.size != w.shape[0]:
            raise MalformedFileError(f"{where} has a bias of {b.size} values for {w.shape[0]} outputs "
                                     f"(weight {list(w.shape)}); it cannot be added")
        bias = _param(g, key, "bias", b.reshape(-1))  # NIR writers store [out] or [1, out]
    weight = _param(g, key, "weight", w)
    return g.add(ops.Linear(name=g.fresh_name(key), inputs=(x,), loc=loc, weight=weight, bias=bias))


def _conv2d(ctx: _Context, node: Any, key: str, x: str, loc: SourceLoc, where: str) -> str:
    return ctx.g.add(_conv(ctx.g, node, key, ctx.g.fresh_name(key), x, loc, where))


def _flatten(ctx: _Context, node: Any, key: str, x: str, loc: SourceLoc, where: str) -> str:
    return ctx.g.add(ops.Flatten(name=ctx.g.fresh_name(key), inputs=(x,), loc=loc, start_dim=int(node.start_dim),
                                 end_dim=int(node.end_dim)))


def _pool(ctx: _Context, node: Any, key: str, x: str, loc: SourceLoc, where: str) -> str:
    import nir

    return ctx.g.add(ops.AvgPool2d(name=ctx.g.fresh_name(key), inputs=(x,), loc=loc,
                                   kernel_size=_pair(node.kernel_size), stride=_pair(node.stride),
                                   padding=_pair(node.padding),
                                   divisor_override=1 if isinstance(node, nir.SumPool2d) else None))


def _scale_node(ctx: _Context, node: Any, key: str, x: str, loc: SourceLoc, where: str) -> str:
    return ctx.g.add(_scale(ctx.g, node, key, ctx.g.fresh_name(key), x, loc, where))


def _threshold(ctx: _Context, node: Any, key: str, x: str, loc: SourceLoc, where: str) -> str:
    """NIR Threshold: the Heaviside step of x - threshold (per-element thresholds as a parameter)."""
    g = ctx.g
    thr = values(node.threshold, "threshold", where)
    name = g.fresh_name(key)
    if isinstance(thr, np.ndarray):
        return g.add(ops.Threshold(name=name, inputs=(x,), loc=loc, fire=ctx.fire,
                                   threshold_param=_param(g, key, "threshold", thr)))
    return g.add(ops.Threshold(name=name, inputs=(x,), loc=loc, fire=ctx.fire, threshold=clean(thr)))


def _neuron(ctx: _Context, node: Any, key: str, x: str, loc: SourceLoc, where: str) -> str:
    """IF, LIF, CubaLIF, CubaLI, LI, I: the exact op from snnc's metadata, else the NIR equations (with dt)."""
    g = ctx.g
    name = g.fresh_name(key)
    op = exact_op(node, name, x, loc) if ctx.use_metadata else None
    if op is not None:
        return g.add(op)
    spec = from_nir_node(node, name, x, loc, ctx.dt, ctx.fire, where)
    refs = {f: _param(g, key, f.removesuffix("_param"), v) for f, v in spec.arrays.items()}
    op = spec.op.replace(**refs) if refs else spec.op
    if isinstance(spec.pre, np.ndarray):  # r (and w_in) per neuron: a per-element Scale in front
        pre = g.add(ops.Scale(name=g.fresh_name(f"{key}_r"), inputs=(x,), loc=loc,
                              weight=_param(g, key, "input_scale", spec.pre)))
        op = op.replace(inputs=(pre,))
    elif spec.pre != 1.0:  # NIR's r (w_in, dt) scales the input current
        pre = g.add(ops.Scale(name=g.fresh_name(f"{key}_r"), inputs=(x,), loc=loc, factor=spec.pre))
        op = op.replace(inputs=(pre,))
    return g.add(op)


def _delay(ctx: _Context, node: Any, key: str, x: str, loc: SourceLoc, where: str) -> str:
    """NIR's Delay (seconds, per element) as whole steps of dt; refused when a delay is not a whole step."""
    g, dt = ctx.g, ctx.dt
    name = g.fresh_name(key)
    d = np.asarray(node.delay, dtype=np.float64).reshape(-1)
    steps = d / dt
    whole = np.round(steps)
    if d.size == 0 or not np.all(np.isfinite(steps)) or (whole < 0).any() or \
            not np.allclose(steps, whole, rtol=1e-6, atol=1e-6):
        raise UnsupportedAttributeError(f"{where}: delays {d[:4].tolist()} s are not whole steps of dt={dt} s",
                                        hint="pass the dt the file was made for (dt=...)")
    if np.all(whole == whole[0]):
        return g.add(ops.Delay(name=name, inputs=(x,), loc=loc, steps=int(whole[0])))
    feats = tuple(int(v) for v in g.infer_forward()[x].features)
    if whole.size != int(np.prod(feats)):
        raise UnsupportedAttributeError(f"{where}: {whole.size} delays for a value of {list(feats)}")
    delays = _param(g, key, "delay", whole.reshape(feats))
    return g.add(ops.Delay(name=name, inputs=(x,), loc=loc, steps=int(whole.max()), delays=delays))


# NIR node type -> its lowering.
LOWERINGS: dict[str, Callable[..., str]] = {
    "Input": _input, "Output": _output, "Affine": _affine, "Linear": _affine, "Scale": _scale_node,
    "Conv2d": _conv2d, "Flatten": _flatten, "SumPool2d": _pool, "AvgPool2d": _pool, "Threshold": _threshold,
    "Delay": _delay,
    **{kind: _neuron for kind in NEURON_TYPES},
}
SUPPORTED = tuple(LOWERINGS)


def _conv(g: Graph, node: Any, key: str, name: str, x: str, loc: SourceLoc, where: str) -> ops.Conv2d:
    w = np.asarray(node.weight)
    if w.ndim != 4:
        raise UnsupportedAttributeError(f"{where} has a {w.ndim}-D weight; Conv2d needs [Cout, Cin/groups, kH, kW]")
    dilation = _pair(node.dilation)
    padding = node.padding
    if isinstance(padding, bytes):
        padding = padding.decode()
    if isinstance(padding, np.ndarray) and padding.dtype.kind in "SUO":
        padding = str(padding.reshape(-1)[0].decode() if isinstance(padding.reshape(-1)[0], bytes) else padding)
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same":
            padding = same_padding(tuple(w.shape[2:]), dilation, where)
        else:
            raise UnsupportedAttributeError(f"{where} has padding {padding!r}")
    weight = _param(g, key, "weight", w)
    # NIR's Conv2d always has a bias; an all-zero one is what a bias-free conv is written as
    bias = None if node.bias is None or not np.any(np.asarray(node.bias)) else _param(g, key, "bias", node.bias)
    return ops.Conv2d(name=name, inputs=(x,), loc=loc, weight=weight, bias=bias, stride=_pair(node.stride), padding=_pair(padding),
                      dilation=dilation, groups=int(np.asarray(node.groups).reshape(-1)[0]))


def _scale(g: Graph, node: Any, key: str, name: str, x: str, loc: SourceLoc, where: str) -> ops.Scale:
    s = np.asarray(node.scale, dtype=np.float32)
    if s.size == 0:
        raise MalformedFileError(f"{where} has an empty scale")
    flat = s.reshape(-1)
    if np.all(flat == flat[0]):
        return ops.Scale(name=name, inputs=(x,), loc=loc, factor=clean(uniform(flat, "scale", where)))
    per_channel = s.reshape(s.shape[0], -1)
    if s.ndim >= 1 and np.all(per_channel == per_channel[:, :1]):
        return ops.Scale(name=name, inputs=(x,), loc=loc, weight=_param(g, key, "scale", per_channel[:, 0]))
    return ops.Scale(name=name, inputs=(x,), loc=loc, weight=_param(g, key, "scale", s))  # per element
