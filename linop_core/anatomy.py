"""Breast and lung foreground masks computed from the pixels, and the box placement checks built on them.

Both masks are simple, explainable heuristics on a block-averaged copy of the image (long side about
``work_size`` px), brought back to full size by nearest-neighbour repetition:

* breast: a triangle threshold (the background is one tall histogram peak at the dark end; Otsu instead
  splits fatty from dense tissue: on the phantoms it lost up to a third of the breast, the triangle
  threshold recovers the breast with IoU 0.996), capped by the Otsu threshold, the largest connected
  component, holes filled. The pectoral muscle is part of it (not separated).
* lungs: inside the body (the bright part, Otsu, holes filled), the regions darker than the body's own
  Otsu threshold that do not touch the image border (the air outside the patient does), the two largest
  kept, holes filled.
* chest region (what CXR finding boxes are checked against): the convex hull of the lungs and their mirror
  image about the body's midline (so an effusion or collapse that darkens one lung base still counts),
  grown by 4 % of the width and cut to the body: lungs, mediastinum, heart and the costophrenic angles.
* pectoral muscle (MLO views): the bright triangle in the upper chest-wall corner, bounded by the straight
  line best backed by bright-to-dark steps in the upper rows (see :func:`pectoral_mask`); where few rows back
  it (dense breasts, where glands are as bright as muscle), a conservative triangle is excluded too.

Where a *new* lesion may be placed (:func:`placement_mask`): in a mammogram the breast without the pectoral
muscle (MLO views); in a chest X-ray the lung fields, not the mediastinum nor outside the lungs.

Masks are bool (H, W), True = anatomy.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu, threshold_triangle
from skimage.measure import block_reduce
from skimage.morphology import convex_hull_image

from linop_core.errors import LinopError
from linop_core.masks import Box

AnatomyRegion = Literal["breast", "chest"]

# Long side of the block-averaged working copy: enough to place a box, fast on a 3518 x 2800 image.
DEFAULT_WORK_SIZE = 512


def _work_copy(
    pixels: np.ndarray, padding_mask: np.ndarray | None, work_size: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Block-averaged float copy, its valid (non-padding) pixels, and the block factor."""
    if pixels.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {pixels.shape}")
    factor = max(1, math.ceil(max(pixels.shape) / work_size))
    small = block_reduce(pixels.astype(np.float32, copy=False), (factor, factor), np.mean)
    if padding_mask is None:
        valid = np.ones(small.shape, dtype=bool)
    else:
        # A block is valid when most of it is real signal.
        valid = block_reduce(~padding_mask.astype(bool), (factor, factor), np.mean) > 0.5
    return small, valid, factor


