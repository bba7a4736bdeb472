"""lava-dl slayer blocks for a graph: the seed's BlockContainer idea, made from the NetX layers.

Each NetX layer becomes the slayer block that exports it (`cuba.Input`,
`cuba.Conv`, `cuba.Flatten`, `cuba.Dense`), with the synapse weight set to
W / 64 and the neuron to threshold vThMant / 64, current_decay iDecay / 4096,
voltage_decay vDecay / 4096, so slayer's own quantization (2 round(64 w / 2),
int(64 threshold), round(4096 decay)) gives back exactly our integers and
`block.export_hdf5` writes the same layer as snnc's writer.
"""

from __future__ import annotations

from snnc.backends.lava.quantize import QuantizeLoihi
from snnc.core.errors import LoweringError
from snnc.ir.formats.netx import network_from_graph
from snnc.ir.graph import Graph

W_SCALE = 64


def _slayer():
    try:
        import torch  # noqa: F401
        from lava.lib.dl import slayer
    except ImportError as e:
        raise LoweringError(f"to_blocks needs lava-dl with torch ({e})",
                            hint="build the environment with scripts/lava_env.sh --full (Python 3.10) and run there"
                            ) from None
    return slayer


def to_blocks(graph: Graph, **quantize_options) -> list:
    """slayer blocks (a list, in order) equivalent to the NetX network of `graph`.

    Biases have no slayer block field, so graphs with biases are refused.
    """
    slayer = _slayer()
    import torch

    net = network_from_graph(QuantizeLoihi(**quantize_options)(graph))
    blocks = []
    for lay in net.layers:
        if lay.bias is not None and lay.type != "input":
            raise LoweringError(f"layer %{lay.name} has a bias, which slayer blocks cannot hold",
                                hint="export with snnc (snnc.compile(..., target='lava')) instead")
        params = None
        if lay.neuron is not None:
            n = lay.neuron
            params = {"threshold": n.v_th_mant / W_SCALE, "current_decay": n.i_decay / 4096,
                      "voltage_decay": n.v_decay / 4096, "scale": W_SCALE}
        if lay.type == "input":
            if params is not None:
                blocks.append(slayer.block.cuba.Input(params))
            continue
        if lay.type == "flatten":
            blocks.append(slayer.block.cuba.Flatten())
        elif lay.type == "dense":
            b = slayer.block.cuba.Dense(params, lay.weight.shape[1], lay.weight.shape[0])
            b.synapse.weight.data = torch.from_numpy(lay.weight).float().reshape(b.synapse.weight.shape) / W_SCALE
            blocks.append(b)
        else:
            cout, cin_g, kh, kw = lay.weight.shape
            b = slayer.block.cuba.Conv(params, cin_g * lay.groups, cout, (kh, kw), stride=lay.stride,
                                       padding=lay.padding, dilation=lay.dilation, groups=lay.groups)
            b.synapse.weight.data = torch.from_numpy(lay.weight).float().reshape(b.synapse.weight.shape) / W_SCALE
            blocks.append(b)
    with torch.no_grad():  # slayer learns neuron shapes on the first forward pass
        x = torch.zeros(1, *net.input_shape, 1)
        for b in blocks:
            x = b(x)
    return blocks
