"""Checks on a model file before it is read: references outside its folder, oversized claims, hangs.

- `resolve_inside`: a file a model refers to (ONNX external data) must lie in
  the model's folder, after resolving `..` and symlinks; decided on the path
  alone, before anything outside is opened.
- `open_hdf5`: an HDF5 file (.snnir, NIR, NetX) is read whole, in a child
  process under a time limit, into an in-memory `H5Group` tree. It may not
  contain external links, datasets stored in external raw files, or virtual
  datasets (each would make HDF5 read another file); no dataset or attribute may
  claim more bytes than the tensor limit, or far more than the file stores.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

from snnc.core import isolate
from snnc.core.errors import MalformedFileError, SnncError, TensorTooLargeError, UnsafeFileReferenceError
from snnc.core.limits import check_tensor, max_tensor_bytes, mib

# deflate, HDF5's strongest standard filter, compresses at most ~1032:1
_MAX_COMPRESSION = 1100
_SMALL = 1 << 20  # claims up to this size are never suspicious (nor a file's first MiB of claims in all)


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


# -- HDF5 ---------------------------------------------------------------------------------------------
TIMEOUT_ENV_VAR = "SNNC_HDF5_TIMEOUT"
DEFAULT_TIMEOUT = 10.0  # seconds for any file; valid model files read in milliseconds
_BYTES_PER_SECOND = 8 << 20  # plus 1 s per 8 MiB: a slow disk or network share still reads a large file in time


def hdf5_time_limit(nbytes: int) -> float:
    """Seconds allowed to read an HDF5 file of `nbytes`: $SNNC_HDF5_TIMEOUT (or 10) + 1 s per 8 MiB."""
    try:
        base = float(os.environ.get(TIMEOUT_ENV_VAR, DEFAULT_TIMEOUT))
    except ValueError:
        base = DEFAULT_TIMEOUT
    if not 0 < base < math.inf:
        base = DEFAULT_TIMEOUT
    return base + nbytes / _BYTES_PER_SECOND


def open_hdf5(path: str | os.PathLike, kind: str = "HDF5", *, outline: bool = False) -> "H5Group":
    """The whole HDF5 file at `path`, read into memory and checked: its root group, read like h5py's.

    Every reader of HDF5 model files (.snnir, NIR, NetX, the loader's sniffing) reads them here.
    The HDF5 library runs in a helper process (see snnc.core.isolate), which walks every
    group, dataset, attribute and variable-length value under `hdf5_time_limit`: a damaged
    file that makes HDF5 loop forever or crash gives a MalformedFileError naming it, and
    Ctrl-C stops the read at once. This process never hands the file to HDF5 itself.

    `outline=True` reads only the root's attributes and member names (the members are
    bare H5Objects): enough to tell the format, at a fraction of the cost.
    """
    import h5py  # noqa: F401 - imported here, so that the helper (a fork of this process) has it already

    source = str(path)
    try:
        st = os.stat(path)
    except OSError as e:
        raise MalformedFileError(f"{source}: cannot read this {kind} file: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise MalformedFileError(f"{source}: not a regular file, so not a {kind} file")
    limit = hdf5_time_limit(st.st_size)
    hint = "the file is truncated, damaged or malicious"
    try:
        status, value = isolate.run_isolated(_read_file, source, kind, outline, seconds=limit)
    except isolate.ChildTimeout:
        seconds = f"{limit:.1f}".rstrip("0").rstrip(".")
        raise MalformedFileError(f"{source}: reading this {kind} file did not finish within {seconds} s: the "
                                 "HDF5 library is stuck on a damaged structure (snnc stopped it)",
                                 hint=f"{hint}; a genuinely huge file may need more time: "
                                      f"{TIMEOUT_ENV_VAR}=<seconds>") from None
    except isolate.ChildDied as e:
        raise MalformedFileError(f"{source}: the HDF5 library crashed reading this {kind} file ({e})",
                                 hint=hint) from None
    except isolate.ChildFailed as e:
        raise MalformedFileError(f"{source}: damaged {kind} file: {e}", hint=hint) from None
    if status == "ok":
        return value
    cls, message, hint = value
    raise cls(message, hint=hint)


def _read_file(source: str, kind: str, outline: bool = False) -> tuple[str, object]:
    """('ok', the root H5Group) or ('error', (SnncError subclass, message, hint)); runs in the child."""
    import h5py

    try:
        try:
            f = h5py.File(source, "r")
        except (OSError, ValueError) as e:
            raise MalformedFileError(f"{source}: not a readable {kind} file (truncated or corrupt HDF5): "
                                     f"{_first_line(e)}") from None
        with f:
            return "ok", _Walker(f, source).root(outline)
    except SnncError as e:
        return "error", (type(e), e.message, e.hint)
    except Exception as e:  # noqa: BLE001 - h5py's errors on damaged object headers, B-trees, heaps
        return "error", (MalformedFileError, f"{source}: damaged {kind} file: {type(e).__name__}: {_first_line(e)}",
                         "the file is truncated, damaged or malicious")


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [""])[0][:300]


class _Walker:
    """Reads a whole h5py.File into H5Group/H5Dataset objects, refusing unsafe objects before reading them.

    Refused: external links, datasets stored in external raw files, virtual datasets (each
    would make HDF5 read another file), link cycles, a dataset or attribute claiming more
    bytes than the tensor limit, a large dataset claiming far more than the file stores,
    and claims (variable-length data included) that add up to far more than the file size.
    A value HDF5 cannot read is kept as an error raised when a reader uses it.
    """

    def __init__(self, f, source: str):
        self.f, self.source = f, source
        self.file_size = max(1, os.path.getsize(f.filename))
        self.claimed = 0
        self.objects: dict[tuple, H5Object] = {}  # (file number, address) -> object: hard links share
        self.open: set[tuple] = set()  # the groups being walked: a link back to one is a cycle
        self.top: H5Group | None = None

    def root(self, outline: bool = False) -> "H5Group":
        if outline:
            top = H5Group("/", self.attrs(self.f, "/"), None)
            top.members = {name: H5Object(f"/{name}", H5Attrs(self.source), top) for name in self.f.keys()}
        else:
            top = self.group(self.f, "/")
        top.filename = self.source
        return top

    def group(self, g, path: str) -> "H5Group":
        import h5py

        node = H5Group(path, self.attrs(g, path), self.top)
        self.top = self.top or node
        key = _address(g)
        self.objects[key] = node
        self.open.add(key)
        for name in g.keys():
            sub = f"{path.rstrip('/')}/{name}"
            link = g.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise UnsafeFileReferenceError(f"{self.source}: HDF5 object {sub} is an external link to "
                                               f"{link.filename}:{link.path}; snnc does not follow links into "
                                               "other files", hint="copy the data into the model file")
            if isinstance(link, h5py.SoftLink):
                node.members[name] = _SoftLink(link.path)
                continue
            if not isinstance(link, h5py.HardLink):
                continue  # a user-defined link type: HDF5 cannot follow it either
            obj = g.get(name)
            okey = _address(obj)
            if okey in self.open:
                raise MalformedFileError(f"{self.source}: HDF5 group {sub} is one of its own ancestors (a link cycle)",
                                         hint="the file is damaged or malicious")
            if okey not in self.objects:
                if isinstance(obj, h5py.Group):
                    self.group(obj, sub)
                elif isinstance(obj, h5py.Dataset):
                    self.objects[okey] = self.dataset(obj, sub)
                else:  # a named datatype
                    self.objects[okey] = H5Object(sub, self.attrs(obj, sub), self.top)
            node.members[name] = self.objects[okey]
        self.open.discard(key)
        return node

    def dataset(self, ds, path: str) -> "H5Dataset":
        what = f"HDF5 dataset {path}"
        if ds.external:
            names = ", ".join(str(e[0]) for e in ds.external)
            raise UnsafeFileReferenceError(f"{self.source}: {what} stores its data in external file(s) {names}; "
                                           "snnc reads data from the model file only",
                                           hint="copy the data into the model file")
        if ds.is_virtual:
            raise UnsafeFileReferenceError(f"{self.source}: {what} is a virtual dataset (mapped from other "
                                           "files); snnc reads data from the model file only")
        self.claim(what, ds.shape, ds.dtype, stored=ds.id.get_storage_size)
        attrs = self.attrs(ds, path)
        value = self.read(lambda: ds[()], what, ds.dtype, ds.shape, element=ds.__getitem__)
        return H5Dataset(path, attrs, self.top, ds.shape, ds.dtype, value)

    def attrs(self, obj, path: str) -> "H5Attrs":
        out = H5Attrs(self.source)
        for name in obj.attrs.keys():
            what = f"HDF5 attribute {path}@{name}"
            aid = obj.attrs.get_id(name)
            self.claim(what, aid.shape, aid.dtype)
            dict.__setitem__(out, name, self.read(lambda: obj.attrs[name], what, aid.dtype, aid.shape))
        return out

    def claim(self, what: str, shape, dtype, stored=None) -> None:
        """Refuse a dataset/attribute claiming more than the tensor limit, or (`stored()`: the bytes the file
        stores of it) far more than it stores; else count its bytes (see `count`).

        Variable-length data is counted once read (see `read`).
        """
        shape = shape or ()
        nbytes = check_tensor(what, shape, dtype.itemsize, self.source)
        if stored is not None and nbytes > _SMALL and nbytes > _MAX_COMPRESSION * stored():
            raise TensorTooLargeError(f"{self.source}: {what} claims shape {list(shape)} ({mib(nbytes)}) "
                                      f"but the file stores only {stored()} bytes of it",
                                      hint="the file is truncated, damaged or malicious")
        if not dtype.hasobject:
            self.count(what, nbytes)

    def count(self, what: str, nbytes: int) -> None:
        """Add `nbytes` to what the file's objects hold in all: no more than the file could store compressed."""
        self.claimed += nbytes
        if self.claimed > _MAX_COMPRESSION * self.file_size + _SMALL:
            raise TensorTooLargeError(f"{self.source}: the HDF5 objects up to {what} hold {mib(self.claimed)} in "
                                      f"all, far more than a file of {self.file_size} bytes can store",
                                      hint="the file is truncated, damaged or malicious")

    def read(self, read, what: str, dtype, shape, element=None):
        """`read()`, or an _Unreadable naming `what` when HDF5 fails on it or it holds object references.

        A variable-length element can be as long as the file. When elements x file size passes the
        tensor limit, a dataset's elements are read one at a time (`element(index)`), each counted,
        up to that limit; such an attribute (it can only be read whole) is refused.
        """
        import h5py
        import numpy as np

        if dtype.hasobject and h5py.check_ref_dtype(dtype) is not None:
            return _Unreadable(f"{what} holds HDF5 object references, which snnc does not read")
        shape = shape or ()
        try:
            if not dtype.hasobject or math.prod(shape) * self.file_size <= max_tensor_bytes():
                value = read()
            elif element is not None and dtype.kind == "O":
                value, total = np.empty(shape, dtype=object), 0
                for index in np.ndindex(*shape):
                    value[index] = element(index)
                    total += _nbytes(value[index])
                    self.vlen_limit(what, total)
            else:
                check_tensor(f"{what} (variable-length, up to the file's size each)", shape, self.file_size,
                             self.source)
        except SnncError:
            raise
        except Exception as e:  # noqa: BLE001 - a damaged chunk, an unknown filter, a bad type
            return _Unreadable(f"{what} cannot be read: {type(e).__name__}: {_first_line(e)}")
        if dtype.hasobject:
            self.vlen_limit(what, _nbytes(value))
            self.count(what, _nbytes(value))
        return value

    def vlen_limit(self, what: str, nbytes: int) -> None:
        limit = max_tensor_bytes()
        if nbytes > limit:
            raise TensorTooLargeError(f"{self.source}: {what} holds over {mib(nbytes)} of variable-length data, "
                                      f"over snnc's limit of {mib(limit)} per tensor",
                                      hint="the file is damaged or malicious; for a genuinely large model raise "
                                           "the limit with SNNC_MAX_TENSOR_BYTES=<bytes>")


