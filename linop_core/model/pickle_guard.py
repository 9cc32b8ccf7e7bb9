"""Bounds on what a weight file's pickle can make the loader allocate, checked before anything is built.

A pickle is a program: a 32-byte one can ask for ``bytearray(3_500_000_000)``, declare a 3.5 GB ``BINBYTES8``
value (CPython 3.11's unpickler allocates the declared size before it reads), or declare storages far larger
than the file (``torch.load`` allocates them first). Safe loaders (ours, and ``torch.load(weights_only=True)``,
which allows ``builtins.bytearray``) refuse *code*, not size. Before a pickle is loaded, this module

1. walks its opcodes (:func:`scan_pickle`, ``pickletools.genops`` on a :class:`BoundedReader`): every declared
   length must fit in what is left of the file, and the number of operations is capped, so a short file can
   neither declare a huge value nor build millions of objects from single bytes;
2. dry-runs it with inert stand-ins for every global (:func:`probe_pickle`): nothing runs, and what it would
   ask for (globals, persistent storage ids) is listed;
3. checks the storages: their declared bytes must fit in the records (zip) or the file (legacy format).

:func:`guarded_torch_load` does all of it for ``torch.save`` files (zip and legacy) and then calls
``torch.load(weights_only=True)``. The same bounds serve the official-snapshot unpickler in
:mod:`linop_core.model.official`. A damaged file fails here too, as "truncated" where it is.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from linop_core.errors import ModelError

MIB = 1 << 20
MAX_PICKLE_OPS = 2_000_000  # a MAT snapshot or checkpoint takes well under 10 % of this
# torch.save never compresses records; what a crafted zip may inflate beyond its own bytes, in total
MAX_ZIP_EXPANSION = 256 * MIB
_ZIP_MAGIC = b"PK\x03\x04"
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
# globals a LINOP or torch.save file never needs, though torch's weights-only loader allows them
_REFUSED_GLOBALS = frozenset({("builtins", "bytearray")})


class PickleBoundError(ModelError):
    """A weight file asks for more memory than it can hold, or is cut short."""


class BoundedReader(io.RawIOBase):
    """A binary reader over ``[start, end)`` of a file whose ``read(n)`` refuses ``n`` beyond the end."""

    def __init__(self, handle: BinaryIO, end: int, path: str | os.PathLike[str] | None, what: str) -> None:
        super().__init__()
        self._handle = handle
        self._end = end
        self._path = path
        self._what = what

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._handle.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._handle.seek(offset, whence)

    def remaining(self) -> int:
        return max(self._end - self._handle.tell(), 0)

    def read(self, n: int | None = -1) -> bytes:
        left = self.remaining()
        if n is None or n < 0:
            n = left
        if n > left:
            raise PickleBoundError(
                self._path, f"{self._what} declares a {n:,}-byte value but only {left:,} bytes are left: the file is "
                "truncated (copy it again) or crafted to exhaust memory; refused before allocating"
            )
        return self._handle.read(n)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        limit = self.remaining() if size is None or size < 0 else min(size, self.remaining())
        return self._handle.readline(limit)


def scan_pickle(handle: BinaryIO, end: int, path: str | os.PathLike[str] | None, what: str = "the pickle") -> int:
    """Walk one pickle from ``handle``'s position to its STOP without building anything; returns the position
    after it. Raises PickleBoundError for a length beyond ``end``, too many operations, or a cut stream."""
    reader = BoundedReader(handle, end, path, what)
    count = 0
    try:
        for _opcode, _arg, _pos in pickletools.genops(reader):
            count += 1
            if count > MAX_PICKLE_OPS:
                raise PickleBoundError(
                    path, f"{what} has more than {MAX_PICKLE_OPS:,} operations (a MAT weight file has far fewer); "
                    "refused before building them"
                )
    except ModelError:
        raise
    except (ValueError, EOFError, pickle.UnpicklingError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        truncated = handle.tell() >= end or any(w in reason for w in ("remain", "EOF", "exhausted", "truncated"))
        state = "is truncated (copy the file again)" if truncated else "is damaged"
        raise PickleBoundError(path, f"{what} {state}: {reason}") from exc
    return handle.tell()


# --------------------------------------------------------------------------------------------- dry run


class _Inert:
    """What every global becomes in a dry run: accepts any call, state, item or append; does nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


