"""The review session: what a reader drew, generated and decided, kept safe on disk. No widgets here.

A session belongs to one dataset root. It lives in its own folder (by default under the user's data
directory, keyed by the dataset's absolute path, so a read-only dataset share works) and holds:

- ``session.json``: annotations per image (boxes, hole shapes, outpainting selections and margin), the
  candidates' provenance and the review decisions. Rewritten atomically (temp file, then rename) on every
  change, so a crash or a kill loses at most the change being written, never the file.
- ``candidates/<candidate_id>.npz``: the candidate pixels (and brush masks), written once when generated.

Reopening the same dataset opens the same folder and restores everything. Edits to annotations go through
:meth:`ReviewSession.apply`, which keeps an undo/redo history per session.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from linop_core.candidate import Candidate
from linop_core.errors import DataError
from linop_core.fileio import atomic_open, atomic_write_text
from linop_core.vocab import Decision, HoleKind, Task

SCHEMA_VERSION = 1
Box = tuple[float, float, float, float]
REJECT_REASONS = ("seam", "texture", "implausible shape", "wrong density", "artefact", "other")


@dataclass
class LesionBox:
    """An inpainting box (mass to generate) or an outpainting selection (region to keep)."""

    box: Box
    hole: HoleKind = HoleKind.ELLIPSE
    brush_file: str | None = None  # npz under candidates/ holding a bool (H, W) brush mask, when hole == "brush"
    source: Literal["drawn", "finding"] = "drawn"

    def __post_init__(self) -> None:
        self.hole = HoleKind(self.hole)


@dataclass
class ImageAnnotation:
    mode: Task = Task.INPAINT
    boxes: list[LesionBox] = field(default_factory=list)
    margin: float = 16.0  # outpainting: pixels kept around each selected region

    def __post_init__(self) -> None:
        self.mode = Task(self.mode)


ANONYMOUS_READER = "reader"  # the name a decision is kept under when the reviewer gave none


@dataclass
class ReaderReview:
    """One reader's decision on a candidate."""

    decision: Decision
    reject_reason: str | None = None
    realism_score: int | None = None  # 1-5, optional
    reviewed_utc: str = ""

    def __post_init__(self) -> None:
        self.decision = Decision(self.decision)


@dataclass
class CandidateEntry:
    """One generated candidate and its review state; the pixels are in ``candidates/<id>.npz``.

    ``box_index`` is the inpainting box of the image's annotation the candidate was made for; None for an
    outpainting candidate (made from all kept regions at once). ``reviews`` keeps every reader's own decision
    (readers review independently); ``decision`` .. ``reviewed_utc`` repeat the latest one, which is the
    whole story for a single reader.
    """

    candidate_id: str
    image_id: str
    box_index: int | None
    seed: int
    engine: str
    model_name: str | None
    checkpoint_sha256: str | None
    created_utc: str
    decision: Decision = Decision.PENDING
    reject_reason: str | None = None
    realism_score: int | None = None  # 1-5, optional
    reviewer: str | None = None
    reviewed_utc: str | None = None
    # ``Candidate.to_record()``: everything the synthesis recorded, so an exporter can rebuild the full
    # candidate; empty for candidates stored without it.
    provenance: dict[str, Any] = field(default_factory=dict)
    reviews: dict[str, ReaderReview] = field(default_factory=dict)  # reader pseudonym -> their decision

    def review_by(self, reader: str | None) -> ReaderReview | None:
        """``reader``'s own decision (None while they have not decided)."""
        return self.reviews.get(reader or ANONYMOUS_READER)

    @property
    def task(self) -> Task:
        if "task" in self.provenance:
            return Task(self.provenance["task"])
        return Task.OUTPAINT if self.box_index is None else Task.INPAINT


def _entry_from_json(data: dict[str, Any]) -> CandidateEntry:
    box_index = data.get("box_index")
    if box_index is not None and int(box_index) < 0:  # sessions before the Task enum wrote -1 for outpainting
        box_index = None
    decision = Decision(data.get("decision", Decision.PENDING))
    reviews = {reader: ReaderReview(**review) for reader, review in (data.get("reviews") or {}).items()}
    if not reviews and decision is not Decision.PENDING:  # a session from before per-reader decisions
        reviews[data.get("reviewer") or ANONYMOUS_READER] = ReaderReview(
            decision, data.get("reject_reason"), data.get("realism_score"), data.get("reviewed_utc") or "")
    return CandidateEntry(**{**data, "box_index": box_index, "decision": decision, "reviews": reviews})


