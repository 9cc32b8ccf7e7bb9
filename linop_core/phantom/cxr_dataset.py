"""Write a VinDr-CXR-shaped phantom dataset.

Layout: ``train/<image_id>.dicom``, ``test/<image_id>.dicom`` and ``annotations/`` with
``annotations_{train,test}.csv`` and ``image_labels_{train,test}.csv``.

Training images are read by three distinct readers out of R1..R17; each reader's boxes are the true box
with independent jitter, and a reader sometimes adds a 'Lung Opacity' row with the same coordinates (as in
VinDr). Test images carry one consensus reading: exact boxes, reader id ``CONSENSUS_RAD_ID`` (the real
test files' reader column was not verified; see vindr-data.md), and the singular 'Other disease' column.

Findings are balanced (about 40 % normal, 20 % each of pleural effusion, pneumothorax and pneumonia) and the
first images of each split cycle through all four, so small sets cover every class in both splits.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np

from linop_core.phantom.cxr import CXR_FINDINGS, render_cxr
from linop_core.phantom.dicom_writer import CXR_PROFILES, DicomIdentity, hex_id, write_dicom
from linop_core.phantom.records import (
    PhantomSummary,
    ProgressFn,
    check_arguments,
    coverage_order,
    fmt_coord,
    random_study_date,
    split_indices,
    write_csv_atomic,
)
from linop_core.vindr.cxr import GLOBAL_LABELS, LOCAL_LABELS

GLOBAL_LABELS_TRAIN: tuple[str, ...] = GLOBAL_LABELS
# The real test label file names one column in the singular.
GLOBAL_LABELS_TEST: tuple[str, ...] = tuple("Other disease" if g == "Other diseases" else g for g in GLOBAL_LABELS)
ANNOTATION_COLUMNS: tuple[str, ...] = ("image_id", "rad_id", "class_name", "x_min", "y_min", "x_max", "y_max")
LABELS_TRAIN_COLUMNS: tuple[str, ...] = ("image_id", "rad_id", *LOCAL_LABELS, *GLOBAL_LABELS_TRAIN)
LABELS_TEST_COLUMNS: tuple[str, ...] = ("image_id", "rad_id", *LOCAL_LABELS, *GLOBAL_LABELS_TEST)
CONSENSUS_RAD_ID = "R0"
N_READERS = 17

_FINDING_P = (0.4, 0.2, 0.2, 0.2)  # CXR_FINDINGS order
_JITTER = 0.04  # reader box jitter, as a fraction of the box side
_LUNG_OPACITY_P = 0.25  # chance a reader also labels an effusion/consolidation box 'Lung Opacity'


def _jitter(rng: np.random.Generator, box: tuple[float, float, float, float], width: int,
            height: int) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    sx, sy = (x1 - x0) * _JITTER, (y1 - y0) * _JITTER
    nx0, nx1 = sorted((x0 + rng.normal(0, sx), x1 + rng.normal(0, sx)))
    ny0, ny1 = sorted((y0 + rng.normal(0, sy), y1 + rng.normal(0, sy)))
    return (float(np.clip(nx0, 0, width - 1)), float(np.clip(ny0, 0, height - 1)),
            float(np.clip(nx1, nx0 + 1, width)), float(np.clip(ny1, ny0 + 1, height)))


def _reading(image_id: str, rad_id: str, boxes: list[tuple[str, tuple[float, float, float, float]]],
             global_labels: tuple[str, ...], globals_columns: tuple[str, ...],
             ) -> tuple[list[list[object]], list[object]]:
    """Annotation rows and the image-label row of one reader."""
    rows: list[list[object]] = []
    for name, (x0, y0, x1, y1) in boxes:
        rows.append([image_id, rad_id, name, fmt_coord(x0), fmt_coord(y0), fmt_coord(x1), fmt_coord(y1)])
    if not boxes:
        rows.append([image_id, rad_id, "No finding", "", "", "", ""])
    names = {name for name, _ in boxes}
    flags = [int(label in names) for label in LOCAL_LABELS]
    no_finding = not boxes and not global_labels
    flags += [int(label in global_labels) for label in globals_columns[:-1]] + [int(no_finding)]
    return rows, [image_id, rad_id, *flags]


def make_cxr_dataset(
    out: Path,
    n: int,
    seed: int,
    size: Literal["small", "full"] = "small",
    progress: ProgressFn | None = None,
) -> PhantomSummary:
    """Write ``n`` PA chest X-rays under ``out`` (about 80 % train, 20 % test) and return what was written.

    ``progress(done_images, n)`` is called after each image.

    Deterministic: the same (n, seed, size) gives byte-identical files.
    """
    check_arguments(n, size)
    out = Path(out)
    seeds = np.random.SeedSequence(seed).spawn(n + 1)
    plan = np.random.default_rng(seeds[0])
    test = split_indices(n, 0.2, [int(i) for i in plan.permutation(n)])

    findings: list[str] = [""] * n
    for in_test in (False, True):
        members = [i for i in range(n) if (i in test) == in_test]
        cycle = plan.permutation(len(CXR_FINDINGS))
        for k, i in enumerate(members):
            choice = int(cycle[k]) if k < len(cycle) else int(plan.choice(len(CXR_FINDINGS), p=_FINDING_P))
            findings[i] = CXR_FINDINGS[choice]
    weights = np.array([p.weight for p in CXR_PROFILES])
    vendor_order = coverage_order(plan.permutation(len(CXR_PROFILES)), [p.photometric for p in CXR_PROFILES])

    ann: dict[str, list[list[object]]] = {"train": [], "test": []}
    labels: dict[str, list[list[object]]] = {"train": [], "test": []}
    counts: Counter[str] = Counter()
    for i in range(n):
        split = "test" if i in test else "train"
        vendor = vendor_order[i] if i < len(vendor_order) else int(plan.choice(len(weights), p=weights / weights.sum()))
        profile = CXR_PROFILES[vendor]
        rows, cols = profile.shape(size, plan)
        image_id = hex_id(plan)
        identity = DicomIdentity(
            patient_id=f"PHANTOM{image_id[:10].upper()}", study_hex=hex_id(plan), series_hex=hex_id(plan),
            image_hex=image_id, series_number=1, instance_number=1,
            study_date=random_study_date(plan),
            patient_age=f"{int(plan.integers(18, 90)):03d}Y", patient_sex="M" if plan.random() < 0.5 else "F",
        )
        render_rng = np.random.default_rng(seeds[i + 1])
        phantom = render_cxr(render_rng, height=rows, width=cols, finding=findings[i],  # type: ignore[arg-type]
                             bits_stored=profile.bits_stored)
        info = write_dicom(
            out / split / f"{image_id}.dicom", phantom.image, phantom.body_mask, profile, identity,
            pixel_spacing_mm=profile.spacing(size), view_position="PA", laterality=None,
            patient_orientation=("L", "F"), body_part="CHEST", study_description="CHEST PA (PHANTOM)",
        )
        counts[f"images_{split}"] += 1
        counts[f"{findings[i].replace(' ', '_')}_images_{split}"] += 1
        counts[info.photometric.lower()] += 1
        if split == "train":
            readers = plan.choice(np.arange(1, N_READERS + 1), size=3, replace=False)
            for reader in readers:
                boxes: list[tuple[str, tuple[float, float, float, float]]] = []
                for name, box in phantom.boxes:
                    jittered = _jitter(plan, box, cols, rows)
                    boxes.append((name, jittered))
                    if name != "Pneumothorax" and plan.random() < _LUNG_OPACITY_P:
                        boxes.append(("Lung Opacity", jittered))
                reader_rows, label_row = _reading(image_id, f"R{int(reader)}", boxes, phantom.global_labels,
                                                  GLOBAL_LABELS_TRAIN)
                ann["train"] += reader_rows
                labels["train"].append(label_row)
        else:
            reader_rows, label_row = _reading(image_id, CONSENSUS_RAD_ID, list(phantom.boxes),
                                              phantom.global_labels, GLOBAL_LABELS_TEST)
            ann["test"] += reader_rows
            labels["test"].append(label_row)
        if progress is not None:
            progress(i + 1, n)

    annotations = out / "annotations"
    write_csv_atomic(annotations / "annotations_train.csv", ANNOTATION_COLUMNS, ann["train"])
    write_csv_atomic(annotations / "annotations_test.csv", ANNOTATION_COLUMNS, ann["test"])
    write_csv_atomic(annotations / "image_labels_train.csv", LABELS_TRAIN_COLUMNS, labels["train"])
    write_csv_atomic(annotations / "image_labels_test.csv", LABELS_TEST_COLUMNS, labels["test"])
    for split in ("train", "test"):
        for row in ann[split]:
            key = str(row[2]).replace(" ", "_")
            counts[f"{key}_rows_{split}" if row[2] == "No finding" else f"{key}_boxes_{split}"] += 1
        counts[f"label_rows_{split}"] = len(labels[split])
    return PhantomSummary(root=out, modality="cxr", n_studies=n, n_images=n, counts=dict(sorted(counts.items())))
