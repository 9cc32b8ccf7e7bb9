"""Unpickling an official MAT training snapshot without running the code in it, and without letting it
allocate more than the file holds.

Every network class in an official snapshot is a StyleGAN2 "persistent class" whose pickle carries the full
module source and ``exec``s it when loaded, so ``pickle.load`` on such a file is arbitrary code execution.
:class:`RestrictedUnpickler` resolves only a short allow-list of globals (tensor and storage rebuilders,
numpy scalars/arrays, plain containers) and replaces the persistent-object constructor by an inert record of
its state. Refusing code is not enough: an allowed global can still be asked for memory (``bytearray(n)``,
an array of a huge shape, a storage declaring gigabytes), so the allowed constructors that allocate are
wrapped to accept only what the file itself holds, and the pickle's opcodes are walked first
(:func:`linop_core.model.pickle_guard.scan_pickle`).
"""

from __future__ import annotations

import codecs
import io
import math
import os
import pickle
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from linop_core.errors import ModelError
from linop_core.model.pickle_guard import BoundedReader, guarded_torch_loads, scan_pickle


class UnsafePickleError(ModelError):
    """A pickle asked for something outside the allow-list (it might run code)."""


# -------------------------------------------------------------------------------------------------------------
# Inert stand-ins for the objects of an official pickle


class PersistentRecord:
    """What ``torch_utils.persistence._reconstruct_persistent_obj(meta)`` leaves behind: the meta, unexecuted.

    ``meta`` holds ``class_name``, ``module_src`` (never executed) and ``state``: the module's ``__dict__``.
    """

    def __init__(self, meta: Any) -> None:
        self.meta = meta

    @property
    def class_name(self) -> str:
        return str(self.meta.get("class_name", "?")) if isinstance(self.meta, dict) else "?"

    @property
    def state(self) -> dict[str, Any]:
        state = self.meta.get("state") if isinstance(self.meta, dict) else None
        return state if isinstance(state, dict) else {}


class PlainModuleRecord:
    """A stateless or container ``torch.nn`` module (ModuleList, Sequential, Softmax …), kept as its state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {}


class EasyDictRecord(dict):
    """``dnnlib.util.EasyDict`` without importing dnnlib."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.update(state)


def _persistent_record(meta: Any) -> PersistentRecord:
    return PersistentRecord(meta)




_PLAIN_TORCH_MODULES = {
    "torch.nn.modules.container": {"ModuleList", "Sequential", "ModuleDict"},
    "torch.nn.modules.activation": {"Softmax", "GELU", "ReLU", "LeakyReLU", "Sigmoid", "Tanh"},
    "torch.nn.modules.normalization": {"LayerNorm"},
    "torch.nn.modules.pooling": {"AdaptiveAvgPool2d"},
    "torch.nn.modules.dropout": {"Dropout"},
    "torch.nn.modules.linear": {"Identity"},
    "torch.nn.modules.module": {"Module"},
}

_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_record,
    ("dnnlib.util", "EasyDict"): EasyDictRecord,
    ("dnnlib", "EasyDict"): EasyDictRecord,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch", "Size"): torch.Size,
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
}
for _numpy_core in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED_GLOBALS[(_numpy_core, "scalar")] = getattr(np, "_core", np).multiarray.scalar
for _module, _names in _PLAIN_TORCH_MODULES.items():
    for _name in _names:
        _ALLOWED_GLOBALS[(_module, _name)] = PlainModuleRecord


# Allowed constructors that allocate: each gets the file's path and size and accepts only what the file holds.
def _bytearray(path: Path, size: int) -> Callable[..., bytearray]:
    def build(*args: Any) -> bytearray:
        # pickle writes a bytearray as bytearray(bytes) or, protocol 2, bytearray(str, 'latin-1')
        if not args:
            return bytearray()
        if len(args) == 1 and isinstance(args[0], bytes | bytearray):
            return bytearray(args[0])
        if len(args) == 2 and isinstance(args[0], str) and str(args[1]).lower() in ("latin1", "latin-1"):
            return bytearray(args[0], "latin-1")
        raise UnsafePickleError(
            path, f"refused to load: the pickle asks for bytearray({_describe(args)}), which allocates memory the "
            "file does not hold; MAT snapshots only store bytes in a bytearray"
        )

    return build


