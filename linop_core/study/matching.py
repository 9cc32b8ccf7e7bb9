"""Real lesions for a reader study, matched to the synthetic cases so that only realism tells them apart.

* VinDr-Mammo: every box whose categories include Mass (training and test), one case per image. A real
  mass is matched to a synthetic one by box size: ``side = sqrt(width x height)`` in native pixels must be
  within ``size_tolerance`` times the synthetic side (the nearest in log-size wins), and, with
  ``match_density``, the breast density class must be the same whenever both are known.
* VinDr-CXR: every image with finding boxes, one case per image. A real image is matched by finding class:
  the same set of box classes as the synthetic image if any is left, else any image with a box of the
  synthetic image's first class; the pick within that tier is random (seeded), so the real cases are a
  random draw of the images of that class.

Every real image is used at most once, and images a synthetic case of the study was made from are left out
(a reader would otherwise see the same anatomy twice, once real and once synthetic). Matching is greedy in the
order of the (randomly drawn) synthetic targets. A target without a match is reported, never padded with an
unmatched real case.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from linop_core.study.model import Box, Unmatched
from linop_core.vindr import CxrDataset, ImageRecord, MammoDataset

MASS = "Mass"


@dataclass(frozen=True)
class SyntheticTarget:
    """What matching needs to know about one synthetic case."""

    case_id: str
    box: Box  # the lesion the case is about
    labels: tuple[str, ...]  # one per box of the sample, the case's lesion first
    density: str | None  # mammography: the source breast's density class, when the root knows it


@dataclass(frozen=True)
class RealLesion:
    """A real lesion picked for a study: its image, the lesion box first, then the image's other lesions."""

    record: ImageRecord
    boxes: tuple[Box, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True)
class RealPool:
    """The real lesions a study can draw from, and what was left out on the way."""

    lesions: tuple[RealLesion, ...]  # mammography: one per Mass box; CXR: one per image with boxes
    excluded_sources: int
    missing_files: int


@dataclass(frozen=True)
class MatchResult:
    pairs: tuple[tuple[str, RealLesion], ...]  # (synthetic target case_id, real lesion)
    unmatched: tuple[Unmatched, ...]


def box_side(box: Box) -> float:
    x0, y0, x1, y1 = box
    return math.sqrt(max(x1 - x0, 0.0) * max(y1 - y0, 0.0))


def real_pool(dataset: MammoDataset | CxrDataset, exclude_images: Collection[str]) -> RealPool:
    """Every usable real lesion of the root (both splits); images in ``exclude_images`` are left out."""
    lesions: list[RealLesion] = []
    excluded = missing = 0
    for record in dataset.records:
        if isinstance(dataset, MammoDataset):
            boxes = [f.box for f in record.findings if MASS in f.categories and f.box is not None]
            candidates = [
                RealLesion(record, (box, *(b for b in boxes if b != box)), (MASS,) * len(boxes)) for box in boxes
            ]
        else:
            findings = [f for f in record.findings if f.box is not None]
            candidates = (
                [RealLesion(record, tuple(f.box for f in findings), tuple(f.categories[0] for f in findings))]
                if findings
                else []
            )
        if not candidates:
            continue
        if record.image_id in exclude_images:
            excluded += len(candidates)
        elif not record.exists:
            missing += len(candidates)
        else:
            lesions.extend(candidates)
    return RealPool(tuple(lesions), excluded, missing)


def match_mammo(
    targets: Sequence[SyntheticTarget],
    pool: RealPool,
    *,
    size_tolerance: float,
    match_density: bool,
) -> MatchResult:
    """One real mass per target (in target order), nearest in box size within the tolerance."""
    if size_tolerance < 1.0:
        raise ValueError(f"size_tolerance is a factor >= 1, got {size_tolerance}")
    limit = math.log(size_tolerance)
    used: set[str] = set()
    pairs: list[tuple[str, RealLesion]] = []
    unmatched: list[Unmatched] = []
    for target in targets:
        side = box_side(target.box)
        best: tuple[float, int] | None = None
        for i, lesion in enumerate(pool.lesions):
            if lesion.record.image_id in used:
                continue
            density = lesion.record.breast_density
            if match_density and target.density and density and density != target.density:
                continue
            distance = abs(math.log(max(box_side(lesion.boxes[0]), 1e-6) / max(side, 1e-6)))
            if distance <= limit and (best is None or distance < best[0]):
                best = (distance, i)
        if best is None:
            density_text = f" and {target.density}" if match_density and target.density else ""
            unmatched.append(Unmatched(
                target.case_id,
                f"no unused real Mass box within {size_tolerance:g}x of side {side:.0f} px{density_text}",
            ))
            continue
        lesion = pool.lesions[best[1]]
        used.add(lesion.record.image_id)
        pairs.append((target.case_id, lesion))
    return MatchResult(tuple(pairs), tuple(unmatched))


def match_cxr(targets: Sequence[SyntheticTarget], pool: RealPool, rng: np.random.Generator) -> MatchResult:
    """One real image per target (in target order) with the same finding classes, else the same first class."""
    used: set[str] = set()
    pairs: list[tuple[str, RealLesion]] = []
    unmatched: list[Unmatched] = []
    for target in targets:
        primary = target.labels[0]
        wanted = set(target.labels)
        free = [lesion for lesion in pool.lesions if lesion.record.image_id not in used]
        same = [lesion for lesion in free if set(lesion.labels) == wanted]
        tier = same or [lesion for lesion in free if primary in lesion.labels]
        if not tier:
            unmatched.append(Unmatched(target.case_id, f"no unused real image with a {primary!r} box"))
            continue
        lesion = tier[int(rng.integers(len(tier)))]
        first = lesion.labels.index(primary)
        order = [first, *(i for i in range(len(lesion.boxes)) if i != first)]
        boxes, labels = tuple(lesion.boxes[i] for i in order), tuple(lesion.labels[i] for i in order)
        lesion = RealLesion(lesion.record, boxes, labels)
        used.add(lesion.record.image_id)
        pairs.append((target.case_id, lesion))
    return MatchResult(tuple(pairs), tuple(unmatched))
