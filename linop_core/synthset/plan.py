"""What each work unit of a batch export synthesises: its source image, boxes, labels and seeds.

Unit ``i`` draws everything from ``numpy.random.default_rng([seed, i])``, in a fixed order (source, engine
seeds, then box placement), so a unit is the same whether it runs alone, in any shard or after a resume.

Mass boxes for in-painting (VinDr-Mammo) are sampled from the real Mass boxes of the training split: a real
box is picked at random; its width and height, relative to its own image, are scaled to the target image and
jittered; its centre is put at the same relative position in the target when the box then lies in the breast
(or at the mirrored position, since left and right breasts face opposite ways), else at a random breast
pixel; on MLO views the breast here excludes the pectoral muscle. Without any real mass box the size comes
from a log-normal fitted to VinDr-Mammo's Mass boxes on the dominant 3518 x 2800 grid (median 232 x 238 px,
IQR 158-329 x 161-346 px), scaled to the target image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from linop_core.anatomy import box_inside_fraction
from linop_core.errors import DataError
from linop_core.vindr import Box, ImageRecord
from linop_core.vindr.csvfile import detect_encoding, iter_lines, open_text

# VinDr-Mammo Mass boxes (vindr-data.md 1.2): median and interquartile range, on the 3518 x 2800 grid.
VINDR_GRID_HW = (3518.0, 2800.0)
VINDR_MASS_WIDTH_MEDIAN_IQR = (232.0, 158.0, 329.0)
VINDR_MASS_HEIGHT_MEDIAN_IQR = (238.0, 161.0, 346.0)
_IQR_Z = 2 * 0.6744897501960817  # width of the interquartile range of a standard normal

MIN_BOX_PX = 8.0
MAX_BOX_FRACTION = 0.5
SEED_HIGH = 2**31 - 1


def unit_rng(seed: int, unit: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(unit)])


def candidate_seeds(rng: np.random.Generator, count: int) -> tuple[int, ...]:
    return tuple(int(s) for s in rng.integers(0, SEED_HIGH, size=count))


def pick_source(rng: np.random.Generator, pool: Sequence[ImageRecord]) -> ImageRecord:
    return pool[int(rng.integers(len(pool)))]


@dataclass(frozen=True)
class MassBoxModel:
    """Real Mass boxes as relative ``(width, height, centre x, centre y)``, each over its own image size.

    Empty ``boxes`` means the documented VinDr fallback distribution.
    """

    boxes: np.ndarray  # (M, 4) float64

    @classmethod
    def from_boxes(cls, boxes: Sequence[tuple[ImageRecord, Box]]) -> MassBoxModel:
        rows = []
        for record, (x0, y0, x1, y1) in boxes:
            if not record.width or not record.height:
                continue
            w, h = float(record.width), float(record.height)
            rows.append(((x1 - x0) / w, (y1 - y0) / h, (x0 + x1) / 2 / w, (y0 + y1) / 2 / h))
        return cls(np.asarray(rows, dtype=np.float64).reshape(len(rows), 4))

    @property
    def is_fallback(self) -> bool:
        return len(self.boxes) == 0

    def draw(self, rng: np.random.Generator, size_jitter: float) -> tuple[float, float, float, float]:
        """Relative ``(w, h, cx, cy)``; the centre is NaN for the fallback, which has no position."""
        if self.is_fallback:
            rel = []
            for (median, q1, q3), grid in zip(
                (VINDR_MASS_WIDTH_MEDIAN_IQR, VINDR_MASS_HEIGHT_MEDIAN_IQR), VINDR_GRID_HW[::-1], strict=True
            ):
                sigma = math.log(q3 / q1) / _IQR_Z
                rel.append(float(np.exp(rng.normal(math.log(median), sigma))) / grid)
            return rel[0], rel[1], math.nan, math.nan
        w, h, cx, cy = self.boxes[int(rng.integers(len(self.boxes)))]
        jitter = np.exp(rng.uniform(-math.log1p(size_jitter), math.log1p(size_jitter), size=2))
        return float(w * jitter[0]), float(h * jitter[1]), float(cx), float(cy)


def _box_at(cx: float, cy: float, w: float, h: float, shape: tuple[int, int]) -> Box:
    height, width = shape
    x0 = min(max(cx - w / 2, 0.0), width - w)
    y0 = min(max(cy - h / 2, 0.0), height - h)
    return (float(x0), float(y0), float(x0 + w), float(y0 + h))


def sample_mass_box(
    rng: np.random.Generator,
    model: MassBoxModel,
    breast: np.ndarray,
    *,
    size_jitter: float = 0.15,
    min_inside: float = 0.95,
    tries: int = 100,
    image_name: str = "image",
) -> Box:
    """A box for a new mass on a normal mammogram whose allowed region ``breast`` (bool (H, W)) is given: the
    breast, without the pectoral muscle on MLO views (:func:`linop_core.anatomy.placement_mask`).

    At least ``min_inside`` of the box lies in the allowed region; boxes that cannot be placed shrink by 20 %
    and try again.
    """
    shape = (int(breast.shape[0]), int(breast.shape[1]))
    height, width = shape
    inside_pixels = np.flatnonzero(breast)
    if inside_pixels.size == 0:
        raise DataError(image_name, "no breast found in this image to place a mass in; leave it out of the pool")
    rel_w, rel_h, rel_cx, rel_cy = model.draw(rng, size_jitter)
    w = float(np.clip(rel_w * width, MIN_BOX_PX, MAX_BOX_FRACTION * width))
    h = float(np.clip(rel_h * height, MIN_BOX_PX, MAX_BOX_FRACTION * height))
    while True:
        if not math.isnan(rel_cx):
            for cx in (rel_cx * width, (1.0 - rel_cx) * width):
                box = _box_at(cx, rel_cy * height, w, h, shape)
                if box_inside_fraction(breast, box) >= min_inside:
                    return box
        for _ in range(tries):
            flat = int(inside_pixels[int(rng.integers(inside_pixels.size))])
            box = _box_at(flat % width + 0.5, flat // width + 0.5, w, h, shape)
            if box_inside_fraction(breast, box) >= min_inside:
                return box
        if w <= MIN_BOX_PX and h <= MIN_BOX_PX:
            raise DataError(image_name, f"could not place a {MIN_BOX_PX:g} px box inside the breast")
        w, h = max(w * 0.8, MIN_BOX_PX), max(h * 0.8, MIN_BOX_PX)


@dataclass(frozen=True)
class BoxRequest:
    """One box read from a user CSV: one ``--boxes`` unit."""

    image_id: str
    box: Box
    label: str


BOX_CSV_COLUMNS = ("image_id", "xmin", "ymin", "xmax", "ymax")


def read_box_csv(path: str | Path, default_label: str = "Mass") -> list[BoxRequest]:
    """``image_id,xmin,ymin,xmax,ymax[,label]`` rows, in file order (row ``i`` becomes unit ``i``).

    Every problem is fatal (a unit must not silently move to another row): a DataError naming the line.
    """
    path = Path(path)
    encoding = detect_encoding(path)
    if encoding.is_fallback:
        raise DataError(path, f"{encoding.describe()}; save the box CSV as UTF-8", encoding.foreign_line)
    requests: list[BoxRequest] = []
    try:
        with open_text(path, encoding) as handle:
            lines = iter_lines(handle)
            first = next(lines, None)
            header = [h.strip() for h in (first.fields or [])] if first is not None else []
            missing = [c for c in BOX_CSV_COLUMNS if c not in header]
            if missing:
                expected = ",".join(BOX_CSV_COLUMNS)
                raise DataError(path, f"missing column(s) {', '.join(missing)}; expected {expected}[,label]", 1)
            for line in lines:
                if line.fields is None:
                    raise DataError(path, line.error or "unreadable line", line.number)
                if len(line.fields) != len(header):
                    raise DataError(path, f"expected {len(header)} fields, found {len(line.fields)}", line.number)
                row = {k: v.strip() for k, v in zip(header, line.fields, strict=True)}
                requests.append(_box_request(path, line.number, row, default_label))
    except OSError as exc:
        raise DataError(path, f"cannot read: {exc.strerror or exc}") from exc
    if not requests:
        raise DataError(path, "no boxes in this CSV")
    return requests


def _box_request(path: Path, line: int, row: dict[str, str], default_label: str) -> BoxRequest:
    try:
        x0, y0, x1, y1 = (float(row[c]) for c in BOX_CSV_COLUMNS[1:])
    except (TypeError, ValueError):
        raise DataError(path, "box coordinates must be numbers", line) from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 <= x0 or y1 <= y0:
        raise DataError(path, f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is empty or inverted", line)
    image_id = row["image_id"]
    if not image_id:
        raise DataError(path, "image_id is empty", line)
    label = row.get("label") or default_label
    return BoxRequest(image_id, (x0, y0, x1, y1), label)
