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
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

import numpy as np

from snnc.core.dynamics import FireCompare
from snnc.ir import ops
from snnc.ir.ops import OP_ADAPTER

META_KEY = "snnc"  # node metadata: the exact IR op as JSON (plus dt), read back by snnc
DEFAULT_DT = 1e-4  # seconds; SpikingJelly's and snnTorch's choice


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


def leak_target(op: ops.NeuronOp) -> float:
    return op.to_params().leak_target


def nir_params(op: ops.NeuronOp, dt: float, *, soft_as_hard: bool, ge: Literal["nextafter", "keep"]) -> dict:
    """NIR parameters (scalars) of an IR neuron; raises ValueError naming what NIR cannot express."""
    if isinstance(op.reset, ops.NoReset):
        raise ValueError("it never resets (reset=none), which no NIR neuron does")
    if isinstance(op.reset, ops.SoftReset) and not soft_as_hard:
        raise ValueError("it resets by subtraction (soft reset), which NIR cannot express")
    v_reset = op.reset.v_reset  # 0 for a soft reset written as a hard one
    thr = below(op.v_threshold) if op.fire is FireCompare.GE and ge == "nextafter" else op.v_threshold
    p: dict[str, float] = {"v_threshold": thr, "v_reset": v_reset}
    if isinstance(op, ops.LIF):
        p.update(tau=op.tau * dt, r=1.0 if op.decay_input else op.tau, v_leak=leak_target(op))
    else:
        p.update(r=1.0 / dt)
    return p


def to_nir_node(op: ops.NeuronOp, features: tuple[int, ...], dt: float, *, soft_as_hard: bool,
                ge: Literal["nextafter", "keep"], metadata: bool):
    """The nir.IF / nir.LIF node for an IR neuron with per-sample shape `features`."""
    import nir

    p = nir_params(op, dt, soft_as_hard=soft_as_hard, ge=ge)
    arrays = {k: _full(v, features) for k, v in p.items()}
    meta = {}
    if metadata:
        exact = OP_ADAPTER.dump_python(op, mode="json")
        for k in ("name", "inputs", "loc"):
            exact.pop(k, None)
        meta = {META_KEY: json.dumps({"op": exact, "dt": dt}, sort_keys=True)}
    if isinstance(op, ops.LIF):
        return nir.LIF(tau=arrays["tau"], r=arrays["r"], v_leak=arrays["v_leak"], v_threshold=arrays["v_threshold"],
                       v_reset=arrays["v_reset"], metadata=meta)
    return nir.IF(r=arrays["r"], v_threshold=arrays["v_threshold"], v_reset=arrays["v_reset"], metadata=meta)


# ---------------------------------------------------------------- import
def uniform(value: Any, field: str, where: str) -> float:
    """The single value of a per-neuron parameter array; IR neurons have one value per layer."""
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{where}: parameter {field} is empty")
    if not np.all(arr == arr[0]):
        raise ValueError(f"{where}: parameter {field} differs between neurons "
                         f"(min {arr.min():g}, max {arr.max():g}); IR neurons take one value per layer")
    return float(arr[0])


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


def from_nir_node(node: Any, name: str, x: str, loc: ops.SourceLoc, dt: float, fire: FireCompare,
                  where: str) -> tuple[float, ops.NeuronOp]:
    """(input scale, IR op) for a nir.IF / nir.LIF node; raises ValueError for what the IR cannot express."""
    import nir

    v_thr = clean(uniform(node.v_threshold, "v_threshold", where))
    v_reset = clean(uniform(node.v_reset, "v_reset", where))
    r = uniform(node.r, "r", where)
    common = dict(name=name, inputs=(x,), loc=loc, v_threshold=v_thr, reset=ops.HardReset(v_reset=v_reset), fire=fire)
    if isinstance(node, nir.IF):
        return ratio(dt * r), ops.IF(**common)
    tau_s = ratio(uniform(node.tau, "tau", where) / dt)
    v_leak = clean(uniform(node.v_leak, "v_leak", where))
    if tau_s < 1.0:
        raise ValueError(f"{where}: tau/dt = {tau_s:g} steps is below 1 (dt={dt:g} is too coarse for this tau); "
                         "choose a smaller dt")
    if v_leak != v_reset:
        raise ValueError(f"{where}: v_leak={v_leak:g} differs from v_reset={v_reset:g}; IR LIF neurons leak "
                         "towards their reset value")
    r = ratio(r)
    if r == tau_s:
        return 1.0, ops.LIF(**common, tau=tau_s, decay_input=False)
    return r, ops.LIF(**common, tau=tau_s, decay_input=True)


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
    if not isinstance(op, ops.NeuronOp):
        return None
    try:
        p = nir_params(op, dt, soft_as_hard=True, ge="nextafter")
        p_keep = nir_params(op, dt, soft_as_hard=True, ge="keep")
    except ValueError:
        return None
    for expected in (p, p_keep):  # the metadata must describe these very parameters (not an edited file)
        if all(np.allclose(np.asarray(getattr(node, k), dtype=np.float64), v, rtol=1e-6, atol=0)
               for k, v in expected.items()):
            return op
    return None
