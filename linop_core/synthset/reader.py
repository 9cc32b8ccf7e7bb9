"""Reading a synthetic set: :class:`SynthSet` for interactive use (PyTorch: :mod:`linop_core.synthset.dataset`).

Rows are addressed by position ``0..len-1`` in index order; ``set.meta["index"][row]`` is the sample index.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from linop_core.errors import DataError
from linop_core.synthset.records import DECISION_NAMES
from linop_core.synthset.store import check_schema, group_name, read_audit, read_meta, read_root_attrs


@dataclass(frozen=True)
class SampleRecord:
    """Everything a set knows about one sample, pixels aside."""

    row: int
    index: int
    meta: Mapping[str, Any]
    boxes: np.ndarray  # (K, 4) float64, x0 y0 x1 y1
    box_labels: tuple[str, ...]
    global_labels: tuple[str, ...]
    decision: str


def _open(path: Path) -> h5py.File:
    if not path.is_file():
        raise DataError(path, "synthetic set not found")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DataError(path, f"not a readable HDF5 file ({exc}); was the export finished?") from exc


def load_header(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    with _open(path) as file:
        check_schema(file, path)
        return read_root_attrs(file), read_meta(file, path)


def _row_meta(table: Mapping[str, np.ndarray], row: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, column in table.items():
        value = column[row]
        out[name] = (
            value.tolist() if isinstance(value, np.ndarray) else (value.item() if hasattr(value, "item") else value)
        )
    return out


class SampleReader:
    """Pixel access on an open file; shared by :class:`SynthSet` and :class:`SynthSetDataset`."""

    path: Path
    meta: dict[str, np.ndarray]

    def _file(self) -> h5py.File:
        raise NotImplementedError

    def _group(self, row: int) -> h5py.Group:
        return self._file()["samples"][group_name(int(self.meta["index"][row]))]

    def image(self, row: int) -> np.ndarray:
        """(H, W) synthetic image, source dtype, native units."""
        return self._group(row)["image"][()]

    def generated(self, row: int) -> np.ndarray:
        """(H, W) float32 blend weight: 0 where the source pixel was kept bit-exact."""
        height, width = int(self.meta["height"][row]), int(self.meta["width"][row])
        out = np.zeros((height, width), dtype=np.float32)
        (y0, x0), (h, w) = self.meta["patch_origin"][row], self.meta["patch_size"][row]
        if h and w:
            out[y0 : y0 + h, x0 : x0 + w] = self._group(row)["generated_patch"][()]
        return out

    def mask(self, row: int) -> np.ndarray:
        """(H, W) bool, True on generated pixels."""
        return self.generated(row) > 0

    def source(self, row: int) -> np.ndarray:
        """(H, W) the source image the sample was made from (rebuilt bit-exact from image + source patch)."""
        group = self._group(row)
        out = group["image"][()]
        (y0, x0), (h, w) = self.meta["patch_origin"][row], self.meta["patch_size"][row]
        if h and w:
            out[y0 : y0 + h, x0 : x0 + w] = group["source_patch"][()]
        return out

    def boxes(self, row: int) -> np.ndarray:
        return self._group(row)["boxes"][()]


class SynthSet(SampleReader):
    """An open synthetic set (read-only). Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._handle = _open(self.path)
        try:
            check_schema(self._handle, self.path)
            self.attrs = read_root_attrs(self._handle)
            self.meta = read_meta(self._handle, self.path)
        except BaseException:
            self._handle.close()
            raise
        self.box_label_names: list[str] = list(self.attrs["box_label_names"])
        self.global_label_names: list[str] = list(self.attrs["global_label_names"])

    def _file(self) -> h5py.File:
        return self._handle

    def __len__(self) -> int:
        return len(self.meta["index"])

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> SynthSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def audit_events(self) -> list[str]:
        """The ``/audit/events`` records (JSON strings), oldest first; empty when the set has none."""
        return read_audit(self._handle)

    def row_of(self, index: int) -> int:
        rows = np.flatnonzero(self.meta["index"] == index)
        if rows.size == 0:
            raise KeyError(f"sample index {index} is not in {self.path}")
        return int(rows[0])

    def record(self, row: int) -> SampleRecord:
        meta = _row_meta(self.meta, row)
        return SampleRecord(
            row=row,
            index=int(meta["index"]),
            meta=meta,
            boxes=self.boxes(row),
            box_labels=tuple(json.loads(meta["box_labels"])),
            global_labels=tuple(json.loads(meta["global_labels"])),
            decision=DECISION_NAMES[int(meta["decision"])],
        )


def next_free(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(unit, sample index)`` just after the last ones of the set at ``path`` ((0, 0) when there is none):
    where an append continues numbering."""
    if not Path(path).exists():
        return 0, 0
    with SynthSet(path) as synth:
        units, indices = synth.meta["unit"], synth.meta["index"]
        return (int(units.max()) + 1 if len(units) else 0, int(indices.max()) + 1 if len(indices) else 0)
