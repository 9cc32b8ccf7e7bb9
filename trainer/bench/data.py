"""Datasets of the downstream benchmarks: real VinDr images and synthetic HDF5 samples, resized for the models.

Real images are read with :func:`linop_core.dicom.read_dicom` and windowed to [0, 1] with the file's first
VOI window (:func:`linop_core.dicom.to_unit`); synthetic samples come from
:class:`linop_core.synthset.SynthSetDataset` windowed with the VOI window recorded at export.

- Detection (VinDr-Mammo): mass images and normal images (BI-RADS 1, no finding); the image is resized so its
  longer side is ``image_size`` and the Mass boxes are scaled with it. Item: ``image`` float32 (1, H, W) in
  [0, 1], ``boxes`` float32 (K, 4) xyxy, ``labels`` int64 (K,) = 1 (Mass).
- Classification (VinDr-CXR, 4 classes): resized to ``image_size`` x ``image_size``. Item: ``image`` float32
  (1, S, S), ``label`` int64 index into :data:`linop_core.vindr.FOUR_CLASSES`.

Synthetic samples made from an image of a validation or test study are dropped (``exclude_studies``): the
export draws its sources from VinDr's official training split, which the benchmark's own random split
re-divides, so without this a test image's anatomy could reach training.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, Dataset, Subset

from linop_core.dicom import read_dicom, to_unit
from linop_core.errors import DataError
from linop_core.vindr import CxrDataset, ImageRecord, MammoDataset, four_class_index
from trainer.bench.splits import Split, random_split

MASS = "Mass"
_CACHE_SCALE = 65535.0


# -- pixels ------------------------------------------------------------------------------------------------------


def resize_longer_side(image: torch.Tensor, size: int) -> tuple[torch.Tensor, float, float]:
    """Resize (C, H, W) so that max(H, W) == size; returns the image and the x and y scale factors."""
    h, w = image.shape[-2:]
    factor = size / max(h, w)
    new_h, new_w = max(1, round(h * factor)), max(1, round(w * factor))
    out = F.interpolate(image[None], size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)[0]
    return out.clamp_(0.0, 1.0), new_w / w, new_h / h


def resize_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (C, H, W) to (C, size, size), as CheXNet does (aspect ratio not kept)."""
    out = F.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    return out.clamp_(0.0, 1.0)


def scale_boxes(boxes: torch.Tensor, sx: float, sy: float) -> torch.Tensor:
    return boxes * torch.tensor([sx, sy, sx, sy], dtype=boxes.dtype)


@dataclass(frozen=True)
class ResizedImageCache:
    """Resized real images as 16-bit .npy files keyed by image id and target size (None: no caching).

    Reading and resizing full-field DICOMs dominates an epoch; the cache makes it a one-time cost. Files are
    written atomically, so parallel data-loader workers may fill it at the same time.
    """

    folder: Path | None

    def load(self, record: ImageRecord, tag: str, make: Any) -> np.ndarray:
        if self.folder is None:
            return make()
        path = self.folder / f"{record.image_id}_{tag}.npy"
        if path.is_file():
            return np.load(path).astype(np.float32) / _CACHE_SCALE
        array = make()
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                np.save(handle, np.round(array * _CACHE_SCALE).astype(np.uint16))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return array


def read_unit(record: ImageRecord) -> torch.Tensor:
    """The record's DICOM as float32 (1, H, W) in [0, 1] (file's first VOI window, padding at 0)."""
    if not record.exists:
        raise DataError(record.path, "image listed in the CSVs is missing on disk; restore it or fix the root")
    return torch.from_numpy(to_unit(read_dicom(record.path)))[None]


def mass_boxes(record: ImageRecord) -> list[tuple[float, float, float, float]]:
    return [f.box for f in record.findings if f.box is not None and MASS in f.categories]


# -- real data ---------------------------------------------------------------------------------------------------