class ReviewSession:
    """The state of one reader's work on one dataset, persisted after every change."""

    def __init__(self, folder: Path, dataset_root: str) -> None:
        self.folder = Path(folder)
        self.dataset_root = dataset_root
        self.annotations: dict[str, ImageAnnotation] = {}
        self.candidates: dict[str, CandidateEntry] = {}
        self._undo: list[tuple[str, ImageAnnotation | None]] = []
        self._redo: list[tuple[str, ImageAnnotation | None]] = []

    # -- opening ---------------------------------------------------------------------------------------
    @staticmethod
    def default_folder(dataset_root: Path, base: Path | None = None) -> Path:
        """``<base>/sessions/<sha1 of the absolute root>``; ``base`` defaults to the user's data directory."""
        if base is None:
            xdg = os.environ.get("XDG_DATA_HOME")
            base = (Path(xdg) if xdg else Path.home() / ".local" / "share") / "linop"
        key = hashlib.sha1(str(Path(dataset_root).resolve()).encode()).hexdigest()[:16]
        return base / "sessions" / key

    @classmethod
    def open(cls, dataset_root: str | os.PathLike[str], folder: str | os.PathLike[str] | None = None) -> ReviewSession:
        """Opens (restoring) or creates the session of ``dataset_root``."""
        dataset_root = Path(dataset_root)
        folder = Path(folder) if folder is not None else cls.default_folder(dataset_root)
        session = cls(folder, str(Path(dataset_root).resolve()))
        path = session.path
        if path.exists():
            session._load(path)
        else:
            (folder / "candidates").mkdir(parents=True, exist_ok=True)
            session.save()
        return session

    @property
    def path(self) -> Path:
        return self.folder / "session.json"

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
            if data.get("schema_version") != SCHEMA_VERSION:
                raise ValueError(f"schema version {data.get('schema_version')} (this app reads {SCHEMA_VERSION})")
            self.annotations = {
                image_id: ImageAnnotation(
                    mode=Task(a["mode"]),
                    margin=float(a["margin"]),
                    boxes=[LesionBox(**{**b, "box": tuple(b["box"]), "hole": HoleKind(b.get("hole", "ellipse"))})
                           for b in a["boxes"]],
                )
                for image_id, a in data["annotations"].items()
            }
            self.candidates = {c["candidate_id"]: _entry_from_json(c) for c in data["candidates"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(path, f"review session cannot be read ({exc}); move it aside to start afresh") from exc

    # -- persistence ----------------------------------------------------------------------------------
    def save(self) -> None:
        """Atomically rewrites ``session.json``."""
        data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "dataset_root": self.dataset_root,
            "saved_utc": _now(),
            "annotations": {k: asdict(v) for k, v in self.annotations.items()},
            "candidates": [asdict(c) for c in self.candidates.values()],
        }
        atomic_write_text(self.path, json.dumps(data, indent=1))

    # -- annotations with undo/redo --------------------------------------------------------------------
    def annotation(self, image_id: str) -> ImageAnnotation:
        return copy.deepcopy(self.annotations.get(image_id, ImageAnnotation()))

    def apply(self, image_id: str, new: ImageAnnotation) -> None:
        """Replaces an image's annotation (one undoable step) and saves."""
        self._undo.append((image_id, copy.deepcopy(self.annotations.get(image_id))))
        self._redo.clear()
        self.annotations[image_id] = copy.deepcopy(new)
        self.save()

    def undo(self) -> str | None:
        """Undoes the last annotation change; returns the image id it touched, or None if nothing to undo."""
        return self._swap(self._undo, self._redo)

    def redo(self) -> str | None:
        return self._swap(self._redo, self._undo)

    def _swap(self, source: list, target: list) -> str | None:
        if not source:
            return None
        image_id, previous = source.pop()
        target.append((image_id, copy.deepcopy(self.annotations.get(image_id))))
        if previous is None:
            self.annotations.pop(image_id, None)
        else:
            self.annotations[image_id] = previous
        self.save()
        return image_id

    def save_brush(self, mask: np.ndarray) -> str:
        """Stores a brush hole mask (bool (H, W)); returns the file name to put in ``LesionBox.brush_file``."""
        name = f"brush-{uuid.uuid4().hex}.npz"
        _atomic_savez(self.folder / "candidates" / name, mask=mask.astype(bool))
        return name

    def load_brush(self, name: str) -> np.ndarray:
        return np.load(self.folder / "candidates" / name)["mask"]

    # -- candidates and review --------------------------------------------------------------------------
    def add_candidate(
        self,
        *,
        image_id: str,
        box_index: int | None,
        seed: int,
        engine: str,
        pixels: np.ndarray,
        generated: np.ndarray,
        model_name: str | None = None,
        checkpoint_sha256: str | None = None,
    ) -> CandidateEntry:
        """Stores pixels made outside :mod:`linop_core.synthesis` (no provenance: reviewable, not exportable),
        then records the entry (the pixels are on disk before the entry)."""
        entry = self._write_entry(image_id, box_index, seed, engine, model_name, checkpoint_sha256, {}, pixels,
                                  generated)
        self.record_candidates([entry])
        return entry

    def store_candidate(self, *, image_id: str, box_index: int | None, candidate: Candidate) -> CandidateEntry:
        """Writes a synthesised candidate's pixels and returns its entry *without* recording it.

        Touches only a new file, never the session's state, so a worker thread may call it (compressing a
        full-field image takes a while); the GUI thread then records the entries with
        :meth:`record_candidates`. A candidate whose entry is never recorded leaves an orphan file only.
        """
        return self._write_entry(image_id, box_index, candidate.seed, candidate.engine, candidate.model_name,
                                 candidate.checkpoint_sha256, candidate.to_record(), candidate.image,
                                 candidate.generated)

    def _write_entry(self, image_id: str, box_index: int | None, seed: int, engine: str, model_name: str | None,
                     checkpoint_sha256: str | None, provenance: dict[str, Any], pixels: np.ndarray,
                     generated: np.ndarray) -> CandidateEntry:
        entry = CandidateEntry(
            candidate_id=uuid.uuid4().hex, image_id=image_id, box_index=box_index, seed=int(seed), engine=engine,
            model_name=model_name, checkpoint_sha256=checkpoint_sha256, created_utc=_now(), provenance=provenance,
        )
        _atomic_savez(self.candidate_file(entry.candidate_id), image=pixels, generated=generated)
        return entry

    def record_candidates(self, entries: list[CandidateEntry]) -> None:
        """Records entries made by :meth:`store_candidate` (their pixels are already on disk); one save."""
        for entry in entries:
            self.candidates[entry.candidate_id] = entry
        self.save()

    def record_batch(self, annotations: dict[str, ImageAnnotation], entries: list[CandidateEntry]) -> None:
        """Replaces the annotations of several images and records entries, with one save and no undo step
        (a batch run's boxes are not an edit to undo box by box)."""
        for image_id, annotation in annotations.items():
            self.annotations[image_id] = copy.deepcopy(annotation)
        self.record_candidates(entries)

    def load_candidate(self, candidate_id: str, entry: CandidateEntry | None = None) -> Candidate:
        """The stored candidate as a :class:`~linop_core.candidate.Candidate` (for the SynthSet writer).

        ``entry`` (a snapshot taken in the GUI thread) lets a worker thread load without reading the
        session's state. Raises DataError for a candidate stored without provenance.
        """
        entry = entry if entry is not None else self.candidates[candidate_id]
        where = self.candidate_file(candidate_id)
        if not entry.provenance:
            raise DataError(where, "candidate was stored without its synthesis provenance; generate it again to "
                            "export it")
        image, generated = self.candidate_pixels(candidate_id)
        # records written before Candidate.to_record kept seed, engine and checkpoint only in the entry
        known = {"seed": entry.seed, "engine": entry.engine, "model_name": entry.model_name,
                 "checkpoint_sha256": entry.checkpoint_sha256}
        return Candidate.from_record({**known, **entry.provenance}, image, generated, where=str(where))

    def candidate_file(self, candidate_id: str) -> Path:
        return self.folder / "candidates" / f"{candidate_id}.npz"

    def candidate_pixels(self, candidate_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(image, generated-weight) arrays of a candidate."""
        with np.load(self.candidate_file(candidate_id)) as data:
            return data["image"], data["generated"]

    def candidates_for(self, image_id: str) -> list[CandidateEntry]:
        return [c for c in self.candidates.values() if c.image_id == image_id]

    def review(
        self,
        candidate_id: str,
        decision: Decision,
        *,
        reviewer: str | None = None,
        reason: str | None = None,
        realism_score: int | None = None,
    ) -> CandidateEntry:
        """Records ``reviewer``'s decision (each reader's is kept apart; "pending" withdraws theirs). A
        rejection needs a reason from :data:`REJECT_REASONS`; scores are 1-5."""
        decision = Decision(decision)
        if decision is Decision.REJECTED and reason not in REJECT_REASONS:
            raise ValueError(f"a rejection needs a reason from {REJECT_REASONS}, got {reason!r}")
        if realism_score is not None and not 1 <= realism_score <= 5:
            raise ValueError(f"realism score must be 1-5, got {realism_score}")
        entry = self.candidates[candidate_id]
        now = _now()
        reader = reviewer or ANONYMOUS_READER
        if decision is Decision.PENDING:
            entry.reviews.pop(reader, None)
        else:
            entry.reviews[reader] = ReaderReview(decision, reason if decision is Decision.REJECTED else None,
                                                 realism_score, now)
        entry.decision = decision
        entry.reject_reason = reason if decision is Decision.REJECTED else None
        entry.realism_score = realism_score
        entry.reviewer = reviewer
        entry.reviewed_utc = now
        self.save()
        return entry

    def readers(self) -> list[str]:
        """Everyone who decided on at least one candidate, sorted."""
        return sorted({reader for entry in self.candidates.values() for reader in entry.reviews})

    def approved(self) -> list[CandidateEntry]:
        return [c for c in self.candidates.values() if c.decision is Decision.APPROVED]


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    with atomic_open(path) as f:
        np.savez_compressed(f, **arrays)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