def _address(obj) -> tuple:
    import h5py

    info = h5py.h5o.get_info(obj.id)
    return info.fileno, info.addr


def _nbytes(value) -> int:
    """Bytes a value read from HDF5 takes, variable-length elements included."""
    import numpy as np

    if isinstance(value, (str, bytes)):
        return len(value)
    if isinstance(value, np.ndarray):
        extra = sum(_nbytes(v) for v in value.flat) if value.dtype.hasobject else 0
        return value.nbytes + extra
    if isinstance(value, np.void):  # a compound element with variable-length fields
        value = value.tolist()
    if isinstance(value, (tuple, list)):
        return sum(_nbytes(v) for v in value)
    return 8


class _Unreadable:
    """Stands for a value HDF5 could not read; using it raises MalformedFileError."""

    def __init__(self, message: str):
        self.message = message

    def fail(self, source: str):
        raise MalformedFileError(f"{source}: {self.message} (the file is truncated or damaged)")


class _SoftLink:
    def __init__(self, path: str):
        self.path = path


class H5Attrs(dict):
    """An object's attributes: name -> value (as h5py returns it)."""

    def __init__(self, source: str):
        super().__init__()
        self.source = source

    def __getitem__(self, name):
        v = dict.__getitem__(self, name)
        return v.fail(self.source) if isinstance(v, _Unreadable) else v

    def get(self, name, default=None):
        return self[name] if name in self else default

    def items(self):
        return [(k, self[k]) for k in self]

    def values(self):
        return [self[k] for k in self]


