"""The NIR <-> IR neuron mapping, both directions (docs/nir.md explains every choice).

NIR neurons are ODEs; an IR neuron is their forward-Euler discretisation with
a time step dt. With tau_s = tau / dt (the time constant in steps):

    NIR IF:   dv/dt = r I                        ->  V += dt r I
    NIR LIF:  tau dv/dt = v_leak - v + r I       ->  V += (v_leak - V + r I) / tau_s

so IR `IF` is NIR IF with r = 1/dt; IR `LIF` is NIR LIF with tau = tau_s dt,
v_leak = the leak target, and r = 1 (decay_input=True) or r = tau_s
(decay_input=False). A NIR neuron with another r gets an explicit Scale in
front. What NIR cannot say (soft reset, firing at equality, the initial
potential) is handled by explicit options and written exactly into the node's
metadata under "snnc", which snnc reads back.

The current-based neurons filter their input first (the current is updated
before the voltage, as Loihi and snnTorch do):

    NIR CubaLIF/CubaLI:  tau_syn dI/dt = -I + w_in X;  tau_mem dv/dt = v_leak - v + r I
    ->  I' = (1 - a) I' + a w_in r X  with a = dt / tau_syn (current_decay), I' = r I
        V += (v_leak - V + I') / (tau_mem / dt)

so they are IR `LIF`/`LI` with current_decay = a after a Scale(a w_in r).
NIR `LI` is IR `LI` (never fires; outputs V), NIR `I` is IR `Integrator` after
Scale(r dt). A parameter that differs between neurons becomes a per-neuron
parameter of the op (`*_param`), or a per-element Scale for r and w_in.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from snnc.core.dynamics import FireCompare, NeuronKind
from snnc.ir import ops
from snnc.ir.annotations import register_annotation
from snnc.ir.ops import OP_ADAPTER

META_KEY = "snnc"  # node metadata: the exact IR op as JSON (plus dt), read back by snnc
DEFAULT_DT = 1e-4  # seconds; SpikingJelly's and snnTorch's choice
SOURCE_KEY = "nir"  # graph.meta[SOURCE_KEY]: a NirSource


@register_annotation(SOURCE_KEY)
class NirSource(BaseModel):
    """A graph read from NIR: the time step its neurons were discretised with, and where it came from."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    dt: float = Field(gt=0)
    dt_from: Literal["given", "metadata", "default"]  # dt=/--dt, snnc's record in the file, DEFAULT_DT
    source: str = ""

    @classmethod
    def of(cls, graph) -> "NirSource | None":
        info = graph.meta.get(SOURCE_KEY)
        return info if info is None or isinstance(info, cls) else cls.model_validate(info)


def clean(x: float) -> float:
    """A value read from float32 storage, as the shortest decimal of its float32 (0.99999994, -0.1)."""
    return float(str(np.float32(x))) if math.isfinite(x) else x


def ratio(x: float) -> float:
    """A quotient of float32 values (tau/dt, r*dt) to float32's 7 significant digits: 3.0000001424 -> 3.0."""
    return float(f"{x:.7g}") if math.isfinite(x) else x


def below(threshold: float) -> float:
    """The largest float32 below `threshold`: in float32, v >= threshold exactly when v > below(threshold)."""
    return float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))


def _full(value: float, shape: tuple[int, ...]) -> np.ndarray:
    return np.full(shape, value, dtype=np.float32)


Array = "float | np.ndarray"
NEURON_TYPES = ("IF", "LIF", "CubaLIF", "CubaLI", "LI", "I")


def leak_target(op: ops.NeuronOp) -> float:
    return op.to_params().leak_target


def _array(params: dict[str, np.ndarray], op: ops.NeuronOp, field_name: str, scalar: float) -> "float | np.ndarray":
    """The per-neuron values of `field_name` (from the graph's parameters) or the scalar."""
    ref = getattr(op, f"{field_name}_param", None)
    if ref is None:
        return scalar
    return np.asarray(params[ref], dtype=np.float64)


