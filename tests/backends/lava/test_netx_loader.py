"""A NetX .net file is recognized by content and read through the generic loader."""

import shutil

import snnc
from snnc.frontends.loader import load_model, sniff
from snnc.runtime.loihi import LoihiSession
from tests.backends.lava.nets import conv_pool_dense, spikes


def test_netx_file_loads_by_content(tmp_path):
    art = snnc.compile(conv_pool_dense(), target="lava", output=tmp_path / "art")
    net = art.path / "net.net"
    odd = tmp_path / "model.bin"  # the suffix says nothing
    shutil.copy(net, odd)
    assert sniff(odd) == "netx"
    graph = load_model(odd)
    x = spikes(12, 2, 2, 8, 8, seed=3)
    assert graph.name and torch_equal(LoihiSession(graph).run(x), LoihiSession(net).run(x))


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))