@dataclass
class PickleProbe:
    """What a pickle would ask for: the globals it names and the persistent ids (storages) it refers to."""

    globals: set[tuple[str, str]] = field(default_factory=set)
    persistent_ids: list[tuple[Any, ...]] = field(default_factory=list)


class _ProbeUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, probe: PickleProbe) -> None:
        super().__init__(file)
        self._probe = probe

    def find_class(self, module: str, name: str) -> Any:
        self._probe.globals.add((module, name))
        # a fresh type per global (NEWOBJ needs a type), remembering what it stands for
        return type(f"{module}.{name}", (_Inert,), {"__linop_global__": (module, name)})

    def persistent_load(self, pid: Any) -> Any:
        self._probe.persistent_ids.append(tuple(pid) if isinstance(pid, tuple | list) else (pid,))
        return _Inert()


def probe_pickle(handle: BinaryIO, end: int, path: str | os.PathLike[str] | None, what: str) -> PickleProbe:
    """Scan (see :func:`scan_pickle`) and dry-run one pickle from ``handle``'s position; leaves the handle after
    it. Nothing the pickle names is imported or called."""
    start = handle.tell()
    scan_pickle(handle, end, path, what)
    handle.seek(start)
    probe = PickleProbe()
    try:
        _ProbeUnpickler(BoundedReader(handle, end, path, what), probe).load()
    except ModelError:
        raise
    except Exception as exc:
        raise PickleBoundError(path, f"{what} is damaged ({type(exc).__name__}: {exc})") from exc
    return probe


def refuse_globals(probe: PickleProbe, path: str | os.PathLike[str] | None, what: str) -> None:
    refused = sorted(probe.globals & _REFUSED_GLOBALS)
    if refused:
        module, name = refused[0]
        raise PickleBoundError(
            path, f"refused to load: {what} asks for '{module}.{name}', which no weight file needs (it can "
            "allocate any amount of memory)"
        )


def storage_bytes(pid: tuple[Any, ...]) -> tuple[str, int] | None:
    """``(key, declared bytes)`` of a torch ``('storage', type, key, location, numel, ...)`` persistent id."""
    if len(pid) < 5 or pid[0] != "storage":
        return None
    storage_type, key, numel = pid[1], str(pid[2]), pid[4]
    if not isinstance(numel, int) or numel < 0:
        raise ValueError(f"storage {key} declares {numel!r} elements")
    return key, numel * _element_size(storage_type)