class MammoDetectionDataset(Dataset):
    """VinDr-Mammo images with their Mass boxes, resized to ``image_size`` on the longer side."""

    def __init__(self, records: Sequence[ImageRecord], image_size: int, cache: ResizedImageCache) -> None:
        self.records = list(records)
        self.image_size = image_size
        self.cache = cache

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        record = self.records[i]
        tag = f"L{self.image_size}"

        def make() -> np.ndarray:
            return resize_longer_side(read_unit(record), self.image_size)[0][0].numpy()

        image = torch.from_numpy(self.cache.load(record, tag, make))[None]
        # scale factors from the native size, which the DICOM header (or the CSV) gives
        height, width = record.height, record.width
        if not height or not width:
            meta = read_dicom(record.path, read_pixels=False).meta
            height, width = meta.rows, meta.columns
        sy, sx = image.shape[-2] / float(height), image.shape[-1] / float(width)
        boxes = torch.tensor(mass_boxes(record), dtype=torch.float32).reshape(-1, 4)
        return {
            "image": image,
            "boxes": scale_boxes(boxes, sx, sy),
            "labels": torch.ones(len(boxes), dtype=torch.int64),
            "id": record.image_id,
        }


class CxrClassificationDataset(Dataset):
    """VinDr-CXR images of the 4-class task, resized to ``image_size`` square."""

    def __init__(self, items: Sequence[tuple[ImageRecord, int]], image_size: int, cache: ResizedImageCache) -> None:
        self.items = list(items)
        self.image_size = image_size
        self.cache = cache

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        record, label = self.items[i]

        def make() -> np.ndarray:
            return resize_square(read_unit(record), self.image_size)[0].numpy()

        image = torch.from_numpy(self.cache.load(record, f"S{self.image_size}", make))[None]
        return {"image": image, "label": torch.tensor(label, dtype=torch.int64), "id": record.image_id}


# -- synthetic data ----------------------------------------------------------------------------------------------


def open_synthetic(path: str | Path, decisions: Sequence[str] | None, transform: Any) -> Any:
    from linop_core.synthset import SynthSetDataset

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "synthetic set not found; make it with `linop-export generate` or fix data.synthetic")
    return SynthSetDataset(path, intensity="window", decisions=decisions, transform=transform)


class _ResizeDetection:
    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        image, sx, sy = resize_longer_side(item["image"], self.size)
        return {"image": image, "boxes": scale_boxes(item["boxes"], sx, sy), "labels": item["labels"]}


class _ResizeClassification:
    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        return {"image": resize_square(item["image"], self.size), "global_labels": item["global_labels"]}


class SyntheticDetectionDataset(Dataset):
    """The in-painted mammograms of a synthetic set (Mass boxes only), minus excluded studies."""

    def __init__(self, base: Any, rows: Sequence[int]) -> None:
        self.base = base
        self.rows = list(rows)
        self.mass_label = base.box_label_names.index(MASS) + base.label_offset if MASS in base.box_label_names else -1

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.rows[i]
        item = self.base[row]
        keep = item["labels"] == self.mass_label
        boxes = item["boxes"][keep]
        return {
            "image": item["image"],
            "boxes": boxes,
            "labels": torch.ones(len(boxes), dtype=torch.int64),
            "id": f"synthetic:{int(self.base.meta['index'][row])}",
        }


class SyntheticClassificationDataset(Dataset):
    """The out-painted chest X-rays of a synthetic set whose labels fall in the 4-class task."""

    def __init__(self, base: Any, rows: Sequence[int], labels: Sequence[int]) -> None:
        self.base = base
        self.rows = list(rows)
        self.labels = list(labels)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.base[self.rows[i]]
        return {
            "image": item["image"],
            "label": torch.tensor(self.labels[i], dtype=torch.int64),
            "id": f"synthetic:{int(self.base.meta['index'][self.rows[i]])}",
        }


