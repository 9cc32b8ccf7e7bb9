"""A map-style PyTorch dataset over a synthetic set, opened lazily in each worker."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from linop_core.synthset.reader import SampleReader, load_header
from linop_core.synthset.records import DECISION_CODES

Intensity = Literal["native", "window"]


class SynthSetDataset(Dataset, SampleReader):
    """A map-style PyTorch dataset over a set, for detection and classification training.

    The constructor reads only the small ``/meta`` table and closes the file; each worker process opens its
    own read-only handle on first access (an h5py handle cannot be pickled to spawn workers, and one shared
    across ``fork`` returns wrong data). Item, with ``H, W`` the sample's native size::

        image          float32 (1, H, W)  native units, or windowed to [0, 1] with the sample's VOI window
        mask           bool    (H, W)     True on generated pixels
        boxes          float32 (K, 4)     x0, y0, x1, y1
        labels         int64   (K,)       box label index into ``box_label_names`` + ``label_offset``
                                          (1 by default: 0 is background for torchvision detectors)
        global_labels  float32 (G,)       multi-hot over ``global_label_names``
        index, row     int;  source_image_id  str

    ``decisions`` keeps only samples with those review decisions (e.g. ``("approved",)``). Images vary in
    size, so batch with :func:`collate_samples` (or ``batch_size=None``) unless ``transform`` resizes.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        intensity: Intensity = "native",
        decisions: Sequence[str] | None = None,
        label_offset: int = 1,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        if intensity not in ("native", "window"):
            raise ValueError(f"intensity must be 'native' or 'window', got {intensity!r}")
        self.path = Path(path)
        self.attrs, table = load_header(self.path)
        self.box_label_names: list[str] = list(self.attrs["box_label_names"])
        self.global_label_names: list[str] = list(self.attrs["global_label_names"])
        if decisions is not None:
            unknown = [d for d in decisions if d not in DECISION_CODES]
            if unknown:
                raise ValueError(f"unknown decision(s) {unknown}; use {sorted(DECISION_CODES)}")
            codes = [DECISION_CODES[d] for d in decisions]
            keep = np.flatnonzero(np.isin(table["decision"], codes))
            table = {name: column[keep] for name, column in table.items()}
        self.meta = table
        self.intensity = intensity
        self.label_offset = label_offset
        self.transform = transform
        self._box_ids = {name: i for i, name in enumerate(self.box_label_names)}
        self._global_ids = {name: i for i, name in enumerate(self.global_label_names)}
        self._handle: h5py.File | None = None
        self._pid: int | None = None

    def _file(self) -> h5py.File:
        # reopen after a fork: a handle inherited from the parent must not be used in a worker
        if self._handle is None or self._pid != os.getpid():
            self._handle = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._handle

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handle"] = None
        state["_pid"] = None
        return state

    def __len__(self) -> int:
        return len(self.meta["index"])

    def __getitem__(self, row: int) -> dict[str, Any]:
        if not 0 <= row < len(self):
            raise IndexError(f"row {row} out of range for a set of {len(self)} samples")
        pixels = self.image(row).astype(np.float32)
        if self.intensity == "window":
            center, width = float(self.meta["voi_center"][row]), float(self.meta["voi_width"][row])
            low = center - width / 2.0
            pixels = np.clip((pixels - low) / max(width, math.ulp(1.0)), 0.0, 1.0)
        box_labels = json.loads(self.meta["box_labels"][row])
        global_hot = np.zeros(len(self.global_label_names), dtype=np.float32)
        for name in json.loads(self.meta["global_labels"][row]):
            global_hot[self._global_ids[name]] = 1.0
        item: dict[str, Any] = {
            "image": torch.from_numpy(pixels)[None],
            "mask": torch.from_numpy(self.mask(row)),
            "boxes": torch.from_numpy(self.boxes(row).astype(np.float32)).reshape(-1, 4),
            "labels": torch.tensor([self._box_ids[n] + self.label_offset for n in box_labels], dtype=torch.int64),
            "global_labels": torch.from_numpy(global_hot),
            "index": int(self.meta["index"][row]),
            "row": row,
            "source_image_id": str(self.meta["source_image_id"][row]),
        }
        return self.transform(item) if self.transform is not None else item


def collate_samples(batch: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep a batch as a list of items (images differ in size; detectors take lists)."""
    return list(batch)
