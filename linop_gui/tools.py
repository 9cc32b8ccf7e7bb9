"""Annotation tools without widgets: tool names, box geometry, brush painting, and box/mask files.

Boxes are ``(x0, y0, x1, y1)`` floats in native pixel coordinates, half-open (the project's convention);
drawn boxes are snapped to whole pixels and clipped to the image. Brush masks are bool (H, W) over the
whole image, True = hole (the geometric convention of ``linop_core.masks``).

Box-and-mask files are JSON (schema ``linop-annotations`` 1): per image the mode, margin and boxes; a brush
mask is stored inline as its bounding box plus the packed bits of that crop, so one file carries
everything and can be loaded into another session of the same dataset.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from linop_core.errors import DataError
from linop_core.fileio import atomic_write_text
from linop_core.masks import box_hole
from linop_core.review.session import ImageAnnotation, LesionBox, ReviewSession
from linop_core.vocab import BOX_HOLES, HoleKind, Task

Box = tuple[float, float, float, float]
ANNOTATION_SCHEMA = "linop-annotations"
ANNOTATION_SCHEMA_VERSION = 1
MIN_BOX_SIDE = 2.0  # px: a shorter drag is a click, not a box


class Tool(StrEnum):
    """What a left-drag on the image does."""

    PAN = "pan"
    WL = "wl"
    BOX = "box"
    BRUSH = "brush"
    ERASER = "eraser"


# ----------------------------------------------------------------------------------------------- geometry


def box_from_points(p0: tuple[float, float], p1: tuple[float, float], width: int, height: int) -> Box | None:
    """The pixel-snapped box spanned by two drag points, clipped to the image; None if too small."""
    x0, x1 = sorted((p0[0], p1[0]))
    y0, y1 = sorted((p0[1], p1[1]))
    x0, y0 = max(0.0, math.floor(x0)), max(0.0, math.floor(y0))
    x1, y1 = min(float(width), math.ceil(x1)), min(float(height), math.ceil(y1))
    if x1 - x0 < MIN_BOX_SIDE or y1 - y0 < MIN_BOX_SIDE:
        return None
    return (float(x0), float(y0), float(x1), float(y1))


def snap_box(box: Box, width: int, height: int) -> Box:
    """Round to whole pixels and clip, keeping at least one pixel."""
    x0, y0, x1, y1 = (round(v) for v in box)
    x0, y0 = min(max(x0, 0), width - 1), min(max(y0, 0), height - 1)
    x1, y1 = min(max(x1, x0 + 1), width), min(max(y1, y0 + 1), height)
    return (float(x0), float(y0), float(x1), float(y1))


def expand_box(box: Box, margin: float, width: int, height: int) -> Box:
    x0, y0, x1, y1 = box
    return (
        max(0.0, x0 - margin), max(0.0, y0 - margin), min(float(width), x1 + margin), min(float(height), y1 + margin)
    )


def box_contains(box: Box, x: float, y: float) -> bool:
    return box[0] <= x < box[2] and box[1] <= y < box[3]


def label_rows(corners: Sequence[tuple[float, float]], near_x: float, near_y: float) -> list[int]:
    """The row of each box label drawn above its top-left corner ``corners[i]``: 0 on the corner, k stacked k label
    heights higher. A label takes the lowest row where no earlier label of that row has a corner within
    ``near_x`` / ``near_y`` image pixels of its own (VinDr-CXR gives several readers' boxes of one finding with
    almost the same corner, whose labels would otherwise hide each other)."""
    rows: list[int] = []
    for i, (x, y) in enumerate(corners):
        taken = {rows[j] for j, (u, v) in enumerate(corners[:i]) if abs(x - u) < near_x and abs(y - v) < near_y}
        rows.append(next(row for row in range(len(corners)) if row not in taken))
    return rows


def box_area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def mask_bbox(mask: np.ndarray) -> Box | None:
    """Half-open bounding box of the True pixels, or None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))


def shape_mask(shape: tuple[int, int], box: Box, hole: HoleKind | str) -> np.ndarray:
    """The hole of an ellipse or rectangle box as a brush mask (to keep editing it with the brush)."""
    kind = HoleKind.RECTANGLE if hole == HoleKind.RECTANGLE else HoleKind.ELLIPSE
    return box_hole(shape, box, kind)