def nir_params(op: ops.NeuronOp, dt: float, *, soft_as_hard: bool, ge: Literal["nextafter", "keep"],
               params: dict[str, np.ndarray] | None = None) -> dict:
    """NIR parameters (scalars, or arrays for per-neuron values) of an IR neuron, with "type" the NIR node type;
    raises ValueError naming what NIR cannot express."""
    params = params or {}
    spiking = not isinstance(op, (ops.LI, ops.Integrator))
    if spiking and isinstance(op.reset, ops.NoReset):
        raise ValueError("it never resets (reset=none), which no NIR neuron does")
    if isinstance(op.reset, ops.SoftReset) and not soft_as_hard:
        raise ValueError("it resets by subtraction (soft reset), which NIR cannot express")
    cd = _array(params, op, "current_decay", op.current_decay)
    current = op.has_current
    if current and np.any(np.asarray(cd) == 0.0):
        raise ValueError("its synaptic current never decays (current_decay=0), which needs tau_syn = infinity")
    lif = op.to_params().kind is NeuronKind.LIF
    p: dict[str, Any] = {}
    if spiking:
        thr = _array(params, op, "v_threshold", op.v_threshold)
        if op.fire is FireCompare.GE and ge == "nextafter":
            thr = np.nextafter(np.float32(thr), np.float32(-np.inf)).astype(np.float64) \
                if isinstance(thr, np.ndarray) else below(thr)
        p.update(v_threshold=thr, v_reset=_array(params, op, "v_reset", op.reset.v_reset))
    if isinstance(op, ops.CubaLIF) and lif:
        tau_s, decay_input = 1.0 / op.voltage_decay, False
    elif lif:
        tau_s, decay_input = _array(params, op, "tau", op.tau), op.decay_input
    if lif:
        v_leak = _array(params, op, "v_leak", op.v_leak) if op.v_leak is not None or op.v_leak_param else \
            (p["v_reset"] if spiking and isinstance(op.reset, ops.HardReset) else 0.0)
        r = 1.0 if decay_input else tau_s
        if current:
            p.update(type="CubaLI" if not spiking else "CubaLIF", tau_syn=dt / np.asarray(cd) if isinstance(cd, np.ndarray)
                     else dt / cd, tau_mem=np.asarray(tau_s) * dt if isinstance(tau_s, np.ndarray) else tau_s * dt,
                     r=r, v_leak=v_leak, w_in=1.0 / np.asarray(cd) if isinstance(cd, np.ndarray) else 1.0 / cd)
        else:
            p.update(type="LIF" if spiking else "LI",
                     tau=np.asarray(tau_s) * dt if isinstance(tau_s, np.ndarray) else tau_s * dt, r=r, v_leak=v_leak)
    else:
        if current:
            raise ValueError("an integrator without leak keeps a synaptic current; NIR has no such neuron "
                             "(its CubaLIF/CubaLI leak)")
        if op.v_leak is not None or op.v_leak_param:
            raise ValueError("an IF neuron has no leak, so no v_leak")
        p.update(type="IF" if spiking else "I", r=1.0 / dt)
    return p


def to_nir_node(op: ops.NeuronOp, features: tuple[int, ...], dt: float, *, soft_as_hard: bool,
                ge: Literal["nextafter", "keep"], metadata: bool, params: dict[str, np.ndarray] | None = None):
    """The NIR neuron node (IF, LIF, CubaLIF, LI, CubaLI, I) for an IR neuron with per-sample shape `features`."""
    import nir

    p = nir_params(op, dt, soft_as_hard=soft_as_hard, ge=ge, params=params)
    kind = p.pop("type")
    arrays = {k: np.broadcast_to(np.asarray(v, dtype=np.float32), features).copy() for k, v in p.items()}
    meta = {}
    if metadata and not op.param_refs():  # per-neuron values: the NIR arrays are the whole record
        exact = OP_ADAPTER.dump_python(op, mode="json")
        for k in ("name", "inputs", "loc"):
            exact.pop(k, None)
        meta = {META_KEY: json.dumps({"op": exact, "dt": dt}, sort_keys=True)}
    return getattr(nir, kind)(**arrays, metadata=meta)


# ---------------------------------------------------------------- import
def uniform(value: Any, field: str, where: str) -> float:
    """The single value of a parameter array that must be the same for every element."""
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{where}: parameter {field} is empty")
    if not np.all(arr == arr[0]):
        raise ValueError(f"{where}: parameter {field} differs between neurons "
                         f"(min {arr.min():g}, max {arr.max():g}); snnc takes one value here")
    return float(arr[0])


def values(value: Any, field: str, where: str) -> "float | np.ndarray":
    """A per-neuron parameter: one float when every neuron has the same value, else the float64 array."""
    arr = np.asarray(value, dtype=np.float64)
    flat = arr.reshape(-1)
    if flat.size == 0:
        raise ValueError(f"{where}: parameter {field} is empty")
    if not np.all(np.isfinite(flat)):
        raise ValueError(f"{where}: parameter {field} is not finite")
    return float(flat[0]) if np.all(flat == flat[0]) else arr


def _map(f, v: "float | np.ndarray") -> "float | np.ndarray":
    return f(v) if not isinstance(v, np.ndarray) else np.vectorize(f, otypes=[np.float64])(v)


@dataclass
class NeuronSpec:
    """An IR neuron read from a NIR node: the op (scalar fields), its per-neuron arrays (op field -> values,
    to become graph parameters) and the scale of its input (a float or per-element values)."""

    op: ops.NeuronOp
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    pre: "float | np.ndarray" = 1.0


def metadata_op(node: Any) -> tuple[dict, float] | None:
    """(IR op fields, dt) recorded by snnc in a node's metadata, or None."""
    raw = (getattr(node, "metadata", None) or {}).get(META_KEY)
    if raw is None:
        return None
    try:
        doc = json.loads(raw if isinstance(raw, str) else bytes(raw).decode())
        return dict(doc["op"]), float(doc["dt"])
    except (ValueError, KeyError, TypeError):
        return None


