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
    values = small[valid]
    otsu = _otsu(values)
    if otsu is None:
        return np.zeros(pixels.shape, dtype=bool)
    threshold = min(float(threshold_triangle(values)), otsu)
    tissue = (small > threshold) & valid
    # A small opening cuts thin bridges to burned-in markers before picking the largest blob.
    tissue = ndimage.binary_opening(tissue, iterations=1)
    breast = ndimage.binary_fill_holes(_largest_components(tissue, 1))
    return _to_full(breast, pixels.shape, factor)


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
