"""Candidates as the review gallery shows them, without widgets: the review crop around the generated pixels,
a small thumbnail in the model window, and the stored candidates of an image read back from the session.

Pixels for the gallery are prepared off the GUI thread (:func:`make_gallery_item`, run by the worker): each item
carries only its review crop (the generated region plus a margin), never the full image.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from linop_core.dicom import VoiWindow, apply_window
from linop_core.review.session import ANONYMOUS_READER, CandidateEntry, ReviewSession
from linop_core.vocab import Decision

THUMBNAIL_SIDE = 96
CROP_PAD_FRACTION = 0.25
CROP_MIN_PAD = 16


@dataclass(frozen=True)
class GalleryItem:
    """One candidate as the gallery shows it; arrays are read-only crops at native resolution."""

    candidate_id: str
    image_id: str
    box_index: int | None  # None: an outpainting candidate (all kept regions)
    seed: int
    engine: str
    origin: tuple[int, int]  # (y0, x0) of the crop in the image
    source: np.ndarray  # (h, w) source crop, native values
    candidate: np.ndarray  # (h, w) candidate crop, native values
    weight: np.ndarray  # (h, w) float32 blend weight (0 = source pixel kept)
    thumbnail: np.ndarray  # (th, tw) uint8, the candidate crop in the model window

    @property
    def difference(self) -> np.ndarray:
        return np.abs(self.candidate.astype(np.float32) - self.source.astype(np.float32))

    def paste_into(self, pixels: np.ndarray) -> np.ndarray:
        """A copy of the full image ``pixels`` with this candidate's crop in place (for the main viewer)."""
        out = pixels.copy()
        y0, x0 = self.origin
        h, w = self.candidate.shape
        out[y0 : y0 + h, x0 : x0 + w] = self.candidate
        return out


@dataclass(frozen=True)
class OwnReview:
    """One reader's own view of a candidate: their decision, reason and score, never another reader's (readers
    review independently; the adjudication view is where decisions meet)."""

    decision: Decision = Decision.PENDING
    reject_reason: str | None = None
    realism_score: int | None = None


def own_review(entry: CandidateEntry, reader: str | None) -> OwnReview:
    """``reader``'s decision on ``entry`` (None or "" is the unnamed reader). A score given before deciding is kept
    only as the entry's latest change, so it is theirs while they were the last to touch the candidate."""
    review = entry.review_by(reader or None)
    if review is not None:
        return OwnReview(review.decision, review.reject_reason, review.realism_score)
    last = entry.reviewer or ANONYMOUS_READER
    if entry.decision is Decision.PENDING and entry.realism_score and last == (reader or ANONYMOUS_READER):
        return OwnReview(realism_score=entry.realism_score)
    return OwnReview()


def review_crop(generated: np.ndarray, pad_fraction: float = CROP_PAD_FRACTION,
                min_pad: int = CROP_MIN_PAD) -> tuple[int, int, int, int]:
    """``(y0, x0, y1, x1)``: the bounding rectangle of the generated pixels plus a margin, inside the image;
    the whole image when nothing was generated."""
    height, width = generated.shape
    rows = np.flatnonzero(generated.any(axis=1))
    if rows.size == 0:
        return 0, 0, height, width
    cols = np.flatnonzero(generated.any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    pad = max(min_pad, math.ceil(pad_fraction * max(y1 - y0, x1 - x0)))
    return max(0, y0 - pad), max(0, x0 - pad), min(height, y1 + pad), min(width, x1 + pad)


def thumbnail(pixels: np.ndarray, window: VoiWindow, function: str, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """uint8 preview of native ``pixels`` in ``window``, longest side at most ``side`` (block-averaged)."""
    h, w = pixels.shape
    step = max(1, math.ceil(max(h, w) / side))
    if step > 1:
        hh, ww = (h // step) * step, (w // step) * step
        small = pixels[:hh, :ww].astype(np.float64).reshape(hh // step, step, ww // step, step).mean(axis=(1, 3))
    else:
        small = pixels.astype(np.float64)
    unit = apply_window(small, window, function)
    return np.ascontiguousarray(np.clip(unit * 255.0 + 0.5, 0, 255).astype(np.uint8))


def make_gallery_item(
    entry: CandidateEntry,
    source: np.ndarray,
    candidate: np.ndarray,
    generated: np.ndarray,
    window: VoiWindow,
    function: str,
) -> GalleryItem:
    """Crops and thumbnails one candidate (numpy only: runs in a worker thread)."""
    y0, x0, y1, x1 = review_crop(generated)
    crops = [np.array(a[y0:y1, x0:x1]) for a in (source, candidate, generated)]
    for crop in crops:
        crop.setflags(write=False)
    thumb = thumbnail(crops[1], window, function)
    thumb.setflags(write=False)
    return GalleryItem(
        candidate_id=entry.candidate_id, image_id=entry.image_id, box_index=entry.box_index, seed=entry.seed,
        engine=entry.engine, origin=(y0, x0), source=crops[0], candidate=crops[1],
        weight=crops[2].astype(np.float32, copy=False), thumbnail=thumb,
    )


def entry_window(entry: CandidateEntry, fallback: VoiWindow) -> tuple[VoiWindow, str]:
    """The model window a candidate was made in (from its provenance), else ``fallback``."""
    window = entry.provenance.get("window") if entry.provenance else None
    if not window:
        return fallback, "LINEAR"
    return (VoiWindow(float(window["center"]), float(window["width"]), window.get("explanation")),
            str(entry.provenance.get("window_function", "LINEAR")))


def _entry_order(entry: CandidateEntry) -> tuple[str, int, int]:
    return entry.created_utc, -1 if entry.box_index is None else entry.box_index, entry.seed


def load_gallery_items(
    session: ReviewSession, image_id: str, source: np.ndarray, fallback_window: VoiWindow,
    progress: Callable[[int, int], None] | None = None,
) -> list[GalleryItem]:
    """The stored candidates of ``image_id`` as gallery items (reads their files: run it in a worker).

    Only reads ``session`` (the candidate files are written once and never change)."""
    entries = sorted(session.candidates_for(image_id), key=_entry_order)
    items = []
    for done, entry in enumerate(entries, start=1):
        image, generated = session.candidate_pixels(entry.candidate_id)
        if image.shape != source.shape:
            continue  # a candidate of another file with the same id: nothing sensible to compare
        window, function = entry_window(entry, fallback_window)
        items.append(make_gallery_item(entry, source, image, generated, window, function))
        if progress is not None:
            progress(done, len(entries))
    return items


def crop_range_window(item: GalleryItem) -> VoiWindow:
    lo, hi = float(item.source.min()), float(item.source.max())
    width = max(hi - lo + 1.0, 2.0)
    return VoiWindow(lo + (width - 1.0) / 2.0 + 0.5, width, "crop range")


def blank_entry(item: GalleryItem) -> CandidateEntry:
    return CandidateEntry(item.candidate_id, item.image_id, item.box_index, item.seed, item.engine, None, None, "")
