"""Generation as jobs for the model and io threads, without widgets: the panel's settings, the synthesis requests
built from an image's annotation, and the functions a worker runs.

:func:`run_generation` (model thread) synthesises one request with ``linop_core.synthesis``, candidate by
candidate: each one's pixels are written (``ReviewSession.store_candidate``) and it is sent to the GUI thread at
once, which records its entry (``ReviewSession.record_candidates``) and shows it. A request superseded or cancelled
leaves at most orphan files for the candidates not yet received, never half-recorded entries.
:func:`load_items_job` (io thread) reads an image's stored candidates back for the gallery.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from linop_core.candidate import Candidate
from linop_core.dicom import DicomImage, VoiWindow
from linop_core.errors import LinopError
from linop_core.review.session import CandidateEntry, ImageAnnotation, ReviewSession
from linop_core.synthesis import InpaintRequest, OutpaintRequest, SynthesisRequest, synthesize
from linop_core.vindr import Finding
from linop_core.vocab import HoleKind, Task
from linop_gui.gallery_items import GalleryItem, load_gallery_items, make_gallery_item
from linop_gui.worker import JobContext

OUTPAINT_DEFAULT_LABEL = "Other lesion"
SEED_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class GenerateOptions:
    """The generation settings of the panel (also what batch export applies to many images)."""

    candidates: int = 4
    first_seed: int = 0
    hole_context: float = 2.0
    feather_px: float | None = None  # None: synthesis' default
    anatomy_check: bool = True
    selected_only: bool = False


@dataclass(frozen=True)
class BoxTask:
    """One synthesis call: an inpainting box (its index in the annotation) or, for outpainting, all kept
    regions at once (``box_index`` None)."""

    box_index: int | None
    request: SynthesisRequest

    @property
    def label(self) -> str:
        return "the kept regions" if self.box_index is None else f"box {self.box_index + 1}"


@dataclass(frozen=True)
class GenerationRequest:
    image_id: str
    image: DicomImage
    tasks: tuple[BoxTask, ...]
    seeds: tuple[int, ...]
    anatomy_check: bool = True


@dataclass(frozen=True)
class CandidateMade:
    """One candidate the moment it exists: its pixels are on disk, its entry not recorded yet."""

    image_id: str
    entry: CandidateEntry
    item: GalleryItem


@dataclass(frozen=True)
class GenerationResult:
    image_id: str
    entries: list[CandidateEntry]  # stored; each was sent as a CandidateMade, not recorded here
    items: list[GalleryItem]
    problems: list[str] = field(default_factory=list)  # boxes that could not be generated, one line each
    seed_used: bool = True


def outpaint_labels(annotation: ImageAnnotation, findings: tuple[Finding, ...]) -> tuple[str, ...]:
    """A label per kept region: the category of the dataset finding with the same box, else "Other lesion"."""
    labels = []
    for lesion in annotation.boxes:
        match = next((f for f in findings if f.box is not None and _same_box(f.box, lesion.box)), None)
        labels.append(match.categories[0] if match is not None and match.categories else OUTPAINT_DEFAULT_LABEL)
    return tuple(labels)


def _same_box(a: tuple[float, ...], b: tuple[float, ...], tolerance: float = 1.0) -> bool:
    return all(abs(float(x) - float(y)) <= tolerance for x, y in zip(a, b, strict=True))


def build_tasks(
    annotation: ImageAnnotation,
    seeds: tuple[int, ...],
    options: GenerateOptions,
    *,
    selected: int | None,
    load_brush: Callable[[str], np.ndarray],
    findings: tuple[Finding, ...] = (),
    global_labels: tuple[str, ...] = (),
) -> tuple[BoxTask, ...]:
    """The synthesis requests for an image's annotation: one per in-painting box, or one out-painting request."""
    if not annotation.boxes:
        return ()
    if annotation.mode is Task.OUTPAINT:
        request = OutpaintRequest(
            boxes=tuple(b.box for b in annotation.boxes), box_labels=outpaint_labels(annotation, findings),
            seeds=seeds, margin=float(annotation.margin), global_labels=global_labels, feather_px=options.feather_px,
        )
        return (BoxTask(None, request),)
    tasks = []
    for index, lesion in enumerate(annotation.boxes):
        if options.selected_only and selected is not None and index != selected:
            continue
        if lesion.hole is HoleKind.BRUSH:
            if not lesion.brush_file:
                continue
            hole: HoleKind | np.ndarray = load_brush(lesion.brush_file)
        else:
            hole = lesion.hole
        tasks.append(BoxTask(index, InpaintRequest(
            box=lesion.box, hole=hole, seeds=seeds, context=options.hole_context, feather_px=options.feather_px,
        )))
    return tuple(tasks)


def run_generation(ctx: JobContext, request: GenerationRequest, session: ReviewSession) -> GenerationResult:
    """Worker side: synthesise every task; each candidate, as soon as it exists, is stored and sent to the GUI
    as a :class:`CandidateMade` (``ctx.partial``), and progress counts candidates (a skipped box counts as
    done). Returns the summary; a single task that cannot be generated raises its LinopError."""
    engine = ctx.engine
    if engine is None:
        raise LinopError("no generation engine is loaded; choose a model (or the biharmonic baseline) and press Load")
    total = len(request.tasks) * len(request.seeds)
    entries: list[CandidateEntry] = []
    items: list[GalleryItem] = []
    problems: list[str] = []
    skipped: list[int] = []  # seeds counted as done for boxes that could not be generated
    source = request.image.pixels
    ctx.progress(0, total)
    for task in request.tasks:
        def made(candidate: Candidate, box_index: int | None = task.box_index) -> None:
            ctx.check()
            entry = session.store_candidate(image_id=request.image_id, box_index=box_index, candidate=candidate)
            item = make_gallery_item(entry, source, candidate.image, candidate.generated, candidate.window,
                                     candidate.window_function)
            entries.append(entry)
            items.append(item)
            ctx.partial(CandidateMade(request.image_id, entry, item))
            ctx.progress(len(entries) + len(skipped), total)

        try:
            synthesize(request.image, task.request, engine, anatomy_check=request.anatomy_check,
                       image_name=request.image_id, on_candidate=made)
        except LinopError as exc:
            if len(request.tasks) == 1:
                raise
            problems.append(f"{task.label}: {exc}")
            skipped.extend(request.seeds)
            ctx.progress(len(entries) + len(skipped), total)
    if not entries and problems:
        raise LinopError("; ".join(problems))
    seed_used = bool(getattr(engine, "seed_used", True))
    return GenerationResult(request.image_id, entries, items, problems, seed_used)


def load_items_job(ctx: JobContext, session: ReviewSession, entries: list[CandidateEntry], image_id: str,
                   source: np.ndarray, fallback: VoiWindow) -> tuple[str, list[GalleryItem]]:
    snapshot = _EntrySnapshot(session, entries)
    return image_id, load_gallery_items(snapshot, image_id, source, fallback, ctx.progress)  # type: ignore[arg-type]


class _EntrySnapshot:
    """The parts of a session :func:`load_gallery_items` reads, frozen in the GUI thread."""

    def __init__(self, session: ReviewSession, entries: list[CandidateEntry]) -> None:
        self._session = session
        self._entries = entries

    def candidates_for(self, image_id: str) -> list[CandidateEntry]:
        return [e for e in self._entries if e.image_id == image_id]

    def candidate_pixels(self, candidate_id: str) -> tuple[np.ndarray, np.ndarray]:
        return self._session.candidate_pixels(candidate_id)
