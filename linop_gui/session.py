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

from linop_core.errors import DataError
from linop_core.fileio import atomic_open, atomic_write_text

SCHEMA_VERSION = 1
Box = tuple[float, float, float, float]
HoleShape = Literal["ellipse", "rectangle", "brush"]
Decision = Literal["pending", "approved", "rejected"]
REJECT_REASONS = ("seam", "texture", "implausible shape", "wrong density", "artefact", "other")


@dataclass
class LesionBox:
    """An inpainting box (mass to generate) or an outpainting selection (region to keep)."""

    box: Box
    hole: HoleShape = "ellipse"
    brush_file: str | None = None  # npz under candidates/ holding a bool (H, W) brush mask, when hole == "brush"
    source: Literal["drawn", "finding"] = "drawn"


@dataclass
class ImageAnnotation:
    mode: Literal["inpaint", "outpaint"] = "inpaint"
    boxes: list[LesionBox] = field(default_factory=list)
    margin: float = 16.0  # outpainting: pixels kept around each selected region


@dataclass
class CandidateEntry:
    """One generated candidate and its review state; the pixels are in ``candidates/<id>.npz``."""

    candidate_id: str
    image_id: str
    box_index: int
    seed: int
    engine: str
    model_name: str | None
    checkpoint_sha256: str | None
    created_utc: str
    decision: Decision = "pending"
    reject_reason: str | None = None
    realism_score: int | None = None  # 1-5, optional
    reviewer: str | None = None
    reviewed_utc: str | None = None
    # Everything else the synthesis recorded (see :func:`candidate_provenance`), so an exporter can rebuild
    # the full ``linop_core.synthesis.Candidate``; empty for candidates stored without it.
    provenance: dict[str, Any] = field(default_factory=dict)


def candidate_provenance(candidate: Any) -> dict[str, Any]:
    """The JSON-able provenance of a ``linop_core.synthesis.Candidate`` (all fields but the pixel arrays and
    those :class:`CandidateEntry` holds itself)."""
    window = candidate.window
    return {
        "task": str(candidate.task),
        "boxes": [[float(v) for v in box] for box in candidate.boxes],
        "box_labels": [str(v) for v in candidate.box_labels],
        "global_labels": [str(v) for v in candidate.global_labels],
        "crop_origin": [int(v) for v in candidate.crop_origin],
        "crop_size": [int(v) for v in candidate.crop_size],
        "scale": float(candidate.scale),
        "feather_px": float(candidate.feather_px),
        "window": {"center": float(window.center), "width": float(window.width), "explanation": window.explanation},
        "window_function": str(candidate.window_function),
        "seed_used": bool(candidate.seed_used),
        "hole_kind": str(candidate.hole_kind),
        "margin_px": float(candidate.margin_px),
        "model_size": [int(v) for v in candidate.model_size],
        "source_id": candidate.source_id,
        "engine_settings": json.loads(json.dumps(candidate.engine_settings, default=str)),
    }


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
                    mode=a["mode"],
                    margin=float(a["margin"]),
                    boxes=[LesionBox(**{**b, "box": tuple(b["box"])}) for b in a["boxes"]],
                )
                for image_id, a in data["annotations"].items()
            }
            self.candidates = {c["candidate_id"]: CandidateEntry(**c) for c in data["candidates"]}
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
        box_index: int,
        seed: int,
        engine: str,
        pixels: np.ndarray,
        generated: np.ndarray,
        model_name: str | None = None,
        checkpoint_sha256: str | None = None,
    ) -> CandidateEntry:
        """Stores a new candidate's pixels, then records it (the pixels are on disk before the entry)."""
        entry = self.store_candidate(
            image_id=image_id, box_index=box_index, seed=seed, engine=engine, pixels=pixels, generated=generated,
            model_name=model_name, checkpoint_sha256=checkpoint_sha256,
        )
        self.record_candidates([entry])
        return entry

    def store_candidate(
        self,
        *,
        image_id: str,
        box_index: int,
        seed: int,
        engine: str,
        pixels: np.ndarray,
        generated: np.ndarray,
        model_name: str | None = None,
        checkpoint_sha256: str | None = None,
        provenance: dict[str, Any] | None = None,
    ) -> CandidateEntry:
        """Writes a new candidate's pixels and returns its entry *without* recording it.

        Touches only a new file, never the session's state, so a worker thread may call it (compressing a
        full-field image takes a while); the GUI thread then records the entries with
        :meth:`record_candidates`. A candidate whose entry is never recorded leaves an orphan file only.
        """
        entry = CandidateEntry(
            candidate_id=uuid.uuid4().hex,
            image_id=image_id,
            box_index=box_index,
            seed=int(seed),
            engine=engine,
            model_name=model_name,
            checkpoint_sha256=checkpoint_sha256,
            created_utc=_now(),
            provenance=dict(provenance or {}),
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

    def rebuild_candidate(self, candidate_id: str, entry: CandidateEntry | None = None) -> Any:
        """The stored candidate as a ``linop_core.synthesis.Candidate`` (for the SynthSet writer).

        ``entry`` (a snapshot taken in the GUI thread) lets a worker thread rebuild without reading the
        session's state. Raises DataError for a candidate stored without provenance.
        """
        from linop_core.dicom import VoiWindow
        from linop_core.synthesis import Candidate

        entry = entry if entry is not None else self.candidates[candidate_id]
        p = entry.provenance
        if not p:
            raise DataError(self.candidate_file(candidate_id),
                            "candidate was stored without its synthesis provenance; generate it again to export it")
        image, generated = self.candidate_pixels(candidate_id)
        window = p["window"]
        return Candidate(
            task=p["task"], image=image, generated=generated.astype(np.float32, copy=False),
            boxes=tuple(tuple(float(v) for v in box) for box in p["boxes"]),
            box_labels=tuple(p["box_labels"]), global_labels=tuple(p["global_labels"]), seed=entry.seed,
            crop_origin=tuple(p["crop_origin"]), crop_size=tuple(p["crop_size"]), scale=float(p["scale"]),
            feather_px=float(p["feather_px"]),
            window=VoiWindow(float(window["center"]), float(window["width"]), window.get("explanation")),
            window_function=p["window_function"], engine=entry.engine, model_name=entry.model_name,
            checkpoint_sha256=entry.checkpoint_sha256, seed_used=bool(p.get("seed_used", True)),
            hole_kind=p.get("hole_kind", ""), margin_px=float(p.get("margin_px", 0.0)),
            model_size=tuple(p.get("model_size", (0, 0))), source_id=p.get("source_id"),
            engine_settings=dict(p.get("engine_settings", {})),
        )

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
        """Records a decision. A rejection needs a reason from :data:`REJECT_REASONS`; scores are 1-5."""
        if decision == "rejected" and reason not in REJECT_REASONS:
            raise ValueError(f"a rejection needs a reason from {REJECT_REASONS}, got {reason!r}")
        if realism_score is not None and not 1 <= realism_score <= 5:
            raise ValueError(f"realism score must be 1-5, got {realism_score}")
        entry = self.candidates[candidate_id]
        entry.decision = decision
        entry.reject_reason = reason if decision == "rejected" else None
        entry.realism_score = realism_score
        entry.reviewer = reviewer
        entry.reviewed_utc = _now()
        self.save()
        return entry

    def approved(self) -> list[CandidateEntry]:
        return [c for c in self.candidates.values() if c.decision == "approved"]


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    with atomic_open(path) as f:
        np.savez_compressed(f, **arrays)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