def _encode(path: Path, size: int) -> Callable[..., bytes]:
    def encode(text: Any, encoding: Any = "utf-8", *rest: Any) -> bytes:
        # protocol 2 stores bytes as _codecs.encode(str, 'latin1'): nothing else is needed
        if isinstance(text, str) and str(encoding).lower() in ("latin1", "latin-1") and not rest:
            return codecs.encode(text, "latin-1")
        asked = _describe((text, encoding))
        raise UnsafePickleError(path, f"refused to load: the pickle asks for _codecs.encode({asked})")

    return encode


def _reconstruct(path: Path, size: int) -> Callable[..., np.ndarray]:
    reconstruct = getattr(np, "_core", np).multiarray._reconstruct

    def build(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        # numpy pickles arrays as _reconstruct(ndarray, (0,), b'b') and fills them from the state, which holds
        # the bytes; a larger shape here would allocate before any data is read
        try:
            count = math.prod(int(n) for n in shape) * np.dtype(dtype).itemsize
        except (TypeError, ValueError) as exc:
            raise UnsafePickleError(path, f"refused to load: numpy array shape {shape!r} is not a shape") from exc
        if subtype is not np.ndarray or count > size:
            raise UnsafePickleError(
                path, f"refused to load: a numpy array of shape {_describe((shape,))} would need {count:,} bytes, "
                f"more than the file's {size:,}"
            )
        return reconstruct(subtype, shape, dtype)

    return build


def _load_from_bytes(path: Path, size: int) -> Callable[[bytes], Any]:
    def load(data: bytes) -> Any:
        # torch's own ``torch.storage._load_from_bytes`` calls torch.load(weights_only=False) on these bytes,
        # which would reopen the door this unpickler closes; the guarded load also bounds the storage sizes
        if not isinstance(data, bytes):
            raise UnsafePickleError(path, "refused to load: storage bytes that are not bytes")
        return guarded_torch_loads(data, path=path, what="a tensor storage in the snapshot")

    return load


_BOUNDED_GLOBALS: dict[tuple[str, str], Callable[[Path, int], Callable[..., Any]]] = {
    ("builtins", "bytearray"): _bytearray,
    ("_codecs", "encode"): _encode,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
}


def _describe(args: tuple[Any, ...]) -> str:
    text = ", ".join(repr(a) if not isinstance(a, str | bytes) else f"<{len(a)} characters>" for a in args)
    return text if len(text) <= 80 else text[:77] + "..."


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles official MAT snapshots while refusing every global outside a fixed allow-list, and every
    allocation the file does not hold."""

    def __init__(self, file: io.RawIOBase | io.BufferedIOBase, path: str | os.PathLike[str], size: int) -> None:
        super().__init__(file)
        self._path = Path(path)
        self._size = size

    def find_class(self, module: str, name: str) -> Any:
        bounded = _BOUNDED_GLOBALS.get((module, name))
        if bounded is not None:
            return bounded(self._path, self._size)
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                self._path,
                f"refused to load: the pickle asks for '{module}.{name}', which could run code; only MAT "
                "weight snapshots (tensors, arrays, plain containers) are accepted",
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(
            self._path, "refused to load: unexpected persistent id in a plain pickle; is this a MAT .pkl?"
        )


def load_snapshot_pickle(path: Path) -> Any:
    """The first pickle of ``path``, through :class:`RestrictedUnpickler`, after its opcodes were walked.

    Raises:
        UnsafePickleError: the pickle asks for code or for memory the file does not hold (nothing ran).
        ModelError: the file is truncated, damaged or not a pickle.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        scan_pickle(f, size, path, "the snapshot pickle")
        f.seek(0)
        try:
            return RestrictedUnpickler(BoundedReader(f, size, path, "the snapshot pickle"), path, size).load()
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(path, f"not a readable MAT pickle ({type(exc).__name__}: {exc})") from exc
