"""What one synthetic sample is, how its provenance becomes a table row, and the checks run before writing.

A :class:`SynthSample` is a generated :class:`~linop_core.synthesis.Candidate` plus the source pixels it was
made from, pseudonymous source ids (VinDr dataset ids, never DICOM patient attributes) and the review
decision. :func:`meta_row` turns it into one row of the set's ``/meta`` table; :data:`META_COLUMNS` fixes the
column types so every writer (export, GUI, merge) produces the same file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from linop_core.errors import DataError
from linop_core.sources import SourceDicom, SourceInfo
from linop_core.vocab import Decision

if TYPE_CHECKING:
    from linop_core.candidate import Candidate

SCHEMA = "linop-synthset"
SCHEMA_VERSION = "1.3"  # added: 1.1 source DICOM columns, 1.2 reader verdicts, 1.3 engine settings (ADDED_COLUMNS)
PIXEL_CONVENTION = "MONOCHROME2"
INTENSITY = "native stored values after the modality LUT (MONOCHROME1 inverted), as in the source DICOM"
LAYOUT = (
    "/samples/<index:09d>/{image, source_patch, generated_patch, boxes}; image at native size, chunked whole "
    "(or in 512x512 tiles above the chunk limit), gzip + shuffle; source_patch and generated_patch cover "
    "meta/patch_origin + meta/patch_size only, the rest of the source equals image; /meta/* one row per "
    "sample, sorted by index"
)

DECISION_CODES: dict[Decision, int] = {Decision.APPROVED: 1, Decision.REJECTED: 0, Decision.PENDING: -1}
DECISION_NAMES: dict[int, Decision] = {code: name for name, code in DECISION_CODES.items()}

TEST_SPLIT = "test"

# name -> (numpy dtype, per-row width); dtype "str" is variable-length UTF-8, width 0 is a scalar column.
META_COLUMNS: dict[str, tuple[str, int]] = {
    "index": ("int64", 0),
    "unit": ("int64", 0),
    "synthetic": ("bool", 0),
    "task": ("str", 0),
    "dataset": ("str", 0),
    "source_image_id": ("str", 0),
    "source_study_id": ("str", 0),
    "source_split": ("str", 0),
    "laterality": ("str", 0),
    "view": ("str", 0),
    "pixel_spacing_mm": ("float32", 2),
    "height": ("int32", 0),
    "width": ("int32", 0),
    "dtype": ("str", 0),
    "seed": ("int64", 0),
    "crop_origin": ("int32", 2),
    "crop_size": ("int32", 2),
    "scale": ("float64", 0),
    "feather_px": ("float32", 0),
    "voi_center": ("float64", 0),
    "voi_width": ("float64", 0),
    "voi_explanation": ("str", 0),
    "window_function": ("str", 0),
    "engine": ("str", 0),
    "model_name": ("str", 0),
    "checkpoint_sha256": ("str", 0),
    "n_boxes": ("int32", 0),
    "box_labels": ("str", 0),  # JSON list, one name per box
    "global_labels": ("str", 0),  # JSON list
    "patch_origin": ("int32", 2),  # (y0, x0) of the generated region's bounding rectangle
    "patch_size": ("int32", 2),  # (h, w) of that rectangle; (0, 0) when nothing was generated
    "decision": ("int8", 0),  # 1 approved, 0 rejected, -1 pending
    "reviewer": ("str", 0),  # pseudonym
    "reject_reason": ("str", 0),
    "realism_score": ("float32", 0),  # 1-5, NaN when unrated
    "reviewed_utc": ("str", 0),
    # 1.1: how the source DICOM encoded its pixels and which instance it was (for DICOM export); see SourceDicom
    "source_sop_instance_uid": ("str", 0),
    "source_sop_class_uid": ("str", 0),
    "modality": ("str", 0),
    "source_photometric": ("str", 0),
    "bits_stored": ("int32", 0),  # 0 when unknown
    "value_range": ("float64", 2),  # representable (min, max) after the modality LUT; NaN when unknown
    "patient_orientation": ("str", 0),  # "P\\L" style, "" when unknown
    # 1.2: every reader's verdict (multi-reader review), JSON list of ReaderVerdict records; "[]" when none
    "reader_verdicts": ("str", 0),
    # 1.3: how the engine ran (device, dtype and the precision asked for, noise mode...), JSON; "{}" when unknown
    "engine_settings": ("str", 0),
}

# Columns a set written before they existed lacks; readers fill them with these "unknown" values.
ADDED_COLUMNS: dict[str, Any] = {
    "source_sop_instance_uid": "",
    "source_sop_class_uid": "",
    "modality": "",
    "source_photometric": "",
    "bits_stored": 0,
    "value_range": [math.nan, math.nan],
    "patient_orientation": "",
    "reader_verdicts": "[]",
    "engine_settings": "{}",
}


@dataclass(frozen=True)
class ReaderVerdict:
    """One reader's decision on a candidate (several readers review the same candidates independently)."""

    reader: str  # pseudonym
    decision: Decision
    reject_reason: str = ""
    realism_score: float = math.nan
    reviewed_utc: str = ""

    def to_json(self) -> dict[str, Any]:
        score = None if math.isnan(self.realism_score) else float(self.realism_score)
        return {"reader": self.reader, "decision": str(self.decision), "reject_reason": self.reject_reason,
                "realism_score": score, "reviewed_utc": self.reviewed_utc}