# ----------------------------------------------------------------------------------------------- brush


def paint_segment(
    mask: np.ndarray, p0: tuple[float, float], p1: tuple[float, float], radius: float, value: bool
) -> Box | None:
    """Set (or clear) every pixel whose centre lies within ``radius`` of the segment p0-p1 (x, y points).

    A click is a segment of length 0 (a disk). Returns the touched pixel box, or None when outside the image.
    """
    h, w = mask.shape
    r = max(float(radius), 0.5)
    (ax, ay), (bx, by) = p0, p1
    c0, c1 = max(math.floor(min(ax, bx) - r), 0), min(math.ceil(max(ax, bx) + r) + 1, w)
    r0, r1 = max(math.floor(min(ay, by) - r), 0), min(math.ceil(max(ay, by) + r) + 1, h)
    if c1 <= c0 or r1 <= r0:
        return None
    xs = np.arange(c0, c1, dtype=np.float64)[None, :] + 0.5
    ys = np.arange(r0, r1, dtype=np.float64)[:, None] + 0.5
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    if length2 == 0.0:
        dist2 = (xs - ax) ** 2 + (ys - ay) ** 2
    else:
        t = np.clip(((xs - ax) * dx + (ys - ay) * dy) / length2, 0.0, 1.0)
        dist2 = (xs - (ax + t * dx)) ** 2 + (ys - (ay + t * dy)) ** 2
    inside = dist2 <= r * r
    window = mask[r0:r1, c0:c1]
    if value:
        window |= inside
    else:
        window &= ~inside
    return (float(c0), float(r0), float(c1), float(r1))


# ----------------------------------------------------------------------------------------------- edits


def with_box(annotation: ImageAnnotation, index: int | None, box: LesionBox | None) -> ImageAnnotation:
    """A copy of ``annotation`` with box ``index`` replaced (``None`` index appends; ``None`` box deletes)."""
    boxes = list(annotation.boxes)
    if index is None:
        if box is not None:
            boxes.append(box)
    elif box is None:
        del boxes[index]
    else:
        boxes[index] = box
    return ImageAnnotation(mode=annotation.mode, boxes=boxes, margin=annotation.margin)


def toggle_finding(annotation: ImageAnnotation, box: Box) -> ImageAnnotation:
    """Outpainting: select an existing finding as a kept region, or deselect it when already selected."""
    for i, b in enumerate(annotation.boxes):
        if b.source == "finding" and tuple(b.box) == tuple(box):
            return with_box(annotation, i, None)
    return with_box(annotation, None, LesionBox(box=tuple(box), hole=HoleKind.RECTANGLE, source="finding"))


def set_hole(
    annotation: ImageAnnotation,
    index: int,
    hole: HoleKind | str,
    shape: tuple[int, int],
    store_brush: Callable[[np.ndarray], str],
) -> ImageAnnotation:
    """Change a box's hole shape; switching to brush starts from the current ellipse/rectangle hole."""
    hole = HoleKind(hole)
    current = annotation.boxes[index]
    if current.hole is hole:
        return annotation
    if hole is HoleKind.BRUSH:
        name = store_brush(shape_mask(shape, current.box, current.hole))
        return with_box(annotation, index, replace(current, hole=HoleKind.BRUSH, brush_file=name))
    return with_box(annotation, index, replace(current, hole=hole, brush_file=None))


# ----------------------------------------------------------------------------------------------- files


def _encode_mask(mask: np.ndarray) -> dict[str, Any] | None:
    bbox = mask_bbox(mask)
    if bbox is None:
        return None
    x0, y0, x1, y1 = (int(v) for v in bbox)
    crop = mask[y0:y1, x0:x1]
    return {
        "image_shape": [int(mask.shape[0]), int(mask.shape[1])],
        "bbox": [x0, y0, x1, y1],
        "bits": base64.b64encode(np.packbits(crop, axis=None).tobytes()).decode("ascii"),
    }


def _decode_mask(data: dict[str, Any]) -> np.ndarray:
    h, w = (int(v) for v in data["image_shape"])
    x0, y0, x1, y1 = (int(v) for v in data["bbox"])
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(f"brush bbox {data['bbox']} lies outside the image {h}x{w}")
    n = (y1 - y0) * (x1 - x0)
    bits = np.unpackbits(np.frombuffer(base64.b64decode(data["bits"]), dtype=np.uint8), count=n)
    mask = np.zeros((h, w), dtype=bool)
    mask[y0:y1, x0:x1] = bits.reshape(y1 - y0, x1 - x0).astype(bool)
    return mask


