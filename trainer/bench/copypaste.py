"""Classic copy-paste augmentation, the benchmark's no-model control for in- and out-painting.

Real lesion pixels are pasted into another real image, feathered at the edge of the pasted region and
nothing else changed:

- mammography (:func:`paste_mass`): the pixels inside a real Mass box of one image are resized into a box
  sampled on a normal mammogram (the in-painting job's box), with a raised-cosine ramp inside the box edge;
- chest X-ray (:func:`paste_findings`): the finding boxes (+ a margin) of an abnormal image are pasted at
  the same relative position into a normal chest X-ray, which then carries the donor's boxes and labels.

Intensities move through the display windows: donor native -> donor window -> [0, 1] -> target window ->
target native, the path a generated fill takes in :mod:`linop_core.synthesis`. Every pixel outside the pasted
boxes equals the target bit for bit (checked). The result is a :class:`~linop_core.candidate.Candidate` with
engine ``copy-paste`` so it is written, read and filtered like any synthetic sample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from linop_core.candidate import Candidate
from linop_core.dicom import DicomImage, VoiWindow, apply_window, choose_window, invert_window
from linop_core.masks import Box
from linop_core.synthesis import blend_native, verify_outside_unchanged
from linop_core.vocab import HoleKind, Task

ENGINE = "copy-paste"
FEATHER_SHARE = 0.15  # default ramp width: this share of the pasted box's shorter side (the in-painting default)
MIN_FEATHER_PX = 2.0


def pixel_box(box: Box, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` integer pixel bounds of the pixels whose centres lie in ``box``, clipped to ``shape``."""
    height, width = shape
    x0 = min(max(math.ceil(box[0] - 0.5), 0), width)
    y0 = min(max(math.ceil(box[1] - 0.5), 0), height)
    x1 = min(max(math.ceil(box[2] - 0.5), x0), width)
    y1 = min(max(math.ceil(box[3] - 0.5), y0), height)
    return x0, y0, x1, y1


def paste_weight(shape: tuple[int, int], boxes: Sequence[Box], feather_px: float) -> np.ndarray:
    """Blend weight float32 (H, W): 0 outside every box, rising with a raised cosine from the box edge to 1 at
    ``feather_px`` pixels inside it (the maximum where boxes overlap)."""
    if feather_px < 0 or not math.isfinite(feather_px):
        raise ValueError(f"feather width must be a finite number of pixels >= 0, got {feather_px}")
    weight = np.zeros(shape, dtype=np.float32)
    for box in boxes:
        x0, y0, x1, y1 = pixel_box(box, shape)
        if x1 <= x0 or y1 <= y0:
            continue
        # distance of each pixel (by its edge) to the nearest box side: 1 for the outermost ring
        ys = np.minimum(np.arange(y0, y1) - y0, y1 - 1 - np.arange(y0, y1)) + 1.0
        xs = np.minimum(np.arange(x0, x1) - x0, x1 - 1 - np.arange(x0, x1)) + 1.0
        inset = np.minimum(ys[:, None], xs[None, :])
        if feather_px == 0:
            ramp = np.ones_like(inset)
        else:
            ramp = np.where(inset >= feather_px, 1.0, 0.5 * (1.0 - np.cos(np.pi * inset / feather_px)))
        np.maximum(weight[y0:y1, x0:x1], ramp.astype(np.float32), out=weight[y0:y1, x0:x1])
    return weight


def blend_into(target: np.ndarray, window: VoiWindow, function: str, content_unit: np.ndarray,
               weight: np.ndarray) -> np.ndarray:  # fmt: skip
    """``target`` with ``content_unit`` ([0, 1], target-aligned (H, W)) blended in where ``weight`` > 0.

    The content goes to native units through the inverse of the target's window, clipped to the target's
    dtype; pixels with weight 0 are returned unchanged.
    """
    if content_unit.shape != target.shape or weight.shape != target.shape:
        raise ValueError(f"content {content_unit.shape} and weight {weight.shape} must match target {target.shape}")
    native = invert_window(np.clip(content_unit, 0.0, 1.0), window, function).astype(np.float64)
    return blend_native(target, native, weight)