@dataclass(frozen=True)
class Review:
    """The verdict a set records for one candidate; batch exports are ``pending``.

    With several readers, ``decision`` is what the export's consensus rule made of their verdicts, kept each
    in ``readers``; ``reviewer`` then names the rule and the readers.
    """

    decision: Decision = Decision.PENDING
    reviewer: str = ""
    reject_reason: str = ""
    realism_score: float = math.nan
    reviewed_utc: str = ""
    readers: tuple[ReaderVerdict, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "decision", Decision(self.decision))  # frozen: normalise text to the enum


@dataclass(frozen=True)
class SynthSample:
    """One generated image ready to be written; ``index`` is unique within a set and fixes its seed story."""

    index: int
    candidate: Candidate
    source_pixels: np.ndarray = field(repr=False)
    source: SourceInfo
    review: Review = field(default_factory=Review)


def generated_patch(generated: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((y0, x0), (h, w))`` of the smallest rectangle holding every pixel with a non-zero blend weight."""
    rows = np.flatnonzero(generated.any(axis=1))
    if rows.size == 0:
        return (0, 0), (0, 0)
    cols = np.flatnonzero(generated.any(axis=0))
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    x0, x1 = int(cols[0]), int(cols[-1]) + 1
    return (y0, x0), (y1 - y0, x1 - x0)


def check_sample(sample: SynthSample, out_path: Path, *, allow_test_split: bool) -> None:
    """Refuse a sample that would leak evaluation data or whose untouched pixels drifted from the source.

    * a test-split source is refused unless ``allow_test_split``;
    * image and source must share shape and dtype (bit depth preserved);
    * every pixel with blend weight 0 must equal the source bit for bit;
    * there must be one label per box, and boxes must lie inside the image.
    """
    cand = sample.candidate
    src = sample.source
    if src.split == TEST_SPLIT and not allow_test_split:
        raise DataError(
            out_path,
            f"sample {sample.index}: source image {src.image_id} is from the test split, and synthesising from "
            "evaluation images leaks them into training; pick a training-split image, or pass "
            "allow_test_split=True (linop-export --allow-test-sources) if you really mean it",
        )
    image, source, generated = cand.image, sample.source_pixels, cand.generated
    if image.ndim != 2 or image.shape != source.shape or generated.shape != image.shape:
        raise DataError(
            out_path,
            f"sample {sample.index}: image {image.shape}, source {source.shape} and generated "
            f"{generated.shape} must be the same 2-D shape (full source size)",
        )
    if image.dtype != source.dtype:
        raise DataError(
            out_path,
            f"sample {sample.index}: image dtype {image.dtype} differs from the source's {source.dtype}; "
            "the synthesis must keep the source bit depth",
        )
    kept = generated == 0
    equal_nan = bool(np.issubdtype(image.dtype, np.floating))
    if not np.array_equal(image[kept], source[kept], equal_nan=equal_nan):
        changed = int(np.count_nonzero(image[kept] != source[kept]))
        raise DataError(
            out_path,
            f"sample {sample.index}: {changed} pixel(s) outside the generated region differ from source image "
            f"{src.image_id}; the engine or paste-back is faulty, so this sample was not written",
        )
    if len(cand.box_labels) != len(cand.boxes):
        raise DataError(
            out_path, f"sample {sample.index}: {len(cand.boxes)} box(es) but {len(cand.box_labels)} box label(s)"
        )
    height, width = image.shape
    for box in cand.boxes:
        x0, y0, x1, y1 = (float(v) for v in box)
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise DataError(
                out_path,
                f"sample {sample.index}: box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is empty or outside the "
                f"{width}x{height} image",
            )


def meta_row(sample: SynthSample, unit: int) -> dict[str, Any]:
    """The ``/meta`` row of a sample (see :data:`META_COLUMNS`)."""
    cand = sample.candidate
    src = sample.source
    review = sample.review
    (py, px), (ph, pw) = generated_patch(cand.generated)
    spacing = src.pixel_spacing_mm if src.pixel_spacing_mm is not None else (math.nan, math.nan)
    window = cand.window
    return {
        "index": int(sample.index),
        "unit": int(unit),
        "synthetic": True,
        "task": str(cand.task),
        "dataset": src.dataset,
        "source_image_id": src.image_id,
        "source_study_id": src.study_id,
        "source_split": src.split,
        "laterality": src.laterality or "",
        "view": src.view or "",
        "pixel_spacing_mm": [float(spacing[0]), float(spacing[1])],
        "height": int(cand.image.shape[0]),
        "width": int(cand.image.shape[1]),
        "dtype": np.dtype(cand.image.dtype).str,
        "seed": int(cand.seed),
        "crop_origin": [int(v) for v in cand.crop_origin],
        "crop_size": [int(v) for v in cand.crop_size],
        "scale": float(cand.scale),
        "feather_px": float(cand.feather_px),
        "voi_center": float(window.center),
        "voi_width": float(window.width),
        "voi_explanation": str(getattr(window, "explanation", None) or ""),
        "window_function": str(cand.window_function),
        "engine": str(cand.engine),
        "model_name": cand.model_name or "",
        "checkpoint_sha256": cand.checkpoint_sha256 or "",
        "n_boxes": len(cand.boxes),
        "box_labels": json.dumps([str(name) for name in cand.box_labels]),
        "global_labels": json.dumps([str(name) for name in cand.global_labels]),
        "patch_origin": [py, px],
        "patch_size": [ph, pw],
        "decision": DECISION_CODES[review.decision],
        "reviewer": review.reviewer,
        "reject_reason": review.reject_reason,
        "realism_score": float(review.realism_score),
        "reviewed_utc": review.reviewed_utc,
        **_dicom_columns(src.dicom),
        "reader_verdicts": json.dumps([verdict.to_json() for verdict in review.readers]),
        "engine_settings": json.dumps(cand.engine_settings, default=str, sort_keys=True),
    }


_DICOM_COLUMNS = ("source_sop_instance_uid", "source_sop_class_uid", "modality", "source_photometric", "bits_stored",
                  "value_range", "patient_orientation")


def _dicom_columns(dicom: SourceDicom | None) -> dict[str, Any]:
    if dicom is None:
        return {name: ADDED_COLUMNS[name] for name in _DICOM_COLUMNS}
    return {
        "source_sop_instance_uid": dicom.sop_instance_uid,
        "source_sop_class_uid": dicom.sop_class_uid,
        "modality": dicom.modality,
        "source_photometric": dicom.photometric,
        "bits_stored": int(dicom.bits_stored),
        "value_range": [float(dicom.value_range[0]), float(dicom.value_range[1])],
        "patient_orientation": "\\".join(dicom.patient_orientation),
    }


def columns_from_rows(rows: Sequence[Mapping[str, Any]], names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Stack ``meta_row`` dicts into typed column arrays (strings as an object array of ``str``).

    ``names`` limits the columns built (default: all of :data:`META_COLUMNS`).
    """
    columns: dict[str, np.ndarray] = {}
    for name in META_COLUMNS if names is None else names:
        dtype, width = META_COLUMNS[name]
        values = [row[name] for row in rows]
        if dtype == "str":
            array = np.empty(len(values), dtype=object)
            array[:] = [str(v) for v in values]
        elif width:
            array = np.asarray(values, dtype=dtype).reshape(len(values), width)
        else:
            array = np.asarray(values, dtype=dtype).reshape(len(values))
        columns[name] = array
    return columns


def concat_columns(parts: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate column dicts (each as returned by :func:`columns_from_rows` or read from a file)."""
    if not parts:
        return columns_from_rows([])
    return {name: np.concatenate([part[name] for part in parts]) for name in META_COLUMNS}


def take_rows(columns: Mapping[str, np.ndarray], order: np.ndarray) -> dict[str, np.ndarray]:
    return {name: columns[name][order] for name in META_COLUMNS}