class H5Object:
    """An object of an HDF5 file read into memory: its path (`name`) and attributes."""

    def __init__(self, name: str, attrs: H5Attrs, file: "H5Group | None"):
        self.name, self.attrs = name, attrs
        self.file = file or self

    @property
    def source(self) -> str:
        return self.file.filename

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class H5Dataset(H5Object):
    """A dataset with its value; `ds[()]` returns that same array each time (copy it before changing it)."""

    def __init__(self, name, attrs, file, shape, dtype, value):
        super().__init__(name, attrs, file)
        self.shape, self.dtype, self._value = shape, dtype, value

    @property
    def ndim(self) -> int:
        return len(self.shape or ())

    @property
    def size(self) -> int:
        return int(math.prod(self.shape)) if self.shape is not None else 0

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a scalar dataset")
        return self.shape[0]

    def __getitem__(self, key):
        value = self._value
        if isinstance(value, _Unreadable):
            value.fail(self.source)
        if isinstance(key, tuple) and key == () or key is Ellipsis:
            return value
        return value[key]


class H5Group(H5Object):
    """A group: a read-only mapping of member names to H5Group/H5Dataset; paths ('a/b', '/a') work as in h5py."""

    def __init__(self, name, attrs, file):
        super().__init__(name, attrs, file)
        self.members: dict[str, H5Object | _SoftLink] = {}
        self.filename = ""  # set on the root

    def _get(self, path: str, hops: int = 0) -> H5Object:
        node: H5Object = self.file if path.startswith("/") else self
        for part in path.split("/"):
            if part in ("", "."):
                continue
            if not isinstance(node, H5Group) or part not in node.members:
                raise KeyError(f"{path!r} not found in {self.source}:{self.name}")
            here, node = node, node.members[part]
            if isinstance(node, _SoftLink):
                if hops > 32:
                    raise KeyError(f"{path!r}: too many soft links (a cycle?) in {self.source}")
                node = here._get(node.path, hops + 1)
        return node

    def __getitem__(self, path: str) -> H5Object:
        return self._get(path)

    def get(self, path: str, default=None):
        try:
            return self._get(path)
        except KeyError:
            return default

    def __contains__(self, path) -> bool:
        return isinstance(path, str) and self.get(path) is not None

    def __iter__(self):
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def keys(self):
        return list(self.members)

    def values(self):
        return [self.get(k) for k in self.members]

    def items(self):
        return [(k, self.get(k)) for k in self.members]

    # `with open_hdf5(p) as f:` as with an h5py.File; there is nothing to close
    def close(self) -> None:
        pass

    def __enter__(self) -> "H5Group":
        return self

    def __exit__(self, *exc) -> None:
        pass