def _steps(tau: "float | np.ndarray", dt: float, field_name: str, where: str) -> "float | np.ndarray":
    """tau / dt in steps (7 significant digits), refused below one step."""
    tau_s = _map(lambda t: ratio(t / dt), tau)
    low = float(np.min(tau_s))
    if low < 1.0:
        raise ValueError(f"{where}: {field_name}/dt = {low:g} steps is below 1 (dt={dt:g} is too coarse for this "
                         f"{field_name}); choose a smaller dt")
    return tau_s


def from_nir_node(node: Any, name: str, x: str, loc: ops.SourceLoc, dt: float, fire: FireCompare,
                  where: str) -> NeuronSpec:
    """The IR neuron for a NIR IF, LIF, CubaLIF, CubaLI, LI or I node; raises ValueError for what the IR
    cannot express."""
    kind = type(node).__name__
    get = {f: values(getattr(node, f), f, where) for f in
           ("r", "v_threshold", "v_reset", "v_leak", "tau", "tau_mem", "tau_syn", "w_in", "threshold")
           if getattr(node, f, None) is not None}
    arrays: dict[str, np.ndarray] = {}
    fields: dict[str, Any] = dict(name=name, inputs=(x,), loc=loc)

    def put(op_field: str, v: "float | np.ndarray", clean_it: bool = True) -> None:
        if isinstance(v, np.ndarray):
            arrays[op_field] = v
        else:
            fields[op_field] = clean(v) if clean_it else v

    spiking = kind in ("IF", "LIF", "CubaLIF")
    if spiking:
        put("v_threshold", get["v_threshold"])
        v_reset = get.get("v_reset", 0.0)
        fields["reset"] = ops.HardReset(v_reset=0.0 if isinstance(v_reset, np.ndarray) else clean(v_reset))
        if isinstance(v_reset, np.ndarray):
            arrays["v_reset"] = v_reset
        fields["fire"] = fire
    r = get["r"]
    if kind in ("IF", "I"):
        cls = ops.IF if kind == "IF" else ops.Integrator
        return NeuronSpec(cls(**fields), _param_names(arrays), _map(lambda v: ratio(dt * v), r))
    current = kind.startswith("Cuba")
    tau_s = _steps(get["tau_mem" if current else "tau"], dt, "tau_mem" if current else "tau", where)
    put("tau", tau_s, clean_it=False)
    v_leak = get["v_leak"]
    default_leak = get.get("v_reset", 0.0) if spiking else 0.0
    shape = np.broadcast(np.asarray(v_leak), np.asarray(default_leak)).shape
    if not np.array_equal(np.broadcast_to(v_leak, shape), np.broadcast_to(default_leak, shape)):
        put("v_leak", v_leak)  # the leak pulls towards another value than the reset
    pre: "float | np.ndarray" = _map(ratio, r)
    if current:
        steps_syn = _steps(get["tau_syn"], dt, "tau_syn", where)
        cd = _map(lambda s: ratio(1.0 / s), steps_syn)
        put("current_decay", cd, clean_it=False)
        pre = _map(ratio, np.asarray(r, dtype=np.float64) * np.asarray(get.get("w_in", 1.0), dtype=np.float64) * cd) \
            if any(isinstance(v, np.ndarray) for v in (r, get.get("w_in", 1.0), cd)) else ratio(r * _unit(get.get("w_in", 1.0) * cd))
    decay_input = True
    if not isinstance(pre, np.ndarray) and not isinstance(tau_s, np.ndarray) and pre == tau_s:
        pre, decay_input = 1.0, False  # r = tau/dt: no input decay (SpikingJelly's decay_input=False, snnTorch)
    fields["decay_input"] = decay_input
    cls = ops.LIF if spiking else ops.LI
    return NeuronSpec(cls(**fields), _param_names(arrays), pre)


def _unit(x: float) -> float:
    """w_in * current_decay as 1 when it is 1 up to float64 rounding (snnc writes w_in = 1 / current_decay)."""
    return 1.0 if abs(x - 1.0) <= 4 * np.finfo(np.float64).eps else x


def _param_names(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {f"{k}_param": v for k, v in arrays.items()}


def exact_op(node: Any, name: str, x: str, loc: ops.SourceLoc) -> ops.NeuronOp | None:
    """The IR op snnc recorded in the node's metadata, if it still matches the node's NIR parameters."""
    rec = metadata_op(node)
    if rec is None:
        return None
    fields, dt = rec
    try:
        op = OP_ADAPTER.validate_python({**fields, "name": name, "inputs": [x], "loc": loc})
    except Exception:  # noqa: BLE001 - stale or foreign metadata: fall back to the NIR parameters
        return None
    if not isinstance(op, ops.NeuronOp) or op.param_refs():
        return None
    try:
        p = nir_params(op, dt, soft_as_hard=True, ge="nextafter")
        p_keep = nir_params(op, dt, soft_as_hard=True, ge="keep")
    except ValueError:
        return None
    for expected in (p, p_keep):  # the metadata must describe these very parameters (not an edited file)
        if expected.pop("type") != type(node).__name__:
            return None
        if all(getattr(node, k, None) is not None and
               np.allclose(np.asarray(getattr(node, k), dtype=np.float64), v, rtol=1e-6, atol=0)
               for k, v in expected.items()):
            return op
    return None
