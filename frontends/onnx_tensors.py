"""Validate an ONNX model's tensors and read its external data safely, before any tensor is built.

Every tensor (initializers, sparse initializers, tensor attributes such as a
Constant's value, in subgraphs too) has its claimed shape checked against the
tensor limit (snnc.core.limits) and its inline data against that shape. External
data is read here rather than by onnx's helper: its location must stay inside
the model's folder (snnc.core.safety.resolve_inside), its offset and
length must fit the file, and exactly the tensor's bytes are read.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import onnx
from onnx import helper

from snnc.core.errors import MalformedFileError, TensorTooLargeError
from snnc.core.safety import resolve_inside
from snnc.core.limits import check_tensor, max_tensor_bytes, mib

_BITS = {onnx.TensorProto.INT4: 4, onnx.TensorProto.UINT4: 4}
for _name, _bits in (("FLOAT4E2M1", 4), ("INT2", 2), ("UINT2", 2)):
    if hasattr(onnx.TensorProto, _name):
        _BITS[getattr(onnx.TensorProto, _name)] = _bits


def all_tensors(model: onnx.ModelProto) -> Iterator[tuple[str, onnx.TensorProto]]:
    """(description, tensor) for every tensor stored in the model."""
    yield from _graph_tensors(model.graph, "")
    for fn in model.functions:
        yield from _node_tensors(fn.node, f" in function '{fn.name}'")


def _graph_tensors(g: onnx.GraphProto, where: str) -> Iterator[tuple[str, onnx.TensorProto]]:
    for t in g.initializer:
        yield f"initializer '{t.name}'{where}", t
    for s in g.sparse_initializer:
        yield f"sparse initializer '{s.values.name}' (values){where}", s.values
        yield f"sparse initializer '{s.values.name}' (indices){where}", s.indices
    yield from _node_tensors(g.node, where)


def _node_tensors(nodes, where: str) -> Iterator[tuple[str, onnx.TensorProto]]:
    for node in nodes:
        label = node.name or (node.output[0] if node.output else node.op_type)
        for a in node.attribute:
            what = f"attribute '{a.name}' of node '{label}' ({node.op_type}){where}"
            if a.HasField("t"):
                yield what, a.t
            for t in a.tensors:
                yield what, t
            if a.HasField("sparse_tensor"):
                yield what, a.sparse_tensor.values
            sub = [a.g] if a.HasField("g") else []
            for graph in sub + list(a.graphs):
                yield from _graph_tensors(graph, f" in a subgraph of node '{label}'{where}")


def _bits(t: onnx.TensorProto, what: str, source: str) -> int:
    if t.data_type in _BITS:
        return _BITS[t.data_type]
    if t.data_type == onnx.TensorProto.STRING:
        return 8
    try:
        return 8 * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
    except Exception:  # noqa: BLE001 - KeyError/ValueError for an unknown enum value
        raise MalformedFileError(f"{source}: {what} has unknown element type {t.data_type}") from None


def claimed_bytes(t: onnx.TensorProto, what: str, source: str) -> int:
    """The bytes the tensor's dims and type claim; TensorTooLargeError over the limit."""
    bits = _bits(t, what, source)
    check_tensor(what, t.dims, math.ceil(bits / 8), source)
    return math.ceil(math.prod(t.dims) * bits / 8)


def validate(model: onnx.ModelProto, source: str) -> None:
    """Check every tensor's claimed size, and that inline raw data has exactly that size."""
    for what, t in all_tensors(model):
        nbytes = claimed_bytes(t, what, source)
        if t.data_location == onnx.TensorProto.EXTERNAL or t.data_type == onnx.TensorProto.STRING:
            continue
        if t.HasField("raw_data") and len(t.raw_data) != nbytes:
            raise MalformedFileError(f"{source}: {what} has shape {list(t.dims)} ({nbytes} bytes) but "
                                     f"{len(t.raw_data)} bytes of data", hint="the file is truncated or damaged")


def load_external_data(model: onnx.ModelProto, folder: Path, source: str) -> None:
    """Replace every external tensor's reference by its bytes, read from a file inside `folder`."""
    for what, t in all_tensors(model):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        _read_external(t, what, folder, source)


def _read_external(t: onnx.TensorProto, what: str, folder: Path, source: str) -> None:
    info = {e.key: e.value for e in t.external_data}
    if t.data_type == onnx.TensorProto.STRING:
        raise MalformedFileError(f"{source}: {what} is a string tensor with external data, which ONNX does not allow")
    nbytes = claimed_bytes(t, what, source)
    try:
        offset = int(info.get("offset", 0))
        length = int(info["length"]) if "length" in info else None
    except ValueError:
        raise MalformedFileError(f"{source}: {what} has a non-integer external data offset/length "
                                 f"{info.get('offset')!r}/{info.get('length')!r}") from None
    if length is not None and length > max_tensor_bytes():
        raise TensorTooLargeError(f"{source}: {what} claims {mib(length)} of external data, over snnc's "
                                  f"tensor limit of {mib(max_tensor_bytes())}")
    if offset < 0 or (length is not None and length != nbytes):
        raise MalformedFileError(f"{source}: {what} has shape {list(t.dims)} ({nbytes} bytes) but its external "
                                 f"data says offset {offset}, length {length}")
    path = resolve_inside(folder, info.get("location", ""), what, source)
    if not path.is_file():
        raise MalformedFileError(f"{source}: {what}: external data file {info.get('location')!r} is missing "
                                 "(or not a regular file)", hint="keep the data file next to the .onnx file")
    size = path.stat().st_size
    if offset + nbytes > size:
        raise MalformedFileError(f"{source}: {what} needs bytes {offset}..{offset + nbytes} of "
                                 f"{info.get('location')!r}, which has only {size} bytes (truncated)")
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(nbytes)
    except OSError as e:
        raise MalformedFileError(f"{source}: {what}: cannot read external data {path}: {e.strerror}") from None
    if len(data) != nbytes:
        raise MalformedFileError(f"{source}: {what}: external data {path} ended early")
    t.raw_data = data
    t.data_location = onnx.TensorProto.DEFAULT
    del t.external_data[:]

