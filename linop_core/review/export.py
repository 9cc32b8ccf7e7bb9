"""Reviewed candidates of a session -> an HDF5 synthetic set (and optionally COCO / PNG), resumably.

:func:`plan_export` chooses the candidates (a quick snapshot of the session, safe to take on the GUI thread);
:func:`export_reviewed` writes them (slow: reads the source DICOMs, compresses pixels), one unit per source
image, through :class:`~linop_core.synthset.writer.SynthSetWriter`, so an interrupted export resumes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from linop_core.catalog import Catalog
from linop_core.errors import DataError, LinopError
from linop_core.progress import Progress
from linop_core.review.consensus import ConsensusRule, consensus
from linop_core.review.session import CandidateEntry, ReviewSession
from linop_core.sources import DicomSource
from linop_core.synthset import Review, SynthSample, SynthSetWriter, export_coco
from linop_core.synthset.reader import next_free
from linop_core.synthset.records import TEST_SPLIT, ReaderVerdict
from linop_core.vocab import Decision, Task


@dataclass(frozen=True)
class ExportFilter:
    """Which reviewed candidates go into the set.

    ``consensus`` turns several readers' decisions into one (``min_readers`` at least, see
    :func:`~linop_core.review.consensus.consensus`); ``decisions`` then selects on that decision.
    """

    decisions: tuple[Decision, ...] = (Decision.APPROVED,)
    tasks: tuple[Task, ...] = (Task.INPAINT, Task.OUTPAINT)
    min_score: int = 0  # 0: any, rated or not; k: only candidates rated >= k
    consensus: ConsensusRule = ConsensusRule.LATEST
    min_readers: int = 1

    def decision(self, entry: CandidateEntry) -> Decision:
        return consensus(entry, self.consensus, self.min_readers)

    def matches(self, entry: CandidateEntry) -> bool:
        if self.decision(entry) not in self.decisions or entry.task not in self.tasks:
            return False
        return self.min_score <= 0 or (entry.realism_score or 0) >= self.min_score

    def text(self) -> str:
        parts = [" | ".join(f"decision=={d}" for d in self.decisions)]
        if self.consensus is not ConsensusRule.LATEST:
            parts.insert(0, f"consensus=={self.consensus}(min_readers={self.min_readers})")
        if set(self.tasks) != set(Task):
            parts.append(" | ".join(f"task=={t}" for t in self.tasks))
        if self.min_score > 0:
            parts.append(f"realism_score>={self.min_score}")
        return " & ".join(parts)


@dataclass(frozen=True)
class ExportPlan:
    out: Path
    entries: tuple[CandidateEntry, ...]  # snapshots (deep copies) of the session's entries
    sources: dict[str, DicomSource]
    filter: ExportFilter
    dataset_root: str
    allow_test_split: bool = False
    coco_dir: Path | None = None
    append: bool = False
    skipped: tuple[str, ...] = ()  # one line per candidate left out, and why

    @property
    def test_split_images(self) -> list[str]:
        return sorted({e.image_id for e in self.entries if self.sources[e.image_id].split == TEST_SPLIT})


@dataclass(frozen=True)
class ExportSummary:
    out: Path
    n_samples: int
    sha256: str
    coco_json: Path | None = None
    skipped: tuple[str, ...] = field(default_factory=tuple)


def plan_export(
    session: ReviewSession,
    catalog: Catalog | None,
    out: str | Path,
    export_filter: ExportFilter,
    *,
    allow_test_split: bool = False,
    coco_dir: str | Path | None = None,
    append: bool = False,
) -> ExportPlan:
    """Choose the candidates to export (a snapshot of the session). Raises DataError when none qualifies."""
    chosen, skipped = [], []
    for entry in session.candidates.values():
        if not export_filter.matches(entry):
            continue
        if not entry.provenance:
            skipped.append(f"{entry.candidate_id[:8]}: stored without synthesis provenance")
            continue
        if catalog is None:
            skipped.append(f"{entry.candidate_id[:8]}: no dataset open to read its source image from")
            continue
        try:
            catalog.by_id(entry.image_id)
        except LinopError:
            skipped.append(f"{entry.candidate_id[:8]}: image {entry.image_id} is not in the open dataset")
            continue
        chosen.append(copy.deepcopy(entry))
    if not chosen:
        raise DataError(session.folder, f"no candidate matches {export_filter.text()}; review some first"
                        + (f" ({len(skipped)} left out: {skipped[0]})" if skipped else ""))
    assert catalog is not None
    chosen.sort(key=lambda e: (e.image_id, -1 if e.box_index is None else e.box_index, e.created_utc, e.seed))
    return ExportPlan(
        out=Path(out), entries=tuple(chosen), sources={i: catalog.source(i) for i in {e.image_id for e in chosen}},
        filter=export_filter, dataset_root=session.dataset_root, allow_test_split=allow_test_split,
        coco_dir=Path(coco_dir) if coco_dir else None, append=append, skipped=tuple(skipped),
    )


def _review(entry: CandidateEntry, rule: ExportFilter) -> Review:
    """The set's record of ``entry``'s review: the rule's decision, and every reader's verdict beside it."""
    readers = tuple(
        ReaderVerdict(reader, review.decision, review.reject_reason or "",
                      float(review.realism_score) if review.realism_score else math.nan, review.reviewed_utc)
        for reader, review in sorted(entry.reviews.items()))
    if rule.consensus is ConsensusRule.LATEST:
        return Review(decision=entry.decision, reviewer=entry.reviewer or "", reject_reason=entry.reject_reason or "",
                      realism_score=float(entry.realism_score) if entry.realism_score else math.nan,
                      reviewed_utc=entry.reviewed_utc or "", readers=readers)
    reasons = sorted({v.reject_reason for v in readers if v.reject_reason})
    scores = [v.realism_score for v in readers if not math.isnan(v.realism_score)]
    return Review(decision=rule.decision(entry), reviewer=f"{rule.consensus} of " + ",".join(v.reader for v in readers),
                  reject_reason=";".join(reasons), realism_score=float(np.mean(scores)) if scores else math.nan,
                  reviewed_utc=max((v.reviewed_utc for v in readers), default=""), readers=readers)


def export_reviewed(
    plan: ExportPlan,
    session: ReviewSession,
    *,
    progress: Progress | None = None,
    check: Callable[[], None] | None = None,
) -> ExportSummary:
    """Write the plan's candidates: one unit per source image, committed as it is done; resumable.

    ``progress(done, total)`` counts source images, then the assembly (and the COCO export); ``check()`` is
    called before each candidate and may raise to stop (committed units stay for a resume).
    """
    if plan.test_split_images and not plan.allow_test_split:
        first = plan.test_split_images[0]
        raise DataError(plan.out, f"{len(plan.test_split_images)} source image(s) are from the test split "
                        f"(first: {first}); synthesising from evaluation images leaks them into training; "
                        "leave them out or tick 'Allow test-split sources'")
    plan.out.parent.mkdir(parents=True, exist_ok=True)
    by_image: dict[str, list[CandidateEntry]] = {}
    for entry in plan.entries:
        by_image.setdefault(entry.image_id, []).append(entry)
    box_names = sorted({n for e in plan.entries for n in e.provenance.get("box_labels", [])})
    global_names = sorted({n for e in plan.entries for n in e.provenance.get("global_labels", [])})
    start_unit, start_index = next_free(plan.out) if plan.append else (0, 0)
    config = {
        "source": "linop-gui review session",
        "dataset_root": plan.dataset_root,
        "candidates": sorted(e.candidate_id for e in plan.entries),
        "start_unit": start_unit,
    }
    writer = SynthSetWriter(plan.out, config=config, filter=plan.filter.text(), allow_test_split=plan.allow_test_split,
                            box_label_names=box_names, global_label_names=global_names, append=plan.append)
    images = sorted(by_image)
    total = len(images) + 1 + (1 if plan.coco_dir else 0)
    index = start_index
    for done, image_id in enumerate(images):
        entries = by_image[image_id]
        unit = start_unit + done
        if unit not in writer.done_units:
            writer.commit(unit, _unit_samples(plan.sources[image_id], entries, index, session, plan.filter, check))
        index += len(entries)
        if progress is not None:
            progress(done + 1, total)
    manifest = writer.finish()
    if progress is not None:
        progress(len(images) + 1, total)
    coco_json = None
    if plan.coco_dir is not None:
        coco_json = export_coco(plan.out, plan.coco_dir, decisions=plan.filter.decisions).coco_json
        if progress is not None:
            progress(total, total)
    return ExportSummary(plan.out, int(manifest["n_samples"]), str(manifest["sha256"]), coco_json, plan.skipped)


def _unit_samples(source: DicomSource, entries: Sequence[CandidateEntry], first_index: int, session: ReviewSession,
                  rule: ExportFilter, check: Callable[[], None] | None) -> list[SynthSample]:
    image = source.load()
    info = source.info_with(image)
    samples = []
    for k, entry in enumerate(entries):
        if check is not None:
            check()
        candidate = session.load_candidate(entry.candidate_id, entry)
        if candidate.image.shape != image.pixels.shape:
            raise DataError(source.path, f"candidate {entry.candidate_id[:8]} is {candidate.image.shape} but the "
                            f"source is {image.pixels.shape}; the file changed since it was generated")
        samples.append(SynthSample(index=first_index + k, candidate=candidate, source_pixels=np.asarray(image.pixels),
                                   source=info, review=_review(entry, rule)))
    return samples