def synthetic_engines(base: Any) -> list[str]:
    """Engine (and model) names of the samples, e.g. ``["biharmonic"]`` or ``["mat (mat-small, sha256 ab12…)"]``."""
    names = []
    for engine, model, sha in dict.fromkeys(
        zip(base.meta["engine"], base.meta["model_name"], base.meta["checkpoint_sha256"], strict=True)
    ):
        extra = ", ".join(x for x in (str(model), f"sha256 {str(sha)[:12]}" if sha else "") if x)
        names.append(f"{engine} ({extra})" if extra else str(engine))
    return names


# -- what a benchmark trains and tests on -------------------------------------------------------------------------


@dataclass
class BenchData:
    """Real train/val/test datasets, the leak-filtered synthetic set(s) and facts the report states.

    ``synthetic_sets`` maps a set's name to its dataset; the single set of ``data.synthetic`` is named "".
    """

    train: Dataset
    val: Dataset
    test: Dataset
    synthetic_sets: dict[str, Dataset]
    facts: dict[str, Any]
    held_out_studies: frozenset[str] = frozenset()  # studies of the validation and test splits

    @property
    def synthetic(self) -> Dataset | None:
        return self.synthetic_sets.get("")

    def identity(self) -> str:
        """SHA-256 of which images a cell trains and tests on (real split and synthetic set(s)).

        Part of a cell's config digest: a regenerated synthetic set or changed data invalidate old cells.
        """
        keys = ("train_ids_sha256", "test_ids_sha256", "synthetic_export_id", "synthetic_total", "synthetic_usable",
                "synthetic_sets")  # fmt: skip
        text = json.dumps({k: self.facts.get(k) for k in keys if k in self.facts or not k.endswith("sets")},
                          sort_keys=True)  # fmt: skip
        return hashlib.sha256(text.encode()).hexdigest()


def _named_sets(settings: Any) -> dict[str, str]:
    """The configured synthetic sets by name ("" for ``data.synthetic``)."""
    if settings.synthetic_sets:
        return dict(settings.synthetic_sets)
    return {"": settings.synthetic} if settings.synthetic else {}


def _set_facts(named: dict[str, tuple[Dataset, dict[str, Any]]]) -> dict[str, Any]:
    """One set: its facts as they are (``synthetic_*``); several: one ``synthetic_sets`` entry per name."""
    if set(named) == {""}:
        return named[""][1]
    return {"synthetic_sets": {name: {k.removeprefix("synthetic_"): v for k, v in facts.items()}
                               for name, (_, facts) in named.items()}}  # fmt: skip


def _split(study_ids: Sequence[str], settings: Any) -> Split:
    return random_split(study_ids, seed=settings.split_seed, fractions=settings.fractions, level=settings.split_level)