def resize_unit(planes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a float (h, w) plane to ``size`` (antialiased bilinear)."""
    if planes.shape == tuple(size):
        return planes.astype(np.float32, copy=True)
    t = torch.from_numpy(np.ascontiguousarray(planes, dtype=np.float32))[None, None]
    out = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=True)
    return out[0, 0].clamp_(0.0, 1.0).numpy()


def _window_of(image: DicomImage) -> tuple[VoiWindow, str]:
    """The window (and VOI function) synthesis would use for this image: the file's first, else a stand-in."""
    window = choose_window(image)
    function = image.meta.voi_lut_function if window in image.meta.windows else "LINEAR"
    return window, function


def _unit(image: DicomImage) -> np.ndarray:
    window, function = _window_of(image)
    return apply_window(image.pixels, window, function)


def default_feather(box: Box) -> float:
    return max(MIN_FEATHER_PX, FEATHER_SHARE * min(box[2] - box[0], box[3] - box[1]))


def paste_mass(target: DicomImage, box: Box, donor: DicomImage, donor_box: Box, *, seed: int,
               feather_px: float | None = None, source_id: str | None = None,
               settings: dict[str, object] | None = None) -> Candidate:  # fmt: skip
    """``target`` with the donor's ``donor_box`` pixels resized into ``box``: one Mass candidate.

    ``seed`` is the unit seed recorded with the sample (the paste itself draws nothing).
    """
    window, function = _window_of(target)
    shape = target.pixels.shape
    feather_px = default_feather(box) if feather_px is None else float(feather_px)
    tx0, ty0, tx1, ty1 = pixel_box(box, shape)
    dx0, dy0, dx1, dy1 = pixel_box(donor_box, donor.pixels.shape)
    if tx1 <= tx0 or ty1 <= ty0 or dx1 <= dx0 or dy1 <= dy0:
        raise ValueError(f"empty paste: target box {box} or donor box {donor_box} holds no pixel")
    patch = _unit(donor)[dy0:dy1, dx0:dx1]
    content = np.zeros(shape, dtype=np.float32)
    content[ty0:ty1, tx0:tx1] = resize_unit(patch, (ty1 - ty0, tx1 - tx0))
    weight = paste_weight(shape, [box], feather_px)
    image = blend_into(target.pixels, window, function, content, weight)
    verify_outside_unchanged(target.pixels, image, weight, name=target.meta.path)
    weight.setflags(write=False)
    scale = (ty1 - ty0) / (dy1 - dy0)
    return _candidate(image, weight, (box,), ("Mass",), (), seed, (ty0, tx0), (ty1 - ty0, tx1 - tx0), scale,
                      feather_px, window, function, 0.0, source_id, settings)  # fmt: skip


def paste_findings(target: DicomImage, donor: DicomImage, boxes: Sequence[Box], box_labels: Sequence[str],
                   global_labels: Sequence[str], *, seed: int, margin: float = 16.0,
                   feather_px: float | None = None, source_id: str | None = None,
                   settings: dict[str, object] | None = None) -> Candidate:  # fmt: skip
    """``target`` with the donor's finding ``boxes`` (+ ``margin`` donor pixels) pasted at the same relative
    position; the candidate carries the boxes (mapped to the target), their labels and the global labels.

    ``feather_px`` None: the margin mapped to target pixels, so the ramp covers the margin and the boxes
    themselves are pasted whole.
    """
    if not boxes or len(boxes) != len(box_labels):
        raise ValueError(f"{len(boxes)} boxes and {len(box_labels)} labels: need one label per box, at least one")
    window, function = _window_of(target)
    height, width = target.pixels.shape
    dh, dw = donor.pixels.shape
    sx, sy = width / dw, height / dh
    mapped = tuple((b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy) for b in boxes)
    grown = [(max(b[0] - margin * sx, 0.0), max(b[1] - margin * sy, 0.0), min(b[2] + margin * sx, width),
              min(b[3] + margin * sy, height)) for b in mapped]  # fmt: skip
    feather_px = margin * min(sx, sy) if feather_px is None else float(feather_px)
    content = resize_unit(_unit(donor), (height, width))
    weight = paste_weight((height, width), grown, feather_px)
    image = blend_into(target.pixels, window, function, content, weight)
    verify_outside_unchanged(target.pixels, image, weight, name=target.meta.path)
    weight.setflags(write=False)
    rows = np.flatnonzero(weight.any(axis=1))
    cols = np.flatnonzero(weight.any(axis=0))
    origin = (int(rows[0]), int(cols[0])) if rows.size else (0, 0)
    size = (int(rows[-1] + 1 - rows[0]), int(cols[-1] + 1 - cols[0])) if rows.size else (0, 0)
    return _candidate(image, weight, mapped, tuple(box_labels), tuple(global_labels), seed, origin, size,
                      min(sx, sy), feather_px, window, function, float(margin), source_id, settings)  # fmt: skip


def _candidate(image: np.ndarray, weight: np.ndarray, boxes: tuple[Box, ...], box_labels: tuple[str, ...],
               global_labels: tuple[str, ...], seed: int, origin: tuple[int, int], size: tuple[int, int],
               scale: float, feather_px: float, window: VoiWindow, function: str, margin: float,
               source_id: str | None, settings: dict[str, object] | None) -> Candidate:  # fmt: skip
    return Candidate(
        task=Task.INPAINT, image=image, generated=weight, boxes=boxes, box_labels=box_labels,
        global_labels=global_labels, seed=int(seed), crop_origin=origin, crop_size=size, scale=float(scale),
        feather_px=float(feather_px), window=window, window_function=function, engine=ENGINE, model_name=None,
        checkpoint_sha256=None, seed_used=False, hole_kind=HoleKind.RECTANGLE, margin_px=margin,
        model_size=(0, 0), source_id=source_id, engine_settings=dict(settings or {}),
    )  # fmt: skip
