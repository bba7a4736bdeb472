"""Checks on a model file before it is read: references outside its folder, oversized claims.

- `resolve_inside`: a file a model refers to (ONNX external data) must lie in
  the model's folder, after resolving `..` and symlinks; decided on the path
  alone, before anything outside is opened.
- `check_hdf5`: an HDF5 file (.snnir, NIR, NetX) may not contain external links,
  datasets stored in external raw files, or virtual datasets (each would make
  h5py read another file), and no dataset may claim more bytes than the tensor
  limit, or far more than the file stores for it.
"""

from __future__ import annotations

import os
from pathlib import Path

from snnc.errors import MalformedFileError, TensorTooLargeError, UnsafeFileReferenceError
from snnc.limits import check_tensor, mib

# deflate, HDF5's strongest standard filter, compresses at most ~1032:1
_MAX_COMPRESSION = 1100
_SMALL = 1 << 20  # claims up to this size are never suspicious


def resolve_inside(folder: str | os.PathLike, location: str, what: str, source: str) -> Path:
    """`folder/location` resolved, if it stays inside `folder`; else UnsafeFileReferenceError naming `what`."""
    hint = "external data must be a relative path to a file next to the model (no '..', no absolute path, " \
           "no symlink leading elsewhere)"
    if not location or "\x00" in location:
        raise UnsafeFileReferenceError(f"{source}: {what} has an empty or invalid external data location", hint=hint)
    if os.path.isabs(location) or location.startswith(("\\", "/")) or (len(location) > 1 and location[1] == ":"):
        raise UnsafeFileReferenceError(f"{source}: {what} refers to the absolute path {location!r}, outside the "
                                       "model's folder", hint=hint)
    base = os.path.realpath(folder)
    target = os.path.realpath(os.path.join(base, location))  # follows '..' and symlinks; opens nothing
    if os.path.commonpath([base, target]) != base:
        raise UnsafeFileReferenceError(f"{source}: {what} refers to {location!r}, which resolves to {target}, "
                                       f"outside the model's folder {base}", hint=hint)
    return Path(target)


def check_hdf5(f, source: str) -> None:
    """Walk an open h5py.File without following any link out of it; raise on the first unsafe object."""
    import h5py

    seen: set = set()

    def walk(group, prefix: str) -> None:
        for key in group.keys():
            path = f"{prefix}/{key}"
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise UnsafeFileReferenceError(f"{source}: HDF5 object {path} is an external link to "
                                               f"{link.filename}:{link.path}; snnc does not follow links into "
                                               "other files", hint="copy the data into the model file")
            if not isinstance(link, h5py.HardLink):
                continue  # a soft link names an object inside this file, visited through its hard link
            obj = group.get(key)
            if id_key(obj) in seen:
                continue
            seen.add(id_key(obj))
            if isinstance(obj, h5py.Group):
                walk(obj, path)
            elif isinstance(obj, h5py.Dataset):
                _check_dataset(obj, path, source)
                if obj.dtype.kind == "O" and obj.size:
                    heaps.check(obj, path)

    heaps = _GlobalHeaps(f, source)
    walk(f, "")


def id_key(obj) -> tuple:
    import h5py

    info = h5py.h5o.get_info(obj.id)
    return info.fileno, info.addr


def _check_dataset(ds, path: str, source: str) -> None:
    if ds.external:
        names = ", ".join(str(e[0]) for e in ds.external)
        raise UnsafeFileReferenceError(f"{source}: HDF5 dataset {path} stores its data in external file(s) {names}; "
                                       "snnc reads data from the model file only",
                                       hint="copy the data into the model file")
    if ds.is_virtual:
        raise UnsafeFileReferenceError(f"{source}: HDF5 dataset {path} is a virtual dataset (mapped from other "
                                       "files); snnc reads data from the model file only")
    shape = ds.shape or ()
    claimed = check_tensor(f"HDF5 dataset {path}", shape, ds.dtype.itemsize, source)
    if claimed > _SMALL:
        stored = ds.id.get_storage_size()
        if claimed > _MAX_COMPRESSION * stored:
            raise TensorTooLargeError(f"{source}: HDF5 dataset {path} claims shape {list(shape)} ({mib(claimed)}) but "
                                      f"the file stores only {stored} bytes of it",
                                      hint="the file is truncated, damaged or malicious")