def _ids_sha(ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def _check_splits(root: str, n_train: int, n_test: int) -> None:
    if n_train == 0 or n_test == 0:
        raise DataError(
            root,
            f"the split leaves {n_train} training and {n_test} test image(s); the dataset is too small for "
            "data.fractions (use more images, other fractions or data.split_level=image)",
        )


def detection_data(settings: Any) -> BenchData:
    """Mass + normal VinDr-Mammo images split at random (seeded), plus the in-painting set when configured."""
    dataset = MammoDataset.open(settings.root)
    masses = [r for r in dataset.with_masses(None) if r.exists]
    normals = [r for r in dataset.normal_pool(None) if r.exists]
    if not masses:
        raise DataError(settings.root, "no mass image with a DICOM file; check that data.root is a VinDr-Mammo root")
    if settings.normal_per_mass is not None:
        keep = min(len(normals), round(settings.normal_per_mass * len(masses)))
        rng = np.random.default_rng([settings.split_seed, 7])
        normals = [normals[i] for i in sorted(rng.choice(len(normals), size=keep, replace=False))]
    pool = sorted(masses + normals, key=lambda r: r.image_id)
    split = _split([r.study_id for r in pool], settings)
    train = [pool[i] for i in split.train]
    val = [pool[i] for i in split.val]
    test = [pool[i] for i in split.test]
    if not settings.include_normal_test:
        test = [r for r in test if mass_boxes(r)]
    _check_splits(settings.root, len(train), len(test))
    cache = ResizedImageCache(Path(settings.cache_dir) if settings.cache_dir else None)
    held_out = frozenset({r.study_id for r in val} | {pool[i].study_id for i in split.test})
    named = {name: _detection_set(path, settings, held_out) for name, path in _named_sets(settings).items()}
    facts = {
        "dataset": "VinDr-Mammo",
        "root": str(settings.root),
        "n_mass_images": len(masses),
        "n_normal_images": len(normals),
        "split_level": settings.split_level,
        "split_seed": settings.split_seed,
        "n_train": len(train),
        "n_val": len(val),
        "n_test": len(test),
        "n_test_mass_images": sum(bool(mass_boxes(r)) for r in test),
        "include_normal_test": settings.include_normal_test,
        "train_ids_sha256": _ids_sha([r.image_id for r in train]),
        "test_ids_sha256": _ids_sha([r.image_id for r in test]),
        "image_size": settings.image_size,
        **_set_facts(named),
    }
    return BenchData(
        train=MammoDetectionDataset(train, settings.image_size, cache),
        val=MammoDetectionDataset(val, settings.image_size, cache),
        test=MammoDetectionDataset(test, settings.image_size, cache),
        synthetic_sets={name: dataset for name, (dataset, _) in named.items()},
        facts=facts,
        held_out_studies=held_out,
    )


def _detection_set(path: str, settings: Any, held_out: frozenset[str]) -> tuple[Dataset, dict[str, Any]]:
    """The mammography samples of an in-painting set whose source study is not held out, and their facts."""
    base = open_synthetic(path, settings.synthetic_decisions, _ResizeDetection(settings.image_size))
    studies = base.meta["source_study_id"]
    kinds = base.meta["dataset"]
    rows = [i for i in range(len(base)) if str(studies[i]) not in held_out and str(kinds[i]) == "mammo"]
    return SyntheticDetectionDataset(base, rows), {
        "synthetic_set": str(path),
        "synthetic_export_id": str(base.attrs.get("export_id", "")),
        "synthetic_engines": synthetic_engines(base),
        "synthetic_total": len(base),
        "synthetic_usable": len(rows),
        "synthetic_excluded_held_out": len(base) - len(rows),
    }


def classification_data(settings: Any) -> BenchData:
    """The 4-class VinDr-CXR images split at random (seeded), plus the out-painting set when configured."""
    dataset = CxrDataset.open(settings.root)
    pool = sorted(((r, c) for r, c in dataset.four_class(None, multi=settings.multi) if r.exists),
                  key=lambda rc: rc[0].image_id)  # fmt: skip
    if not pool:
        raise DataError(settings.root, "no image of the 4-class task with a DICOM file; check data.root")
    split = _split([r.study_id for r, _ in pool], settings)
    train = [pool[i] for i in split.train]
    val = [pool[i] for i in split.val]
    test = [pool[i] for i in split.test]
    _check_splits(settings.root, len(train), len(test))
    cache = ResizedImageCache(Path(settings.cache_dir) if settings.cache_dir else None)
    held_out = frozenset(r.study_id for r, _ in val + test)
    named = {name: _classification_set(path, settings, held_out) for name, path in _named_sets(settings).items()}
    facts = {
        "dataset": "VinDr-CXR",
        "root": str(settings.root),
        "n_images": len(pool),
        "class_counts": [sum(c == k for _, c in pool) for k in range(4)],
        "multi_label_policy": settings.multi,
        "split_level": settings.split_level,
        "split_seed": settings.split_seed,
        "n_train": len(train),
        "n_val": len(val),
        "n_test": len(test),
        "test_class_counts": [sum(c == k for _, c in test) for k in range(4)],
        "train_ids_sha256": _ids_sha([r.image_id for r, _ in train]),
        "test_ids_sha256": _ids_sha([r.image_id for r, _ in test]),
        "image_size": settings.image_size,
        **_set_facts(named),
    }
    return BenchData(
        train=CxrClassificationDataset(train, settings.image_size, cache),
        val=CxrClassificationDataset(val, settings.image_size, cache),
        test=CxrClassificationDataset(test, settings.image_size, cache),
        synthetic_sets={name: dataset for name, (dataset, _) in named.items()},
        facts=facts,
        held_out_studies=held_out,
    )


def _classification_set(path: str, settings: Any, held_out: frozenset[str]) -> tuple[Dataset, dict[str, Any]]:
    """The chest X-rays of an out-painting set in the 4-class task whose source study is not held out."""
    base = open_synthetic(path, settings.synthetic_decisions, _ResizeClassification(settings.image_size))
    rows, labels = [], []
    for i in range(len(base)):
        if str(base.meta["source_study_id"][i]) in held_out or str(base.meta["dataset"][i]) != "cxr":
            continue
        index = four_class_index(tuple(json.loads(base.meta["global_labels"][i])), settings.multi)
        if index is not None:
            rows.append(i)
            labels.append(index)
    return SyntheticClassificationDataset(base, rows, labels), {
        "synthetic_set": str(path),
        "synthetic_export_id": str(base.attrs.get("export_id", "")),
        "synthetic_engines": synthetic_engines(base),
        "synthetic_total": len(base),
        "synthetic_usable": len(rows),
        "synthetic_class_counts": [labels.count(k) for k in range(4)],
    }


def cell_training_indices(n_real: int, n_synthetic: int, portion: float, share: float | str, seed: int
                          ) -> tuple[list[int], list[int]]:  # fmt: skip
    """Indices of the real and synthetic training items a cell uses.

    The real portion is a prefix of a seeded permutation, so for one seed the 12.5 % set is inside the 25 %
    set and so on; the synthetic count is ``share`` x the real count (``"all"``: every synthetic item),
    capped at what the set holds (the report gives the count actually used).
    """
    real_order = np.random.default_rng([seed, 1]).permutation(n_real)
    real = sorted(int(i) for i in real_order[: max(1, round(portion * n_real))])
    n_syn = n_synthetic if share == "all" else min(n_synthetic, round(float(share) * len(real)))
    syn_order = np.random.default_rng([seed, 2]).permutation(n_synthetic)
    return real, sorted(int(i) for i in syn_order[:n_syn])


@dataclass(frozen=True)
class CellTrainingSet:
    """The training data of one grid cell: real portion plus synthetic share, and the counts the report prints."""

    dataset: Dataset
    n_real: int
    n_synthetic: int
    synthetic_available: int


def cell_training_set(data: BenchData, portion: float, share: float | str, seed: int,
                      source: str = "") -> CellTrainingSet:  # fmt: skip
    """The real and synthetic items a cell trains on (see :func:`cell_training_indices`), as one dataset.

    ``source`` names the synthetic set ("" for ``data.synthetic``).
    """
    from trainer.bench.config import ConfigError

    synthetic = data.synthetic_sets.get(source)
    n_syn_total = len(synthetic) if synthetic is not None else 0
    if share != 0 and synthetic is None:
        where = "data.synthetic_sets" if source else "data.synthetic"
        raise ConfigError(where, f"the grid has synthetic shares > 0 but no synthetic set {source!r} is given")
    real_idx, syn_idx = cell_training_indices(len(data.train), n_syn_total, portion, share, seed)
    parts: list[Dataset] = [Subset(data.train, real_idx)]
    if syn_idx:
        parts.append(Subset(synthetic, syn_idx))  # type: ignore[arg-type]
    return CellTrainingSet(ConcatDataset(parts), len(real_idx), len(syn_idx), n_syn_total)