def annotations_to_json(
    annotations: dict[str, ImageAnnotation], load_brush: Callable[[str], np.ndarray], dataset_root: str
) -> dict[str, Any]:
    images: dict[str, Any] = {}
    for image_id, ann in annotations.items():
        if not ann.boxes:
            continue
        boxes = []
        for b in ann.boxes:
            item: dict[str, Any] = {"box": [float(v) for v in b.box], "hole": str(b.hole), "source": b.source}
            if b.hole is HoleKind.BRUSH and b.brush_file:
                item["brush"] = _encode_mask(load_brush(b.brush_file))
            boxes.append(item)
        images[image_id] = {"mode": str(ann.mode), "margin": float(ann.margin), "boxes": boxes}
    return {
        "schema": ANNOTATION_SCHEMA,
        "schema_version": ANNOTATION_SCHEMA_VERSION,
        "dataset_root": dataset_root,
        "box_convention": "x0, y0, x1, y1 in native pixels, half-open",
        "images": images,
    }


def annotations_from_json(
    data: dict[str, Any], store_brush: Callable[[np.ndarray], str]
) -> dict[str, ImageAnnotation]:
    if data.get("schema") != ANNOTATION_SCHEMA or data.get("schema_version") != ANNOTATION_SCHEMA_VERSION:
        raise ValueError(f"not a {ANNOTATION_SCHEMA} v{ANNOTATION_SCHEMA_VERSION} file")
    out: dict[str, ImageAnnotation] = {}
    for image_id, item in data["images"].items():
        mode = item["mode"]
        if mode not in tuple(Task):
            raise ValueError(f"image {image_id}: mode {mode!r} is not {' or '.join(Task)}")
        boxes = []
        for b in item["boxes"]:
            box = tuple(float(v) for v in b["box"])
            if len(box) != 4 or box[2] <= box[0] or box[3] <= box[1]:
                raise ValueError(f"image {image_id}: box {b['box']} is not x0, y0, x1, y1 with positive size")
            hole = b.get("hole", HoleKind.ELLIPSE)
            if hole not in (*BOX_HOLES, HoleKind.BRUSH):
                raise ValueError(f"image {image_id}: hole {hole!r} is not ellipse, rectangle or brush")
            brush_file = None
            if hole == HoleKind.BRUSH:
                if not b.get("brush"):
                    raise ValueError(f"image {image_id}: brush box without a mask")
                brush_file = store_brush(_decode_mask(b["brush"]))
            source = b.get("source", "drawn")
            boxes.append(LesionBox(box=box, hole=hole, brush_file=brush_file, source=source))  # type: ignore[arg-type]
        out[image_id] = ImageAnnotation(mode=mode, boxes=boxes, margin=float(item.get("margin", 16.0)))
    return out


def default_annotation_file(session: ReviewSession) -> Path:
    return session.folder / "annotations.json"


def save_annotations(
    path: str | os.PathLike[str], session: ReviewSession, image_ids: Iterable[str] | None = None
) -> int:
    """Write the boxes and masks of ``image_ids`` (default: every annotated image); returns the image count."""
    ids = list(session.annotations) if image_ids is None else list(image_ids)
    chosen = {i: session.annotation(i) for i in ids}
    data = annotations_to_json(chosen, session.load_brush, session.dataset_root)
    atomic_write_text(path, json.dumps(data, indent=1))
    return len(data["images"])


def load_annotations(path: str | os.PathLike[str], session: ReviewSession, known_ids: Iterable[str]) -> list[str]:
    """Apply the file's annotations (one undoable step per image) to images of this dataset; returns their ids.

    Images the dataset does not hold are skipped; DataError when the file is not a valid annotation file.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        loaded = annotations_from_json(data, session.save_brush)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(path, f"cannot load boxes and masks ({exc}); choose a file saved by LINOP Studio") from exc
    known = set(known_ids)
    applied = []
    for image_id, ann in loaded.items():
        if image_id in known:
            session.apply(image_id, ann)
            applied.append(image_id)
    return applied
