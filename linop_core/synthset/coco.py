"""Export a set for other tools: COCO JSON + 16-bit PNG images (and 8-bit generated-region masks), and
VinDr-style CSV files (``finding_annotations.csv`` for mammograms; ``annotations.csv`` and
``image_labels.csv`` for chest X-rays), each row marked ``synthetic=1`` with its source ids.

Only what the set holds is written, and the set holds only dataset ids and pseudonyms, never DICOM patient
attributes. Synthetic image ids are ``synth-<first 8 hex of export id>-<index>``; the VinDr ``study_id``
column keeps the *source* study id so train/test splits can be rebuilt by patient.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from linop_core.diskspace import full_disk_as_error, require_space
from linop_core.errors import DataError
from linop_core.fileio import atomic_open
from linop_core.synthset.reader import SampleRecord, SynthSet
from linop_core.synthset.records import DECISION_CODES
from linop_core.synthset.store import Progress

COCO_FILE = "annotations.coco.json"
MAMMO_CSV = "finding_annotations.csv"
CXR_BOX_CSV = "annotations.csv"
CXR_LABEL_CSV = "image_labels.csv"
_PROVENANCE = (
    "synthetic",
    "source_image_id",
    "source_split",
    "task",
    "seed",
    "engine",
    "checkpoint_sha256",
    "decision",
)


@dataclass(frozen=True)
class CocoExport:
    coco_json: Path
    image_dir: Path
    mask_dir: Path
    csv_files: tuple[Path, ...]
    n_images: int
    n_annotations: int


def synthetic_image_id(export_id: str, index: int) -> str:
    return f"synth-{export_id.replace('-', '')[:8]}-{int(index):09d}"


def _as_uint16(pixels: np.ndarray, set_path: Path, index: int) -> np.ndarray:
    if pixels.dtype == np.uint16:
        return pixels
    if np.issubdtype(pixels.dtype, np.integer):
        low, high = int(pixels.min()), int(pixels.max())
        if low >= 0 and high <= np.iinfo(np.uint16).max:
            return pixels.astype(np.uint16)
    else:
        low, high = float(pixels.min()), float(pixels.max())
    raise DataError(
        set_path,
        f"sample {index}: {pixels.dtype} pixels in [{low}, {high}] do not fit a 16-bit PNG without rescaling; "
        "use the HDF5 set for this data",
    )


_RESUME = "the files written so far are complete: free space and run the same export again"


def _save_png(array: np.ndarray, path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    _write_file(path, buffer.getvalue())


def _write_file(path: Path, data: bytes) -> None:
    """``data`` into ``path`` atomically, after checking the room it needs (encoded first: the size is exact)."""
    require_space(path, len(data), resume=_RESUME)
    with full_disk_as_error(path, len(data), resume=_RESUME), atomic_open(path) as handle:
        handle.write(data)  # atomic_open removes its temporary file on any failure


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _fmt(value: float) -> str:
    return repr(float(value))


def export_coco(
    set_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    decisions: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> CocoExport:
    """Write ``out_dir/{annotations.coco.json, images/*.png, masks/*.png}`` and the VinDr-style CSVs.

    COCO ``bbox`` is ``[x, y, width, height]`` in pixels; category ids are 1-based in the set's
    ``box_label_names`` order; image ids are the sample indices. ``decisions`` keeps only samples with those
    review decisions (e.g. ``("approved",)``).
    """
    set_path = Path(set_path)
    out = Path(out_dir)
    image_dir, mask_dir = out / "images", out / "masks"
    image_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    with SynthSet(set_path) as synth:
        meta, attrs = synth.meta, synth.attrs
        rows = np.arange(len(synth))
        if decisions is not None:
            rows = rows[np.isin(meta["decision"], [DECISION_CODES[d] for d in decisions])]
        export_id = str(attrs["export_id"])
        categories = {name: i + 1 for i, name in enumerate(synth.box_label_names)}
        images: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        tables = VindrCsvTables(synth.global_label_names)
        for done, row in enumerate(rows.tolist(), start=1):
            record = synth.record(row)
            m = record.meta
            index = record.index
            name = synthetic_image_id(export_id, index)
            _save_png(_as_uint16(synth.image(row), set_path, index), image_dir / f"{name}.png")
            _save_png(synth.mask(row).astype(np.uint8) * np.uint8(255), mask_dir / f"{name}.png")
            provenance = {
                "synthetic": True,
                "source_image_id": m["source_image_id"],
                "source_split": m["source_split"],
                "task": m["task"],
                "seed": m["seed"],
                "engine": m["engine"],
                "checkpoint_sha256": m["checkpoint_sha256"],
                "decision": record.decision,
            }
            images.append(
                {
                    "id": index,
                    "file_name": f"images/{name}.png",
                    "mask_file_name": f"masks/{name}.png",
                    "height": m["height"],
                    "width": m["width"],
                    "synthetic_id": name,
                    "source_study_id": m["source_study_id"],
                    "dataset": m["dataset"],
                    "laterality": m["laterality"],
                    "view": m["view"],
                    "model_name": m["model_name"],
                    "global_labels": list(record.global_labels),
                    **provenance,
                }
            )
            tables.add(record, name)
            for box, label in zip(record.boxes.tolist(), record.box_labels, strict=True):
                x0, y0, x1, y1 = box
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": index,
                        "category_id": categories[label],
                        "bbox": [x0, y0, x1 - x0, y1 - y0],
                        "area": (x1 - x0) * (y1 - y0),
                        "iscrowd": 0,
                    }
                )
            if progress is not None:
                progress(done, len(rows))
        coco = {
            "info": {
                "description": f"LINOP synthetic set {export_id}: SYNTHETIC images, not for clinical use",
                "version": str(attrs["schema_version"]),
                "date_created": str(attrs["created_utc"]),
                "export_id": export_id,
                "synthetic": True,
                "source_set": set_path.name,
                "models": attrs["models"],
                "global_label_names": synth.global_label_names,
            },
            "licenses": [],
            "categories": [{"id": i, "name": n, "supercategory": "finding"} for n, i in categories.items()],
            "images": images,
            "annotations": annotations,
        }
    coco_json = out / COCO_FILE
    _write_file(coco_json, (json.dumps(coco, indent=1) + "\n").encode("utf-8"))
    written = tables.write(out)
    return CocoExport(coco_json, image_dir, mask_dir, tuple(written), len(images), len(annotations))


class VindrCsvTables:
    """VinDr-style CSV rows of synthetic images, gathered image by image, then written together.

    Each row ends with the provenance columns (``synthetic=1``, source ids, engine...) and then
    ``extra_columns`` (e.g. the DICOM export's SOP Instance UIDs), whose values :meth:`add` takes per image.
    """

    def __init__(self, global_label_names: Sequence[str], extra_columns: Sequence[str] = ()) -> None:
        self.global_label_names = list(global_label_names)
        self.extra_columns = list(extra_columns)
        self.mammo_rows: list[list[Any]] = []
        self.cxr_box_rows: list[list[Any]] = []
        self.cxr_label_rows: list[list[Any]] = []

    def add(self, record: SampleRecord, name: str, extra_values: Sequence[Any] = ()) -> None:
        """Add the rows of one sample, named ``name`` (its synthetic image id)."""
        if len(extra_values) != len(self.extra_columns):
            raise ValueError(f"{len(self.extra_columns)} extra column(s) but {len(extra_values)} value(s)")
        m = record.meta
        extra = [1, *(m[key] for key in _PROVENANCE[1:-1]), record.decision, *extra_values]
        for box, label in zip(record.boxes.tolist(), record.box_labels, strict=True):
            coords = [_fmt(v) for v in box]
            if m["dataset"] == "cxr":
                self.cxr_box_rows.append([name, "synthetic", label, *coords, *extra])
            else:
                self.mammo_rows.append(_mammo_row(m, name, [label], coords, extra))
        if m["dataset"] == "cxr":
            present = set(record.global_labels)
            self.cxr_label_rows.append(
                [name, "synthetic", *(int(n in present) for n in self.global_label_names), *extra]
            )
        elif not record.box_labels:
            self.mammo_rows.append(_mammo_row(m, name, ["No Finding"], ["", "", "", ""], extra))

    def write(self, out: Path) -> list[Path]:
        """Write the CSVs that have rows into ``out`` (atomically); returns their paths."""
        written: list[Path] = []
        extra_header = [*_PROVENANCE, *self.extra_columns]
        if self.mammo_rows:
            from linop_core.vindr.mammo import FINDING_COLUMNS  # the reader's schema; here to keep synthset light

            header = [*FINDING_COLUMNS, *extra_header]
            _write_file(out / MAMMO_CSV, _csv_text(header, self.mammo_rows).encode("utf-8"))
            written.append(out / MAMMO_CSV)
        if self.cxr_label_rows:
            box_header = ["image_id", "rad_id", "class_name", "x_min", "y_min", "x_max", "y_max", *extra_header]
            _write_file(out / CXR_BOX_CSV, _csv_text(box_header, self.cxr_box_rows).encode("utf-8"))
            label_header = ["image_id", "rad_id", *self.global_label_names, *extra_header]
            _write_file(out / CXR_LABEL_CSV, _csv_text(label_header, self.cxr_label_rows).encode("utf-8"))
            written += [out / CXR_BOX_CSV, out / CXR_LABEL_CSV]
        return written


def _mammo_row(m: dict[str, Any], name: str, categories: list[str], coords: list[str], extra: list[Any]) -> list[Any]:
    # breast BI-RADS and density of a synthetic image are unknown: left empty rather than copied from the source
    return [
        m["source_study_id"], "", name, m["laterality"], m["view"], m["height"], m["width"], "", "",
        repr(categories), "", *coords, m["source_split"], *extra,
    ]  # fmt: skip
