"""Masks: MAT's training hole generator, box -> hole shapes, outpainting keep masks, feathering.

Two conventions meet here, so every function says which one it returns:

* model masks (:func:`random_mat_mask`) are float32 with **1 = keep (known), 0 = hole**, as MAT expects;
* geometric masks (:func:`box_hole`, :func:`random_brush`, :func:`lesion_shaped_hole`) are bool with
  **True = hole / stroke**, and :func:`outpaint_keep_mask` is bool with **True = kept**.

Boxes are ``(x0, y0, x1, y1)`` in pixel coordinates, floats, half-open; a pixel ``(row, col)`` belongs to a
shape when its centre ``(col + 0.5, row + 0.5)`` does.

The random generator follows MAT's ``mask_generator_512`` (see ``mat-architecture.md`` section 5.1): up to
4 boxes of side < s/2, up to 2 boxes of side < s, up to 8 brush strokes, rejection outside ``hole_range``.
For sizes other than 512 the geometry is scaled (box sizes with each side, stroke radius with the
diagonal, stroke width with sqrt(H*W)/512), so the hole-ratio statistics are the same at every size.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from scipy import ndimage

from linop_core.vocab import HoleKind

Box = tuple[float, float, float, float]

# MAT's counts per variant: (max boxes of side < s/2, max boxes of side < s, max brush strokes); each count
# is drawn uniformly from 0 .. max-1, as in the reference generator.
_VARIANT_COUNTS: dict[str, tuple[int, int, int]] = {"large": (5, 3, 9), "small": (3, 2, 4)}

# Rejection sampling gives up after this many draws (a hole_range far too narrow for the generator).
_MAX_DRAWS = 10_000

# Brush geometry at the 512 reference size.
_REFERENCE_SIZE = 512
_MIN_VERTICES, _MAX_VERTICES = 4, 18
_MEAN_ANGLE = 2.0 * math.pi / 5.0
_ANGLE_RANGE = 2.0 * math.pi / 15.0
_MIN_WIDTH, _MAX_WIDTH = 12.0, 48.0


def _check_shape(shape: tuple[int, int]) -> tuple[int, int]:
    h, w = int(shape[0]), int(shape[1])
    if h < 1 or w < 1:
        raise ValueError(f"mask shape must be positive, got {shape}")
    return h, w


def _stroke(canvas: np.ndarray, xs: np.ndarray, ys: np.ndarray, width: float) -> None:
    """OR into ``canvas`` a polyline of the given width with round joins and caps.

    Each segment is rasterised as a capsule (pixels whose centre lies within width/2 of the segment), which
    is a polyline of that width plus a disc at every vertex, as MAT draws it. Vertex coordinates are pixel
    centres (x = column, y = row). Vectorised per segment over the segment's bounding box: about 4x faster
    than ``skimage.draw.polygon`` + ``disk`` per segment, with the same pixel count within 1 %.
    """
    h, w = canvas.shape
    half = max(width / 2.0, 0.5)
    radius2 = half * half
    for ax, ay, bx, by in zip(xs[:-1], ys[:-1], xs[1:], ys[1:], strict=True):
        c0 = max(math.floor(min(ax, bx) - half), 0)
        c1 = min(math.ceil(max(ax, bx) + half) + 1, w)
        r0 = max(math.floor(min(ay, by) - half), 0)
        r1 = min(math.ceil(max(ay, by) + half) + 1, h)
        if c1 <= c0 or r1 <= r0:
            continue
        px = np.arange(c0, c1, dtype=np.float32)[None, :] - np.float32(ax)
        py = np.arange(r0, r1, dtype=np.float32)[:, None] - np.float32(ay)
        dx, dy = np.float32(bx - ax), np.float32(by - ay)
        length2 = dx * dx + dy * dy
        t = np.clip((px * dx + py * dy) / length2, 0.0, 1.0) if length2 > 0 else np.float32(0.0)
        ex = px - t * dx
        ey = py - t * dy
        canvas[r0:r1, c0:c1] |= ex * ex + ey * ey <= radius2


def random_brush(rng: np.random.Generator, shape: tuple[int, int], max_tries: int) -> np.ndarray:
    """Free-form brush strokes as in MAT's ``RandomBrush``: bool (H, W), True on strokes.

    ``0 .. max_tries-1`` strokes, each a zig-zag polyline of 4-17 segments whose step length is drawn around
    sqrt(H^2 + W^2) / 8 and whose width is 12-48 px at 512 (scaled by sqrt(H*W)/512 at other sizes); the
    result is flipped vertically and horizontally with probability 1/2 each.
    """
    h, w = _check_shape(shape)
    canvas = np.zeros((h, w), dtype=bool)
    mean_radius = math.sqrt(h * h + w * w) / 8.0
    width_scale = math.sqrt(h * w) / _REFERENCE_SIZE
    n_strokes = int(rng.integers(max_tries)) if max_tries > 0 else 0
    for _ in range(n_strokes):
        n_vertex = int(rng.integers(_MIN_VERTICES, _MAX_VERTICES))
        angle_min = _MEAN_ANGLE - rng.uniform(0.0, _ANGLE_RANGE)
        angle_max = _MEAN_ANGLE + rng.uniform(0.0, _ANGLE_RANGE)
        angles = rng.uniform(angle_min, angle_max, size=n_vertex)
        angles[0::2] = 2.0 * math.pi - angles[0::2]
        xs = np.empty(n_vertex + 1)
        ys = np.empty(n_vertex + 1)
        xs[0], ys[0] = rng.integers(0, w), rng.integers(0, h)
        steps = np.clip(rng.normal(mean_radius, math.floor(mean_radius / 2.0), size=n_vertex), 0.0,
                        2.0 * mean_radius)
        for i in range(n_vertex):
            xs[i + 1] = math.floor(min(max(xs[i] + steps[i] * math.cos(angles[i]), 0.0), w))
            ys[i + 1] = math.floor(min(max(ys[i] + steps[i] * math.sin(angles[i]), 0.0), h))
        width = math.floor(rng.uniform(_MIN_WIDTH, _MAX_WIDTH)) * width_scale
        _stroke(canvas, xs, ys, width)
    if rng.random() > 0.5:
        canvas = canvas[::-1, :]
    if rng.random() > 0.5:
        canvas = canvas[:, ::-1]
    return np.ascontiguousarray(canvas)


def random_mat_mask(
    rng: np.random.Generator,
    shape: tuple[int, int],
    *,
    hole_range: tuple[float, float] = (0.0, 1.0),
    variant: Literal["large", "small"] = "large",
) -> np.ndarray:
    """One training mask from MAT's generator: float32 (H, W), **1 = keep, 0 = hole**.

    Rejects and redraws masks whose hole ratio is ``<= hole_range[0]`` or ``>= hole_range[1]`` (with the
    default range only all-known and all-hole masks). ``variant="small"`` uses fewer boxes and strokes.
    """
    h, w = _check_shape(shape)
    lo, hi = float(hole_range[0]), float(hole_range[1])
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"hole_range must satisfy 0 <= lo < hi <= 1, got {hole_range}")
    if variant not in _VARIANT_COUNTS:
        raise ValueError(f"variant must be one of {sorted(_VARIANT_COUNTS)}, got {variant!r}")
    n_small, n_large, n_brush = _VARIANT_COUNTS[variant]
    coef = min(lo + hi, 1.0)
    for _ in range(_MAX_DRAWS):
        keep = np.ones((h, w), dtype=bool)
        for max_tries, fraction in ((int(n_small * coef), 0.5), (int(n_large * coef), 1.0)):
            if max_tries <= 0:
                continue
            for _ in range(int(rng.integers(max_tries))):
                bw = int(rng.integers(max(int(w * fraction), 1)))
                bh = int(rng.integers(max(int(h * fraction), 1)))
                x = int(rng.integers(-(bw // 2), w - bw + bw // 2))
                y = int(rng.integers(-(bh // 2), h - bh + bh // 2))
                keep[max(y, 0):min(y + bh, h), max(x, 0):min(x + bw, w)] = False
        keep &= ~random_brush(rng, (h, w), int(n_brush * coef))
        hole_ratio = 1.0 - keep.mean()
        if lo < hole_ratio < hi:
            return keep.astype(np.float32)
    raise ValueError(f"no mask with a hole ratio in {hole_range} after {_MAX_DRAWS} draws; widen hole_range")


def _box_window(shape: tuple[int, int], box: Box, pad: float = 0.0) -> tuple[int, int, int, int]:
    """Rows/cols (r0, r1, c0, c1) of the pixels whose centres can fall inside ``box`` grown by ``pad``."""
    h, w = shape
    x0, y0, x1, y1 = box
    c0 = max(math.floor(x0 - pad - 0.5), 0)
    c1 = min(math.ceil(x1 + pad + 0.5), w)
    r0 = max(math.floor(y0 - pad - 0.5), 0)
    r1 = min(math.ceil(y1 + pad + 0.5), h)
    return r0, max(r1, r0), c0, max(c1, c0)


def _validate_box(box: Box) -> Box:
    x0, y0, x1, y1 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 <= x0 or y1 <= y0:
        raise ValueError(f"box must be finite (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {box}")
    return x0, y0, x1, y1


def box_hole(
    shape: tuple[int, int], box: Box, kind: HoleKind = HoleKind.ELLIPSE
) -> np.ndarray:
    """The hole for a box: bool (H, W), True inside the ellipse inscribed in the box, or the box itself."""
    h, w = _check_shape(shape)
    x0, y0, x1, y1 = _validate_box(box)
    hole = np.zeros((h, w), dtype=bool)
    r0, r1, c0, c1 = _box_window((h, w), (x0, y0, x1, y1))
    if r1 <= r0 or c1 <= c0:
        return hole
    yc = np.arange(r0, r1, dtype=np.float64)[:, None] + 0.5
    xc = np.arange(c0, c1, dtype=np.float64)[None, :] + 0.5
    if kind == HoleKind.ELLIPSE:
        cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
        rx, ry = (x1 - x0) / 2.0, (y1 - y0) / 2.0
        inside = ((xc - cx) / rx) ** 2 + ((yc - cy) / ry) ** 2 <= 1.0
    elif kind == HoleKind.RECTANGLE:
        inside = (xc >= x0) & (xc < x1) & (yc >= y0) & (yc < y1)
    else:
        raise ValueError(f"hole kind must be 'ellipse' or 'rectangle', got {kind!r}")
    hole[r0:r1, c0:c1] = inside
    return hole


def lesion_shaped_hole(rng: np.random.Generator, shape: tuple[int, int], box: Box) -> np.ndarray:
    """An irregular, lesion-like hole over an annotated mass: bool (H, W), True = hole.

    A star-shaped blob around the box centre whose boundary is the box's inscribed ellipse scaled by
    1.05-1.30 and pushed outwards by a few random low-order harmonics, so it always covers the inscribed
    ellipse (the mass) plus an irregular rim of surrounding tissue the model has to regenerate.
    """
    h, w = _check_shape(shape)
    x0, y0, x1, y1 = _validate_box(box)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    scale = rng.uniform(1.05, 1.30)
    rx, ry = (x1 - x0) / 2.0 * scale, (y1 - y0) / 2.0 * scale
    orders = np.arange(2, 6)
    amplitudes = rng.uniform(0.0, 0.30, size=orders.size) / orders
    phases = rng.uniform(0.0, 2.0 * math.pi, size=orders.size)
    max_reach = 1.0 + float(amplitudes.sum())
    hole = np.zeros((h, w), dtype=bool)
    r0, r1, c0, c1 = _box_window((h, w), (cx - rx * max_reach, cy - ry * max_reach,
                                          cx + rx * max_reach, cy + ry * max_reach))
    if r1 <= r0 or c1 <= c0:
        return hole
    dy = (np.arange(r0, r1, dtype=np.float64)[:, None] + 0.5 - cy) / ry
    dx = (np.arange(c0, c1, dtype=np.float64)[None, :] + 0.5 - cx) / rx
    rho = np.hypot(dx, dy)
    theta = np.arctan2(dy, dx)
    # Every harmonic term is >= 0, so the boundary never comes inside the scaled ellipse.
    boundary = 1.0 + 0.5 * np.sum(
        amplitudes[:, None, None] * (1.0 + np.cos(orders[:, None, None] * theta + phases[:, None, None])),
        axis=0,
    )
    hole[r0:r1, c0:c1] = rho <= boundary
    return hole


def outpaint_keep_mask(shape: tuple[int, int], boxes: tuple[Box, ...] | list[Box], margin: float) -> np.ndarray:
    """What outpainting keeps: bool (H, W), **True = kept** (each box grown by ``margin`` pixels per side).

    ``margin`` is in the pixel units of ``shape``; the grown boxes are clipped to the image.
    """
    h, w = _check_shape(shape)
    if margin < 0 or not math.isfinite(margin):
        raise ValueError(f"margin must be a finite number of pixels >= 0, got {margin}")
    keep = np.zeros((h, w), dtype=bool)
    for box in boxes:
        x0, y0, x1, y1 = _validate_box(box)
        keep |= box_hole((h, w), (x0 - margin, y0 - margin, x1 + margin, y1 + margin), HoleKind.RECTANGLE)
    return keep


def feather(hole: np.ndarray, width_px: float) -> np.ndarray:
    """Blend weight for pasting generated pixels: float32 (H, W) in [0, 1].

    1 on the hole, falling with a raised-cosine ramp of Euclidean distance from the hole, and **exactly 0**
    for every pixel at distance >= ``width_px`` from the nearest hole pixel: the weight only touches the hole
    dilated by ``width_px``. ``width_px == 0`` gives the hard hole.
    """
    hole = np.asarray(hole, dtype=bool)
    if hole.ndim != 2:
        raise ValueError(f"hole must be 2-D, got shape {hole.shape}")
    if width_px < 0 or not math.isfinite(width_px):
        raise ValueError(f"feather width must be a finite number of pixels >= 0, got {width_px}")
    weight = hole.astype(np.float32)
    if width_px == 0 or not hole.any():
        return weight
    # Only the hole's bounding box grown by the feather width can get a non-zero weight: work there.
    rows = np.flatnonzero(hole.any(axis=1))
    cols = np.flatnonzero(hole.any(axis=0))
    pad = math.ceil(width_px) + 1
    r0, r1 = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, hole.shape[0])
    c0, c1 = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, hole.shape[1])
    distance = ndimage.distance_transform_edt(~hole[r0:r1, c0:c1])
    ramp = np.where(distance < width_px, 0.5 * (1.0 + np.cos(np.pi * distance / width_px)), 0.0)
    weight[r0:r1, c0:c1] = ramp.astype(np.float32)
    weight[hole] = 1.0
    return weight


def feather_region(hole: np.ndarray, width_px: float) -> np.ndarray:
    """The pixels :func:`feather` may touch: bool (H, W), True within distance < ``width_px`` of the hole."""
    hole = np.asarray(hole, dtype=bool)
    if width_px == 0 or not hole.any():
        return hole.copy()
    return ndimage.distance_transform_edt(~hole) < width_px
