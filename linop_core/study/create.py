"""Drawing a reader study: synthetic cases from one or more sets, real lesions from the VinDr root, blinded.

:func:`create_study` is deterministic in ``StudyOptions.seed`` (same sets, root and options -> the same cases,
ids, crops and order; only ``created_utc`` differs). The seed is split into independent streams for the
synthetic draw, the CXR match, the crops and the final shuffle, so changing one option does not
reshuffle unrelated choices. Case ids are drawn from the seed and the sets' checksums.

Case mix: ``round(cases x synthetic_share)`` synthetic cases are drawn without replacement from the eligible
samples (decision in ``decisions``, same dataset as the root, at least one box); the other cases are real
lesions matched to the synthetic ones in turn (see :mod:`linop_core.study.matching`). A synthetic case
without a real match is counted in ``selection.unmatched`` and the study is simply that much smaller.

Display crop (``mode=crop``): ``crop_size`` native pixels square (cut to the image where it is smaller), at a
uniformly random position that keeps the whole lesion box inside, the same rule for real and synthetic
cases, so the lesion's place in the crop gives nothing away (centred on the box when the box does not fit).
``mode=whole``: the whole image.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from linop_core.errors import DataError, LinopError
from linop_core.hashing import sha256_file
from linop_core.study.matching import RealLesion, SyntheticTarget, match_cxr, match_mammo, real_pool
from linop_core.study.model import (
    Box,
    CaseSource,
    CropBox,
    DisplayMode,
    SelectionReport,
    SetRef,
    SourceKind,
    Study,
    StudyCase,
    StudyOptions,
    Truth,
)
from linop_core.synthset import DECISION_CODES, SynthSet
from linop_core.vindr import CxrDataset, MammoDataset, open_dataset

_STREAMS = ("synthetic", "match", "crop", "shuffle")
_ID_BITS = 48


@dataclass(frozen=True)
class _Drawn:
    """A synthetic sample drawn for the study."""

    set_index: int
    sample_index: int
    boxes: tuple[Box, ...]
    labels: tuple[str, ...]
    image_size: tuple[int, int]
    source_image_id: str


def check_options(options: StudyOptions) -> None:
    if options.cases < 1:
        raise LinopError(f"--cases must be at least 1 (got {options.cases})")
    if not 0.0 <= options.synthetic_share <= 1.0:
        raise LinopError(f"--synthetic-share must be between 0 and 1 (got {options.synthetic_share:g})")
    if options.crop_size < 16:
        raise LinopError(f"--crop-size must be at least 16 px (got {options.crop_size})")
    if options.size_tolerance < 1.0:
        raise LinopError(f"--size-tolerance is a factor >= 1 (got {options.size_tolerance:g})")
    unknown = [d for d in options.decisions if d not in DECISION_CODES]
    if unknown or not options.decisions:
        raise LinopError(f"--decisions takes a comma list of {', '.join(DECISION_CODES)} (got {unknown or 'none'})")


def crop_for(box: Box, image_size: tuple[int, int], options: StudyOptions, rng: np.random.Generator) -> CropBox:
    """The display crop of a case (see the module docstring)."""
    height, width = image_size
    if options.mode is DisplayMode.WHOLE:
        return (0, 0, width, height)
    x0, x1 = _crop_span(box[0], box[2], width, options.crop_size, rng)
    y0, y1 = _crop_span(box[1], box[3], height, options.crop_size, rng)
    return (x0, y0, x1, y1)


def _crop_span(lo: float, hi: float, extent: int, size: int, rng: np.random.Generator) -> tuple[int, int]:
    side = min(size, extent)
    first = max(0, math.ceil(hi) - side)  # smallest start keeping the box's far edge inside
    last = min(math.floor(lo), extent - side)  # largest start keeping its near edge inside
    if first <= last:
        start = int(rng.integers(first, last + 1))
    else:
        start = min(max(round((lo + hi) / 2.0 - side / 2.0), 0), extent - side)
    return start, start + side


def _draw_synthetic(
    sets: Sequence[SynthSet], task: str, options: StudyOptions, rng: np.random.Generator, n_synthetic: int
) -> tuple[list[_Drawn], int, set[str]]:
    """The drawn samples, how many were eligible, and every source image id of every set (to keep out)."""
    allowed = {DECISION_CODES[d] for d in options.decisions}
    eligible: list[tuple[int, int]] = []  # (set index, row)
    sources: set[str] = set()
    for s, synth in enumerate(sets):
        meta = synth.meta
        datasets = set(meta["dataset"].tolist())
        if len(synth) and task not in datasets:
            kind = "VinDr-Mammo" if task == "mammo" else "VinDr-CXR"
            raise DataError(
                synth.path,
                f"holds {'/'.join(sorted(datasets))} samples but the root is a {kind} root; give the root the set "
                "was made from",
            )
        sources.update(str(v) for v in meta["source_image_id"])
        for row in range(len(synth)):
            if meta["dataset"][row] == task and int(meta["decision"][row]) in allowed and int(meta["n_boxes"][row]) > 0:
                eligible.append((s, row))
    if len(eligible) < n_synthetic:
        names = ", ".join(str(synth.path) for synth in sets)
        raise DataError(
            names,
            f"{len(eligible)} eligible synthetic sample(s) (decision {'/'.join(options.decisions)}, with a box) but "
            f"the study needs {n_synthetic}; ask for fewer --cases, a lower --synthetic-share, or more --decisions",
        )
    picks = rng.choice(len(eligible), size=n_synthetic, replace=False) if n_synthetic else np.array([], dtype=int)
    drawn = []
    for pick in picks.tolist():
        s, row = eligible[pick]
        record = sets[s].record(row)
        drawn.append(_Drawn(
            set_index=s,
            sample_index=record.index,
            boxes=tuple(tuple(float(v) for v in box) for box in record.boxes),  # type: ignore[misc]
            labels=record.box_labels,
            image_size=(int(record.meta["height"]), int(record.meta["width"])),
            source_image_id=str(record.meta["source_image_id"]),
        ))
    return drawn, len(eligible), sources


def _density(dataset: MammoDataset | CxrDataset, image_id: str) -> str | None:
    if not isinstance(dataset, MammoDataset):
        return None
    try:
        return dataset.by_id(image_id).breast_density
    except DataError:
        return None  # the set was made from another copy of the data: density unknown, size still matched


def _case_ids(rng: np.random.Generator, n: int) -> list[str]:
    ids: list[str] = []
    while len(ids) < n:
        candidate = f"{int(rng.integers(1 << _ID_BITS)):012x}"
        if candidate not in ids:
            ids.append(candidate)
    return ids


def _real_size(lesion: RealLesion) -> tuple[int, int]:
    record = lesion.record
    if record.height is not None and record.width is not None:
        return (record.height, record.width)
    from linop_core.dicom import read_dicom_meta

    meta = read_dicom_meta(record.path)
    return (int(meta.rows), int(meta.columns))


def _relative_posix(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        raise DataError(path, f"is not under the root {root}; a study shows real images from its root only") from None


def create_study(
    set_paths: Sequence[str | os.PathLike[str]], root: str | os.PathLike[str], options: StudyOptions
) -> Study:
    """Draw a study (not written: call :meth:`Study.save`). See the module docstring for every rule."""
    check_options(options)
    if not set_paths:
        raise LinopError("a study needs at least one synthetic set (--sets A.h5 [B.h5 ...])")
    paths = [Path(p).resolve() for p in set_paths]
    if len(set(paths)) != len(paths):
        raise LinopError("the same set is given twice in --sets")
    root_path = Path(root).resolve()
    dataset = open_dataset(root_path)
    task = "mammo" if isinstance(dataset, MammoDataset) else "cxr"
    streams = dict(zip(_STREAMS, np.random.SeedSequence(options.seed).spawn(len(_STREAMS)), strict=True))
    rngs = {name: np.random.default_rng(seq) for name, seq in streams.items()}
    n_synthetic = round(options.cases * options.synthetic_share)
    n_real = options.cases - n_synthetic

    opened: list[SynthSet] = []
    try:
        for path in paths:
            opened.append(SynthSet(path))
        drawn, eligible, sources = _draw_synthetic(opened, task, options, rngs["synthetic"], n_synthetic)
        refs = tuple(SetRef(p, sha256_file(p), p.stat().st_size, len(s)) for p, s in zip(paths, opened, strict=True))
    finally:
        for synth in opened:
            synth.close()

    # case ids also depend on the sets, so two studies drawn with the same seed do not share ids
    id_key = int.from_bytes(hashlib.sha256("".join(r.sha256 for r in refs).encode()).digest()[:8], "big")
    ids = _case_ids(np.random.default_rng([options.seed, id_key]), n_synthetic + n_real)
    synthetic_ids, real_ids = ids[:n_synthetic], ids[n_synthetic:]
    targets = [
        SyntheticTarget(case_id, d.boxes[0], d.labels, _density(dataset, d.source_image_id))
        for case_id, d in zip(synthetic_ids, drawn, strict=True)
    ]
    pool = real_pool(dataset, sources)
    if n_real and not targets:
        raise LinopError("real cases are matched to synthetic ones: --synthetic-share 0 leaves nothing to match")
    wanted = [targets[i % len(targets)] for i in range(n_real)] if n_real else []
    if task == "mammo":
        match = match_mammo(wanted, pool, size_tolerance=options.size_tolerance, match_density=options.match_density)
    else:
        match = match_cxr(wanted, pool, rngs["match"])

    cases: list[StudyCase] = []
    for case_id, d in zip(synthetic_ids, drawn, strict=True):
        crop = crop_for(d.boxes[0], d.image_size, options, rngs["crop"])
        source = CaseSource(SourceKind.SET, set=d.set_index, sample_index=d.sample_index)
        cases.append(StudyCase(case_id, Truth.SYNTHETIC, source, d.boxes, d.labels, d.image_size, crop))
    for case_id, (target_id, lesion) in zip(real_ids, match.pairs, strict=False):
        size = _real_size(lesion)
        crop = crop_for(lesion.boxes[0], size, options, rngs["crop"])
        dicom = lesion.record.path
        source = CaseSource(SourceKind.ROOT, path=_relative_posix(dicom, root_path), size_bytes=dicom.stat().st_size)
        cases.append(StudyCase(case_id, Truth.REAL, source, lesion.boxes, lesion.labels, size, crop, target_id))
    order = rngs["shuffle"].permutation(len(cases))
    cases = [cases[i] for i in order.tolist()]

    selection = SelectionReport(
        eligible_synthetic=eligible,
        synthetic=n_synthetic,
        real_requested=n_real,
        real=len(match.pairs),
        real_candidates=len(pool.lesions),
        excluded_real_sources=pool.excluded_sources,
        missing_real_files=pool.missing_files,
        unmatched=match.unmatched,
    )
    from linop_core import __version__

    fingerprint = json.dumps([options.seed, [r.sha256 for r in refs], str(root_path), [c.case_id for c in cases]])
    return Study(
        study_uid=hashlib.sha256(fingerprint.encode()).hexdigest()[:16],
        created_utc=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        app_version=__version__,
        task=task,
        root=root_path,
        sets=refs,
        options=options,
        selection=selection,
        cases=tuple(cases),
    )
