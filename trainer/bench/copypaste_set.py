"""Copy-paste sets matched unit for unit to an in-/out-painting batch, written in the synthetic-set format.

Unit ``i`` of a copy-paste set takes unit ``i`` of the VinDr batch job (:func:`linop_core.synthset.batch.vindr_job`
with the same seed), so the two sets differ only in how the lesion gets there:

- mammography: the job's normal image and sampled Mass box; the pasted mass is a real Mass box of a
  benchmark-training image, drawn with ``numpy.random.default_rng([seed, i, 1])``;
- chest X-ray: the job's abnormal image is the donor of its finding boxes; the target is a normal image of
  the benchmark's training split, drawn with the same generator.

Units whose job source comes from a held-out (validation or test) study are skipped: the benchmark drops
those samples of the in-/out-painting set too, so both sets keep the same units. Donors and targets are
drawn only from the benchmark's training studies within the job's split of the dataset (VinDr's training
split), so no held-out pixel reaches a copy-paste sample. Resumable through
:class:`~linop_core.synthset.writer.SynthSetWriter` (running the same call again continues).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from linop_core.dicom import read_dicom
from linop_core.errors import DataError
from linop_core.progress import Progress
from linop_core.sources import DicomSource
from linop_core.synthesis import InpaintRequest, OutpaintRequest
from linop_core.synthset.batch import UNREVIEWED_FILTER, BatchJob
from linop_core.synthset.records import SynthSample
from linop_core.synthset.writer import SynthSetWriter
from linop_core.vindr import ImageRecord
from linop_core.vocab import Task
from trainer.bench.copypaste import ENGINE, paste_findings, paste_mass

DONOR_STREAM = 1  # third entry of the donor generator's seed: keeps its draws apart from the job's


@dataclass(frozen=True)
class CopyPasteDonors:
    """What a copy-paste set may draw from: real Mass boxes (mammography) or normal images (chest X-ray),
    all from benchmark-training studies, and the held-out studies whose job units are skipped."""

    held_out_studies: frozenset[str]
    mass_boxes: tuple[tuple[ImageRecord, tuple[float, float, float, float]], ...] = ()
    normal_images: tuple[ImageRecord, ...] = ()


@dataclass(frozen=True)
class CopyPasteResult:
    path: Path
    units: int  # units of the job looked at
    written: int  # samples in the set
    skipped_held_out: int  # units whose job source is in a held-out study


def copy_paste_unit(job: BatchJob, unit: int, donors: CopyPasteDonors, seed: int) -> list[SynthSample] | None:
    """The copy-paste sample of job unit ``unit``, or None when the unit's source is held out."""
    plan = job.plan(unit)
    source = plan.source
    if not isinstance(source, DicomSource):
        raise DataError(str(source.name), "copy-paste sets are made from VinDr DICOM files only")
    if source.study_id in donors.held_out_studies:
        return None
    rng = np.random.default_rng([int(seed), int(unit), DONOR_STREAM])
    image = source.load()
    request = plan.request_for(image)
    if job.task is Task.INPAINT:
        assert isinstance(request, InpaintRequest) and request.box is not None
        if not donors.mass_boxes:
            raise DataError(source.path, "no Mass box in the benchmark's training split to paste from")
        donor_record, donor_box = donors.mass_boxes[int(rng.integers(len(donors.mass_boxes)))]
        donor = read_dicom(donor_record.path)
        settings = {"donor_image_id": donor_record.image_id, "donor_box": [float(v) for v in donor_box]}
        candidate = paste_mass(image, request.box, donor, donor_box, seed=int(request.seeds[0]),
                               source_id=image.meta.sop_instance_uid, settings=settings)  # fmt: skip
        target, target_image = source, image
    else:
        assert isinstance(request, OutpaintRequest)
        if not donors.normal_images:
            raise DataError(source.path, "no normal image in the benchmark's training split to paste into")
        record = donors.normal_images[int(rng.integers(len(donors.normal_images)))]
        target = DicomSource.from_record(record)
        target_image = target.load()
        settings = {"donor_image_id": source.image_id}
        candidate = paste_findings(target_image, image, request.boxes, request.box_labels, request.global_labels,
                                   seed=int(request.seeds[0]), margin=request.margin,
                                   source_id=target_image.meta.sop_instance_uid, settings=settings)  # fmt: skip
    return [SynthSample(index=unit, candidate=candidate, source_pixels=target_image.pixels,
                        source=target.info_with(target_image))]  # fmt: skip


def write_copy_paste_set(job: BatchJob, out: str | os.PathLike[str], *, n: int, seed: int, donors: CopyPasteDonors,
                         progress: Progress | None = None) -> CopyPasteResult:  # fmt: skip
    """Write the copy-paste twin of units ``0..n-1`` of ``job`` (one candidate per unit) into the set ``out``."""
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "engine": ENGINE,
        "matched_job": {k: job.config.get(k) for k in ("dataset", "pool_sha256", "seed", "size_jitter", "split")},
        "seed": seed,
        "units": n,
        "held_out_studies": len(donors.held_out_studies),
        "donor_mass_boxes": len(donors.mass_boxes),
        "target_normal_images": len(donors.normal_images),
    }
    units = list(range(n))
    skipped = 0
    if out_path.is_file():  # finished earlier: count what it holds
        from linop_core.synthset.reader import load_header

        _, table = load_header(out_path)
        return CopyPasteResult(out_path, n, len(table["index"]), n - len(table["index"]))
    writer = SynthSetWriter(out_path, config=config, filter=UNREVIEWED_FILTER, box_label_names=job.box_label_names,
                            global_label_names=job.global_label_names)  # fmt: skip
    for done, unit in enumerate(units, start=1):
        if unit not in writer.done_units:
            samples = copy_paste_unit(job, unit, donors, seed)
            if samples is None:
                skipped += 1
            else:
                writer.commit(unit, samples)
        if progress is not None:
            progress(done, len(units))
    manifest = writer.finish()
    return CopyPasteResult(out_path, n, int(manifest["n_samples"]), skipped)


def donors_for(train_records: Sequence[ImageRecord], held_out: frozenset[str], task: Task, *, split: str,
               normal_ids: frozenset[str] = frozenset()) -> CopyPasteDonors:  # fmt: skip
    """Donors from the benchmark's training records that are also in the dataset's ``split`` (the split the
    batch job draws from; never the official test split): their Mass boxes (in-painting twin) or, for the
    out-painting twin, those whose image id is in ``normal_ids``."""
    train = [r for r in train_records if r.study_id not in held_out and r.split == split]
    if task is Task.INPAINT:
        boxes = tuple((r, f.box) for r in train for f in r.findings if f.box is not None and "Mass" in f.categories)
        return CopyPasteDonors(held_out, mass_boxes=boxes)
    return CopyPasteDonors(held_out, normal_images=tuple(r for r in train if r.image_id in normal_ids))
