"""A batch job's candidates into a review session, for a reader to go through them as if drawn by hand.

:func:`batch_into_session` runs the job (any thread: it only writes new candidate files) and returns the
stored entries with the boxes they were made for; :func:`record_batch` then adds each box to its image's
annotation and records the entries in one save (the GUI thread owns the session's state).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from linop_core.masks import Box
from linop_core.progress import Progress
from linop_core.review.session import CandidateEntry, ImageAnnotation, LesionBox, ReviewSession
from linop_core.synthset.batch import BatchJob, Cancel, run
from linop_core.synthset.records import SynthSample
from linop_core.vocab import BOX_HOLES, HoleKind, Task


@dataclass(frozen=True)
class BatchItem:
    """One stored candidate of a batch, with the boxes to add to its image's annotation."""

    entry: CandidateEntry
    task: Task
    boxes: tuple[Box, ...]
    hole: HoleKind
    margin: float


@dataclass
class _SessionSink:
    session: ReviewSession
    items: list[BatchItem] = field(default_factory=list)
    _done: set[int] = field(default_factory=set)

    @property
    def done_units(self) -> frozenset[int]:
        return frozenset(self._done)

    def commit(self, unit: int, samples: Sequence[SynthSample], events: Sequence[str] = ()) -> None:
        # skipped sources reach the caller through run()'s BatchRun; the session keeps candidates only
        for sample in samples:
            c = sample.candidate
            entry = self.session.store_candidate(image_id=sample.source.image_id, box_index=None, candidate=c)
            hole = c.hole_kind or HoleKind.ELLIPSE
            self.items.append(BatchItem(entry, c.task, tuple(c.boxes), hole, c.margin_px))
        self._done.add(unit)


def batch_into_session(
    job: BatchJob,
    units: Iterable[int],
    session: ReviewSession,
    *,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> list[BatchItem]:
    """Synthesise ``units`` of ``job`` and store every candidate's pixels in ``session`` (not recorded yet)."""
    sink = _SessionSink(session)
    run(job, units, sink, progress=progress, cancel=cancel)
    return sink.items


def record_batch(session: ReviewSession, items: Sequence[BatchItem]) -> list[str]:
    """Add each batch box to its image's annotation and record the candidates; returns the image ids touched.

    An inpainting candidate joins the image's box with the same coordinates (or a new box); an image the
    reader set up for outpainting gets no inpainting candidates (the tasks are not mixed). An outpainting
    candidate makes its kept regions the annotation of an image that has none.
    """
    annotations: dict[str, ImageAnnotation] = {}
    entries = []
    for item in items:
        image_id = item.entry.image_id
        annotation = annotations.get(image_id) or session.annotation(image_id)
        if item.task is Task.INPAINT:
            if annotation.mode is not Task.INPAINT:
                continue
            box = tuple(float(v) for v in item.boxes[0])
            index = next((i for i, b in enumerate(annotation.boxes) if tuple(b.box) == box), None)
            if index is None:
                hole = item.hole if item.hole in BOX_HOLES else HoleKind.ELLIPSE
                annotation.boxes.append(LesionBox(box, hole=hole, source="drawn"))  # type: ignore[arg-type]
                index = len(annotation.boxes) - 1
            item.entry.box_index = index
        else:
            if not annotation.boxes:
                annotation = ImageAnnotation(mode=Task.OUTPAINT, margin=item.margin, boxes=[
                    LesionBox(tuple(float(v) for v in b), hole=HoleKind.RECTANGLE, source="finding")  # type: ignore[arg-type]
                    for b in item.boxes])
            item.entry.box_index = None
        annotations[image_id] = annotation
        entries.append(item.entry)
    session.record_batch(annotations, entries)
    return sorted(annotations)
