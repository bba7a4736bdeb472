"""snnc: a compiler for spiking neural networks.

    graph = snnc.convert(model, calibration_data, mode="99.9%")   # ANN -> SNN IR
    artifact = snnc.compile(graph, target="cpu", output="out/")    # lower to a target
    session = snnc.load("out/")                                     # run it
    spikes = session.run(x, T=32)
"""

__version__ = "0.1.0"

_API = {"convert", "compile", "load", "trace"}


def __getattr__(name: str):
    # The API pulls in torch.fx, passes and backends: import it on first use only,
    # so `import snnc.ir` stays light.
    if name in _API:
        from snnc import api

        return getattr(api, name)
    raise AttributeError(f"module 'snnc' has no attribute {name!r}")
