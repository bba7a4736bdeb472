"""Which dtype each op of the lowered network computes in (mixed precision for float16).

With `dtype=f16` the spiking core of the network runs in float16: every op
that has a neuron both before it and after it (the convolutions and linear
layers on spikes, which are nearly all of the multiply-accumulates). Two
kinds of op get their own dtype, float32 by default:

* neurons keep their membrane potential, and compute charge/fire/reset, in
  `state_dtype`; they cast their input to it and their spikes (exactly 0 or 1)
  back to the core dtype;
* the analog head and tail, ops with no neuron before them (the encoding
  layer that reads the input) or none after them (the readout), compute in
  `analog_dtype`, and so do the graph's inputs and analog outputs.

Float16 there is what makes spikes differ from the float32 reference: a
neuron fed a constant input for T steps repeats the same rounding error T
times, and a float16 readout rounds logits whose two best classes may lie
within 0.01 of each other.
"""

from __future__ import annotations

import torch

from snnc.backends.lynxi.options import Options
from snnc.ir import ops
from snnc.ir.graph import Graph


def _neuron_sides(order: list[ops.OpBase]) -> tuple[set[str], set[str]]:
    """(ops with a neuron somewhere before them, ops with a neuron somewhere after them)."""
    neurons = {op.name for op in order if ops.is_neuron(op)}
    after: set[str] = set()
    for op in order:
        if any(i in after or i in neurons for i in op.inputs):
            after.add(op.name)
    before: set[str] = set()
    for op in reversed(order):  # an op is before a neuron when one of its users is, or is one
        if op.name in before:
            for i in op.inputs:
                before.add(i)
        if op.name in neurons:
            before.update(op.inputs)
    return after, before


def op_dtypes(graph: Graph, options: Options) -> dict[str, torch.dtype]:
    """IR value -> the torch dtype its op computes and returns it in (neurons: the dtype of their spikes).

    Graph inputs and analog-region ops get `analog_dtype`, the spiking core
    gets `dtype`, neurons return spikes in `dtype`, and an Output keeps the
    dtype of the value it returns.
    """
    core, analog = options.torch_dtype, options.analog_dtype.torch
    order = list(graph)
    after, before = _neuron_sides(order)
    dtypes: dict[str, torch.dtype] = {}
    charge = _charge_ops(order)
    for op in order:
        if isinstance(op, ops.Output):
            dtypes[op.name] = dtypes[op.inputs[0]]
        elif ops.is_neuron(op):
            dtypes[op.name] = core
        elif op.name in charge and op.name in after:
            dtypes[op.name] = options.state_torch_dtype
        else:
            dtypes[op.name] = core if op.name in after and op.name in before else analog
    return dtypes


_ELEMENTWISE = (ops.Scale, ops.Add, ops.BatchNorm, ops.Identity)


def _charge_ops(order: list[ops.OpBase]) -> set[str]:
    """Elementwise ops whose every user is a neuron or another such op: part of the neurons' charge."""
    users: dict[str, list[ops.OpBase]] = {op.name: [] for op in order}
    for op in order:
        for i in op.inputs:
            users[i].append(op)
    charge: set[str] = set()
    for op in reversed(order):
        if isinstance(op, _ELEMENTWISE) and users[op.name] and \
                all(ops.is_neuron(u) or u.name in charge for u in users[op.name]):
            charge.add(op.name)
    return charge
