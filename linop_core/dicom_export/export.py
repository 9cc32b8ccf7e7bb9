"""Export a synthetic set as DICOM: one SC image and one SEG per sample, plus VinDr-style CSVs, resumably.

Layout of ``OUT_DIR``::

    linop-dicom-export.json         run id, set export id, created time; the last run's summary
    images/<synthetic id>.dcm       Secondary Capture image, Modality of the source
    seg/<synthetic id>.dcm          binary Segmentation of the generated region, referencing the image
    finding_annotations.csv         mammograms: the lesion boxes, VinDr-Mammo columns + provenance + UIDs
    annotations.csv, image_labels.csv   chest X-rays: the same in the VinDr-CXR layout

``<synthetic id>`` is the same id the COCO export uses (``synth-<export>-<index>``). Every file is written to a
temporary name and renamed; a second run into the same folder keeps the files already there (after checking
their SOP Instance UID and size) and writes the rest with the same UIDs, so an interrupted export just runs
again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from linop_core.dicom_export import provenance as pv
from linop_core.dicom_export.image import ImageIds, synthetic_image
from linop_core.dicom_export.pixels import PixelEncodingError
from linop_core.dicom_export.run import ExportRun, open_run, write_state
from linop_core.dicom_export.seg import generated_region_seg
from linop_core.errors import DataError
from linop_core.fileio import atomic_open
from linop_core.progress import Progress
from linop_core.synthset.coco import VindrCsvTables, synthetic_image_id
from linop_core.synthset.reader import SynthSet
from linop_core.synthset.records import DECISION_CODES

IMAGE_DIR = "images"
SEG_DIR = "seg"
CSV_COLUMNS = ("dicom_file", "sop_instance_uid", "study_instance_uid", "seg_file", "seg_sop_instance_uid")


@dataclass(frozen=True)
class DicomExport:
    """What an export did. ``n_written + n_kept == n_samples``; ``n_replaced`` of the written ones replaced a
    file that was there but was not this run's (another UID, or damaged)."""

    out_dir: Path
    run_id: str
    n_samples: int
    n_written: int
    n_kept: int
    n_replaced: int
    n_unreferenced: int  # samples whose source SOP Instance UID the set does not record: no Source Image Sequence
    image_files: tuple[Path, ...]
    seg_files: tuple[Path, ...]
    csv_files: tuple[Path, ...]
    seconds: float  # writing time of this run

    @property
    def files(self) -> tuple[Path, ...]:
        """Every DICOM file of the export (images, then SEGs), e.g. for STOW-RS."""
        return (*self.image_files, *self.seg_files)

    @property
    def files_per_second(self) -> float:
        return 2 * self.n_written / self.seconds if self.seconds > 0 else 0.0


def export_dicom(
    set_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    decisions: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> DicomExport:
    """Write every sample of the set (or those with a review decision in ``decisions``) into ``out_dir``.

    ``progress(done, total)`` is called after each sample. Raises :class:`DataError` for a set that cannot be
    written exactly (non-integer pixels) or a folder holding another set's export; files already written stay.
    """
    from linop_core import __version__

    set_path, out = Path(set_path), Path(out_dir)
    with SynthSet(set_path) as synth:
        export_id = str(synth.attrs["export_id"])
        rows = np.arange(len(synth))
        if decisions is not None:
            rows = rows[np.isin(synth.meta["decision"], [DECISION_CODES[d] for d in decisions])]
        run, _resumed = open_run(out, export_id, set_path.name)
        (out / IMAGE_DIR).mkdir(exist_ok=True)
        (out / SEG_DIR).mkdir(exist_ok=True)
        tables = VindrCsvTables(synth.global_label_names, CSV_COLUMNS)
        images: list[Path] = []
        segs: list[Path] = []
        written = kept = replaced = unreferenced = 0
        start = time.perf_counter()
        for done, row in enumerate(rows.tolist(), start=1):
            record = synth.record(row)
            meta = record.meta
            name = synthetic_image_id(export_id, record.index)
            ids = ImageIds.for_sample(run, record.index, str(meta["source_study_id"]))
            image_path, seg_path = out / IMAGE_DIR / f"{name}.dcm", out / SEG_DIR / f"{name}.dcm"
            height, width = int(meta["height"]), int(meta["width"])
            image_ok = _is_ours(image_path, ids.image_uid, (height, width))
            seg_ok = _is_ours(seg_path, ids.seg_uid, None)
            if image_ok and seg_ok:
                kept += 1
            else:
                replaced += int((image_path.exists() and not image_ok) or (seg_path.exists() and not seg_ok))
                prov = pv.Provenance.from_meta(meta, export_id, __version__)
                try:
                    image = synthetic_image(synth.image(row), meta, ids, run, prov)
                except PixelEncodingError as exc:
                    raise DataError(set_path, f"sample {record.index}: {exc}; use the HDF5 set for it") from exc
                seg = generated_region_seg(image, synth.mask(row), ids, prov)
                _save(image, image_path)
                _save(seg, seg_path)
                written += 1
            unreferenced += int(not meta["source_sop_instance_uid"])
            images.append(image_path)
            segs.append(seg_path)
            tables.add(record, name, [_rel(image_path, out), ids.image_uid, ids.study_uid, _rel(seg_path, out),
                                      ids.seg_uid])  # fmt: skip
            if progress is not None:
                progress(done, len(rows))
        seconds = time.perf_counter() - start
    csv_files = tables.write(out)
    result = DicomExport(out, run.run_id, len(rows), written, kept, replaced, unreferenced, tuple(images),
                         tuple(segs), tuple(csv_files), seconds)  # fmt: skip
    _record_summary(out, run, set_path, result)
    return result


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _save(ds: Dataset, path: Path) -> None:
    with atomic_open(path) as handle:
        ds.save_as(handle, enforce_file_format=True)


def _is_ours(path: Path, sop_uid: str, shape: tuple[int, int] | None) -> bool:
    """True when ``path`` is this run's finished file (renamed into place only once complete)."""
    if not path.is_file():
        return False
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # any unreadable file is simply written again
        return False
    if str(ds.get("SOPInstanceUID", "")) != sop_uid:
        return False
    if shape is None:
        return True
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    pixel_bytes = rows * cols * (int(ds.get("BitsAllocated", 16)) // 8)
    return (rows, cols) == shape and path.stat().st_size > pixel_bytes


def _record_summary(out: Path, run: ExportRun, set_path: Path, result: DicomExport) -> None:
    summary = {
        "n_samples": result.n_samples,
        "n_written": result.n_written,
        "n_kept": result.n_kept,
        "n_replaced": result.n_replaced,
        "n_unreferenced": result.n_unreferenced,
        "seconds": round(result.seconds, 3),
        "files_per_second": round(result.files_per_second, 3),
    }
    write_state(out, run, {"set_file": set_path.name, "last_run": summary})