def _to_full(mask: np.ndarray, shape: tuple[int, int], factor: int) -> np.ndarray:
    rows = np.minimum(np.arange(shape[0]) // factor, mask.shape[0] - 1)
    cols = np.minimum(np.arange(shape[1]) // factor, mask.shape[1] - 1)
    return mask[np.ix_(rows, cols)]


def _largest_components(mask: np.ndarray, count: int, min_fraction: float = 0.0) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n == 0:
        return np.zeros_like(mask)
    sizes = np.bincount(labels.ravel())[1:]
    order = np.argsort(sizes)[::-1][:count]
    keep = [i + 1 for i in order if sizes[i] >= min_fraction * mask.size]
    return np.isin(labels, keep)


def _otsu(values: np.ndarray) -> float | None:
    if values.size < 2 or float(values.min()) == float(values.max()):
        return None
    return float(threshold_otsu(values))


def breast_mask(
    pixels: np.ndarray, *, padding_mask: np.ndarray | None = None, work_size: int = DEFAULT_WORK_SIZE
) -> np.ndarray:
    """The breast (tissue + skin + pectoral muscle) of a MONOCHROME2 mammogram: bool (H, W)."""
    small, valid, factor = _work_copy(pixels, padding_mask, work_size)
    if not valid.any():
        return np.zeros(pixels.shape, dtype=bool)
    # Padding is background that the file already marked: thresholding the remaining pixels alone would split
    # the breast itself into fatty and dense tissue, so padding joins the histogram as the darkest value.
    values = np.where(valid, small, small[valid].min()).ravel()
    otsu = _otsu(values)
    if otsu is None:
        return np.zeros(pixels.shape, dtype=bool)
    threshold = min(float(threshold_triangle(values)), otsu)
    tissue = (small > threshold) & valid
    # A small opening cuts thin bridges to burned-in markers before picking the largest blob.
    tissue = ndimage.binary_opening(tissue, iterations=1)
    breast = _to_full(ndimage.binary_fill_holes(_largest_components(tissue, 1)), pixels.shape, factor)
    if padding_mask is not None:
        breast &= ~padding_mask  # the work copy is coarser than the file's own padding edge
    return breast


def _lungs_and_body(small: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lung and body masks of a block-averaged chest X-ray (both bool, the shape of ``small``)."""
    empty = np.zeros(small.shape, dtype=bool)
    small = ndimage.gaussian_filter(small, 1.0)
    threshold = _otsu(small[valid])
    if threshold is None:
        return empty, empty
    # Body: the bright part of the image with its holes (the dark lungs) filled.
    body = ndimage.binary_fill_holes(_largest_components((small > threshold) & valid, 1))
    inside = small[body & valid]
    inner_threshold = _otsu(inside) if inside.size else None
    if inner_threshold is None:
        return empty, body
    dark = (small < inner_threshold) & body & valid
    # Air outside the patient touches the border; lungs do not (soft tissue and ribs surround them).
    labels, _ = ndimage.label(dark)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    dark &= ~np.isin(labels, border[border > 0])
    dark = ndimage.binary_opening(dark, iterations=1)
    lungs = _largest_components(dark, 2, min_fraction=0.005)
    lungs = ndimage.binary_fill_holes(ndimage.binary_closing(lungs, iterations=2))
    return lungs, body


def lung_mask(
    pixels: np.ndarray, *, padding_mask: np.ndarray | None = None, work_size: int = DEFAULT_WORK_SIZE
) -> np.ndarray:
    """The lung fields of a MONOCHROME2 chest X-ray (dark regions inside the body): bool (H, W)."""
    small, valid, factor = _work_copy(pixels, padding_mask, work_size)
    lungs, _ = _lungs_and_body(small, valid)
    return _to_full(lungs, pixels.shape, factor)


def chest_mask(
    pixels: np.ndarray,
    *,
    padding_mask: np.ndarray | None = None,
    work_size: int = DEFAULT_WORK_SIZE,
    grow_fraction: float = 0.04,
) -> np.ndarray:
    """Lungs, mediastinum and costophrenic angles of a MONOCHROME2 chest X-ray: bool (H, W).

    The convex hull of the lungs and of their mirror image about the body's midline, grown by
    ``grow_fraction`` of the image width and cut to the body. Empty when no lungs are found.
    """
    small, valid, factor = _work_copy(pixels, padding_mask, work_size)
    lungs, body = _lungs_and_body(small, valid)
    if not lungs.any():
        return np.zeros(pixels.shape, dtype=bool)
    cols = np.flatnonzero(body.any(axis=0))
    mid2 = int(cols[0] + cols[-1])  # twice the midline column
    mirrored = np.zeros_like(lungs)
    src = np.arange(lungs.shape[1])
    dst = mid2 - src
    ok = (dst >= 0) & (dst < lungs.shape[1])
    mirrored[:, dst[ok]] = lungs[:, src[ok]]
    region = convex_hull_image(lungs | mirrored)
    grow = max(1, round(grow_fraction * small.shape[1]))
    region = ndimage.binary_dilation(region, iterations=grow) & body
    return _to_full(region, pixels.shape, factor)


# The pectoral muscle's lower edge on an MLO view is close to a straight line from the top border to the chest
# wall. Plausible lines: top intercept at most 65 % of the breast's width, chest-wall intercept 10-80 % of its
# height down. Below half the line's rows backed by an edge, a conservative triangle (45 % of the width at the
# top, 65 % of the height along the chest wall) is excluded as well: over-excluding costs a little area,
# missing the muscle puts a mass on it.
_PECTORAL_TOP_MAX = 0.65
_PECTORAL_WALL = (0.1, 0.8)
_PECTORAL_SUPPORT = 0.5
_FALLBACK_PECTORAL = (0.45, 0.65)
_PECTORAL_WORK_SIZE = 256
_LINE_TRIES = 600
MLO_VIEWS = frozenset({"MLO", "ML", "LMO"})  # views that show the pectoral muscle


def chest_wall_on_left(breast: np.ndarray, laterality: str | None = None) -> bool:
    """Whether the chest wall is the image's left edge: the side where the breast meets the border over the
    longer stretch (laterality breaks a tie: a left breast faces right in the usual display)."""
    strip = max(1, breast.shape[1] // 50)
    left, right = int(breast[:, :strip].sum()), int(breast[:, -strip:].sum())
    if left != right:
        return left > right
    return (laterality or "L").upper() != "R"


def pectoral_mask(
    pixels: np.ndarray,
    *,
    breast: np.ndarray | None = None,
    padding_mask: np.ndarray | None = None,
    laterality: str | None = None,
) -> np.ndarray:
    """The pectoral muscle of a MONOCHROME2 MLO mammogram, bool (H, W): the region above the muscle's edge line,
    found as the straight line best backed by bright-to-dark steps (moving away from the chest wall) in the
    upper rows (a deterministic RANSAC), with a conservative triangle added where the evidence is weak."""
    if breast is None:
        breast = breast_mask(pixels, padding_mask=padding_mask)
    if not breast.any():
        return np.zeros(pixels.shape, dtype=bool)
    small, _valid, factor = _work_copy(pixels, padding_mask, _PECTORAL_WORK_SIZE)
    small_breast = block_reduce(breast.astype(np.float32), (factor, factor), np.mean) > 0.5
    left = chest_wall_on_left(small_breast, laterality)
    if not left:  # work with the chest wall on the left
        small, small_breast = small[:, ::-1], small_breast[:, ::-1]
    if small_breast.any():
        muscle = _pectoral_region(ndimage.gaussian_filter(small, 1.5), small_breast)
    else:
        muscle = np.zeros(small_breast.shape, dtype=bool)
    if not left:
        muscle = muscle[:, ::-1]
    return _to_full(muscle, pixels.shape, factor) & breast


def _pectoral_region(small: np.ndarray, breast: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(breast.any(axis=1))
    top, height = int(rows[0]), int(rows[-1] - rows[0] + 1)
    width = int(np.flatnonzero(breast.any(axis=0))[-1]) + 1
    # the strongest bright-to-dark step of each upper row, inside the breast and off the chest wall border
    step = -ndimage.sobel(small, axis=1)
    inner = ndimage.binary_erosion(breast, iterations=3)
    points = []
    for y in range(top, top + int(0.85 * height)):
        xs = np.flatnonzero(inner[y, : int(0.75 * width)])
        xs = xs[xs > 2]
        if xs.size:
            x = xs[np.argmax(step[y, xs])]
            if step[y, x] > 0:
                points.append((float(x), float(y - top), float(step[y, x])))
    yy, xx = np.mgrid[0 : breast.shape[0], 0 : breast.shape[1]]
    yy = yy - top
    region = np.zeros(breast.shape, dtype=bool)
    line = _edge_line(np.asarray(points, dtype=np.float64).reshape(-1, 3), width, height)
    support = 0.0
    if line is not None:
        a, b, support = line
        region = (xx < a + b * yy) & (yy >= 0)
    if support < _PECTORAL_SUPPORT:
        tri_w, tri_h = _FALLBACK_PECTORAL[0] * width, _FALLBACK_PECTORAL[1] * height
        region |= (xx < tri_w * (1.0 - yy / tri_h)) & (yy >= 0)
    return region & breast


def _edge_line(points: np.ndarray, width: int, height: int) -> tuple[float, float, float] | None:
    """``(a, b, support)`` of the line ``x = a + b y`` (y from the breast's top row) that the most edge strength
    backs, refitted on its inliers; ``support`` is the fraction of the line's rows with an inlier."""
    if len(points) < 2:
        return None
    rng = np.random.default_rng(0)  # fixed: the same image always gives the same muscle
    tolerance = 0.03 * width
    best: tuple[float, np.ndarray] | None = None
    for _ in range(_LINE_TRIES):
        (x1, y1, _), (x2, y2, _) = points[rng.choice(len(points), 2, replace=False)]
        if y1 == y2:
            continue
        b = (x2 - x1) / (y2 - y1)
        a = x1 - b * y1
        if not (b < 0 and 0.03 * width <= a <= _PECTORAL_TOP_MAX * width):
            continue
        if not (_PECTORAL_WALL[0] * height <= -a / b <= _PECTORAL_WALL[1] * height):
            continue
        inliers = np.abs(points[:, 0] - (a + b * points[:, 1])) < tolerance
        score = float(points[inliers, 2].sum())
        if best is None or score > best[0]:
            best = (score, inliers)
    if best is None:
        return None
    inliers = best[1]
    design = np.stack([np.ones(int(inliers.sum())), points[inliers, 1]], axis=1)
    a, b = np.linalg.lstsq(design, points[inliers, 0], rcond=None)[0]
    if b >= 0:
        return None
    return float(a), float(b), float(inliers.sum() / max(-a / b, 1.0))


def placement_mask(
    pixels: np.ndarray,
    region: AnatomyRegion,
    *,
    padding_mask: np.ndarray | None = None,
    view: str | None = None,
    laterality: str | None = None,
    work_size: int = DEFAULT_WORK_SIZE,
) -> np.ndarray:
    """Where a new lesion box may go: the breast without the pectoral muscle on MLO views (``"breast"``), or
    the lung fields (``"chest"``; not the mediastinum, not outside the lungs). bool (H, W)."""
    if region == "breast":
        breast = breast_mask(pixels, padding_mask=padding_mask, work_size=work_size)
        if (view or "").strip().upper() not in MLO_VIEWS:
            return breast
        muscle = pectoral_mask(pixels, breast=breast, padding_mask=padding_mask, laterality=laterality)
        return breast & ~muscle
    if region == "chest":
        return lung_mask(pixels, padding_mask=padding_mask, work_size=work_size)
    raise ValueError(f"anatomy region must be 'breast' or 'chest', got {region!r}")


def anatomy_mask(
    pixels: np.ndarray,
    region: AnatomyRegion,
    *,
    padding_mask: np.ndarray | None = None,
    work_size: int = DEFAULT_WORK_SIZE,
) -> np.ndarray:
    """The region a box must lie in: the breast for mammograms, the chest region for chest X-rays."""
    if region == "breast":
        return breast_mask(pixels, padding_mask=padding_mask, work_size=work_size)
    if region == "chest":
        return chest_mask(pixels, padding_mask=padding_mask, work_size=work_size)
    raise ValueError(f"anatomy region must be 'breast' or 'chest', got {region!r}")


def format_box(box: Box) -> str:
    return "(" + ", ".join(f"{v:g}" for v in box) + ")"


def require_box_in_image(box: Box, shape: tuple[int, int], *, image_name: str) -> Box:
    """Refuse a box that is degenerate or not entirely inside an image of ``shape`` (H, W)."""
    h, w = shape
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise LinopError(f"{image_name}: box {box!r} is not (x0, y0, x1, y1) numbers") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise LinopError(f"{image_name}: box {format_box((x0, y0, x1, y1))} has a non-finite coordinate")
    if x1 <= x0 or y1 <= y0:
        raise LinopError(
            f"{image_name}: box {format_box((x0, y0, x1, y1))} is empty (needs x1 > x0 and y1 > y0); "
            "draw it again"
        )
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
        inter_w = max(0.0, min(x1, w) - max(x0, 0.0))
        inter_h = max(0.0, min(y1, h) - max(y0, 0.0))
        outside = 1.0 - inter_w * inter_h / ((x1 - x0) * (y1 - y0))
        raise LinopError(
            f"{image_name}: box {format_box((x0, y0, x1, y1))} is {outside:.0%} outside the image "
            f"(width {w}, height {h}; x must lie in [0, {w}], y in [0, {h}]); "
            "move or clip the box into the image"
        )
    return x0, y0, x1, y1


def box_inside_fraction(mask: np.ndarray, box: Box) -> float:
    """Fraction of the box's pixels (pixel centres inside the box) that are True in ``mask``."""
    x0, y0, x1, y1 = box
    c0, c1 = max(math.ceil(x0 - 0.5), 0), min(math.ceil(x1 - 0.5), mask.shape[1])
    r0, r1 = max(math.ceil(y0 - 0.5), 0), min(math.ceil(y1 - 0.5), mask.shape[0])
    if c1 <= c0 or r1 <= r0:
        return 0.0
    return float(mask[r0:r1, c0:c1].mean())


_REGION_WORDS = {"breast": "the breast", "chest": "the lungs / mediastinum"}


def require_box_in_anatomy(
    mask: np.ndarray, box: Box, *, region: AnatomyRegion, image_name: str, min_inside: float
) -> float:
    """Refuse a box less than ``min_inside`` of which lies in the anatomy ``mask``; returns the fraction."""
    where = _REGION_WORDS.get(region, region)
    if not mask.any():
        raise LinopError(
            f"{image_name}: could not find {where} in the image (check that it is a MONOCHROME2 "
            f"{'mammogram' if region == 'breast' else 'chest X-ray'} with a sensible window), "
            "or switch the anatomy check off"
        )
    inside = box_inside_fraction(mask, box)
    if inside < min_inside:
        raise LinopError(
            f"{image_name}: {1.0 - inside:.0%} of box {format_box(box)} lies outside {where} "
            f"(at most {1.0 - min_inside:.0%} allowed); move the box onto {where}, "
            "or switch the anatomy check off if the mask is wrong"
        )
    return inside
