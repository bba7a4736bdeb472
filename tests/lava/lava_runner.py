"""Run a NetX file on Lava's CPU simulator (Loihi2SimCfg, fixed point); imported by the lava-marked tests.

Lava works in (x, y, z) = (W, H, C) order; this module takes and returns snnc's
(C, H, W) order: inputs [T, *in_chw] integers for one sample, outputs a list of
[T, *out_chw] spike arrays, one per netx layer (block), in order.
"""

from __future__ import annotations

import numpy as np


def _to_xyz(a: np.ndarray) -> np.ndarray:
    return a.transpose(*range(a.ndim - 1, -1, -1))


def run_netx(path: str, inputs: np.ndarray, *, input_message_bits: int = 0, input_neuron: bool = False,
             reset_interval: int | None = None) -> list:
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc import io

    T = inputs.shape[0]
    net = netx.hdf5.Network(net_config=str(path), input_message_bits=input_message_bits,
                            reset_interval=reset_interval)
    data = np.stack([_to_xyz(inputs[t]) for t in range(T)], axis=-1).astype(np.int32)  # (*xyz, T)
    src = io.source.RingBuffer(data=data)
    if input_neuron:
        src.s_out.connect(net.in_layer.neuron.a_in)
    else:
        src.s_out.connect(net.inp)
    sinks = []
    for layer in net.layers:
        sink = io.sink.RingBuffer(shape=layer.out.shape, buffer=T)
        layer.out.connect(sink.a_in)
        sinks.append(sink)
    try:
        net.run(condition=RunSteps(num_steps=T), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        outs = [s.data.get() for s in sinks]  # (*xyz, T)
    finally:
        net.stop()
    return [np.stack([_to_xyz(o[..., t]) for t in range(T)]) for o in outs]
