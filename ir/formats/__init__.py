"""On-disk formats that more than one layer reads: the artifact manifest, the NIR neuron codec, the NetX codec.

The .snnir graph file itself is snnc.ir.serialize.
"""