def _element_size(storage_type: Any) -> int:
    """The element size a storage type stand-in (``torch.FloatStorage``...) names; 16 (the largest) when the
    name is not a torch storage type, so the bound errs on the safe side."""
    import torch

    module, name = getattr(storage_type, "__linop_global__", ("", ""))
    if module == "torch" and name == "UntypedStorage":
        return 1  # numel counts bytes
    if module == "torch" and name.endswith("Storage"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # TypedStorage is deprecated; its dtype is what we need
            dtype = getattr(getattr(torch, name, None), "dtype", None)
        if isinstance(dtype, torch.dtype):
            return dtype.itemsize
    return 16


def check_storages(
    probe: PickleProbe, available: Mapping[str, int] | int, path: str | os.PathLike[str] | None, what: str
) -> None:
    """Every storage the pickle declares must fit: in its zip record (``available`` maps key -> record size) or,
    all together, in the bytes that follow the pickle (``available`` an int)."""
    sizes: dict[str, int] = {}
    try:
        for pid in probe.persistent_ids:
            found = storage_bytes(pid)
            if found is not None:
                sizes[found[0]] = found[1]
    except ValueError as exc:
        raise PickleBoundError(path, f"{what}: {exc}") from exc
    if isinstance(available, int):
        total = sum(sizes.values())
        if total > available:
            raise PickleBoundError(
                path, f"{what} declares {total:,} bytes of tensor storage but the file holds only {available:,}: "
                "truncated or crafted; refused before allocating"
            )
        return
    for key, size in sizes.items():
        record = available.get(key)
        if record is None or size > record:
            raise PickleBoundError(
                path, f"{what} declares {size:,} bytes for storage {key} but its record holds "
                f"{'nothing' if record is None else f'{record:,} bytes'}: truncated or crafted; refused"
            )


# --------------------------------------------------------------------------------------------- torch.save files


def check_torch_file(path: str | os.PathLike[str], *, what: str = "the weight file") -> None:
    """All bounds for a ``torch.save`` file (zip or legacy) before ``torch.load``; raises PickleBoundError."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(4)
        is_zip = zipfile.is_zipfile(handle)
        handle.seek(0)
        if is_zip:
            _check_zip(path, size, what)
        elif head == _ZIP_MAGIC:
            raise PickleBoundError(
                path, f"{what} is truncated: a zip (.pt) file whose end (central directory) is missing; copy it again"
            )
        else:
            check_legacy_stream(handle, size, path, what)


def _check_zip(path: Path, size: int, what: str) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            expansion = 0
            records: dict[str, int] = {}
            pickle_info = None
            for info in infos:
                if info.header_offset + info.compress_size > size or info.file_size < 0:
                    raise PickleBoundError(path, f"{what}: record {info.filename} runs past the end of the file: "
                                           "truncated; copy it again")
                expansion += max(info.file_size - info.compress_size, 0)
                parts = info.filename.split("/")
                if len(parts) >= 3 and parts[-2] == "data":
                    records[parts[-1]] = info.file_size
                if parts[-1] == "data.pkl":
                    pickle_info = info
            if expansion > MAX_ZIP_EXPANSION:
                raise PickleBoundError(
                    path, f"{what}'s compressed records inflate by {expansion:,} bytes (more than "
                    f"{MAX_ZIP_EXPANSION // MIB} MiB; torch.save never compresses): refused before inflating"
                )
            if pickle_info is None:
                raise PickleBoundError(path, f"{what} is a zip without data.pkl: not a torch.save file")
            data = archive.read(pickle_info)
    except zipfile.BadZipFile as exc:
        raise PickleBoundError(path, f"{what} is a damaged zip ({exc})") from exc
    handle = io.BytesIO(data)
    probe = probe_pickle(handle, len(data), path, f"{what}'s data.pkl")
    refuse_globals(probe, path, what)
    check_storages(probe, records, path, what)


def check_legacy_stream(handle: BinaryIO, end: int, path: str | os.PathLike[str] | None, what: str) -> None:
    """A legacy (non-zip) ``torch.save`` stream: magic, protocol and system-info pickles, the object pickle whose
    storages are allocated by declared size, then the storage data. Position: the stream's start."""
    first = _read_pickle_bytes(handle, end, path, what)
    if probe_pickle(io.BytesIO(first), len(first), path, what).globals:
        return  # not a legacy torch stream (its first pickle is the magic number, a lone int)
    if pickle.loads(first) != _TORCH_LEGACY_MAGIC:
        return
    for part in ("protocol version", "system info"):
        probe = probe_pickle(handle, end, path, f"{what} ({part})")
        refuse_globals(probe, path, what)
    probe = probe_pickle(handle, end, path, what)
    refuse_globals(probe, path, what)
    check_storages(probe, end - handle.tell(), path, what)


def _read_pickle_bytes(handle: BinaryIO, end: int, path: str | os.PathLike[str] | None, what: str) -> bytes:
    start = handle.tell()
    stop = scan_pickle(handle, end, path, what)
    handle.seek(start)
    return handle.read(stop - start)


def guarded_torch_load(path: str | os.PathLike[str], *, what: str = "the weight file", **kwargs: Any) -> Any:
    """``torch.load(path, weights_only=True, **kwargs)`` after :func:`check_torch_file`. Raises
    PickleBoundError for the bounds; whatever ``torch.load`` raises otherwise."""
    import torch

    check_torch_file(path, what=what)
    return torch.load(path, weights_only=True, **kwargs)


def guarded_torch_loads(data: bytes, *, path: str | os.PathLike[str] | None, what: str) -> Any:
    """:func:`guarded_torch_load` for an in-memory legacy stream (the storages of an official snapshot)."""
    import torch

    handle = io.BytesIO(data)
    if data[:4] == _ZIP_MAGIC:
        raise PickleBoundError(path, f"{what} is a zip inside a pickle; MAT snapshots store legacy streams")
    check_legacy_stream(handle, len(data), path, what)
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