def open_hdf5(path: str | os.PathLike, kind: str = "HDF5"):
    """`path` opened read-only as an h5py.File that passed `check_hdf5` (the caller closes it).

    Every reader of HDF5 model files opens them here, so none reads an object first.
    """
    import h5py

    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as e:
        raise MalformedFileError(f"{path}: not a readable {kind} file (truncated or corrupt HDF5): {e}") from None
    try:
        check_hdf5(f, str(path))
    except (UnsafeFileReferenceError, MalformedFileError, TensorTooLargeError):
        f.close()
        raise
    except Exception as e:  # noqa: BLE001 - h5py errors on damaged object headers
        f.close()
        raise MalformedFileError(f"{path}: damaged {kind} file: {type(e).__name__}: {e}") from None
    return f


class _GlobalHeaps:
    """Checks variable-length data (strings) against the global heap collections holding it.

    HDF5 stores each variable-length element as (length, collection address, object
    index) and the bytes in a "GCOL" collection. A damaged collection (e.g. an object
    of size 0) makes the HDF5 library loop forever inside H5Dread, so the elements'
    heap objects are located here, by reading the file's bytes, before HDF5 reads them.
    """

    def __init__(self, f, source: str):
        self.path, self.source = f.filename, source
        self.base = f.userblock_size
        self.size_addr, self.size_len = f.id.get_create_plist().get_sizes()
        self.file_size = os.path.getsize(self.path)
        self.collections: dict[int, dict[int, int]] = {}  # address -> {object index: size}

    def _bad(self, what: str, path: str) -> MalformedFileError:
        return MalformedFileError(f"{self.source}: HDF5 dataset {path}: {what}",
                                  hint="the file is truncated, damaged or malicious")

    def check(self, ds, path: str) -> None:
        offset = ds.id.get_offset()
        if offset is None:  # chunked (or not yet written): HDF5 reads it through its own checks
            return
        item = 8 + self.size_addr
        n = ds.size * item
        if offset + n > self.file_size:
            raise self._bad(f"its {ds.size} variable-length elements lie past the end of the file", path)
        with open(self.path, "rb") as raw:
            raw.seek(offset)
            data = raw.read(n)
            for i in range(ds.size):
                rec = data[i * item:(i + 1) * item]
                length = int.from_bytes(rec[:4], "little")
                addr = int.from_bytes(rec[4:4 + self.size_addr], "little")
                index = int.from_bytes(rec[4 + self.size_addr:], "little")
                if length == 0 and addr == 0:
                    continue  # an empty element
                objects = self._collection(raw, addr, path)
                if index not in objects or objects[index] < length:
                    raise self._bad(f"element {i} refers to global heap object {index} of {length} bytes at "
                                    f"{addr}, which the collection does not hold", path)

    def _collection(self, raw, addr: int, path: str) -> dict[int, int]:
        if addr in self.collections:
            return self.collections[addr]
        header = 8 + self.size_len
        start = self.base + addr
        raw.seek(start)
        head = raw.read(header)
        if len(head) < header or head[:4] != b"GCOL" or head[4] != 1:
            raise self._bad(f"no global heap collection at address {addr}", path)
        size = int.from_bytes(head[8:], "little")
        if size < header or start + size > self.file_size:
            raise self._bad(f"the global heap collection at {addr} claims {size} bytes, past the end of the file", path)
        body = head + raw.read(size - header)
        objects: dict[int, int] = {}
        pos, obj_header = header, 8 + self.size_len
        while pos + obj_header <= size:  # every step advances by at least obj_header bytes
            index = int.from_bytes(body[pos:pos + 2], "little")
            if index == 0:
                break  # free space: the rest of the collection
            obj_size = int.from_bytes(body[pos + 8:pos + obj_header], "little")
            end = pos + obj_header + (obj_size + 7) // 8 * 8
            if end > size:
                raise self._bad(f"global heap object {index} at {addr} runs past its collection", path)
            objects[index] = obj_size
            pos = end
        self.collections[addr] = objects
        return objects
