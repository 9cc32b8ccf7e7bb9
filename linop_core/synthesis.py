"""Lesion in- and out-painting at native resolution: crop window + scale, window to [0, 1], generate, paste back.

* :func:`inpaint_lesion` (mammography): a square-ish window around the box (side ~ ``context`` x box side,
  at least the model size at ``max_scale``), shifted to stay inside the image, resized to the engine's
  resolution, generated, resized back and pasted **only** where the feathered hole weight is > 0.
* :func:`outpaint_around` (chest X-ray): the whole image resized to the model size (aspect kept by padding
  with hole), the lesion boxes + margin kept, everything else regenerated, resized back; kept pixels exact
  and a feathered band outside them.

:func:`synthesize` is the one entry point: it takes either request (both are a :class:`SynthesisRequest`)
and returns one :class:`Candidate` per seed. Every pixel whose blend weight is 0 equals the source bit for bit;
this is checked for each candidate before it is handed out (:class:`PasteIntegrityError` otherwise: a bug, not a
user error). With ``on_candidate`` each checked candidate is handed over the moment it exists, the first seed
first: the engine then runs seed by seed (a candidate depends only on its own seed, so the pixels are the same).

Blend weights (``Candidate.generated``): inpainting, 1 on the hole and a raised-cosine ramp over
``feather_px`` source pixels *outside* it (the model regenerates the ramp too, so the ramp blends generated
content into the source); outpainting, 0 on the kept regions and a ramp over ``feather_px`` pixels *outside*
them up to 1 (so the kept lesion pixels are never touched).
"""

from __future__ import annotations

import math
from abc import ABC
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from linop_core.anatomy import (
    AnatomyRegion,
    anatomy_mask,
    format_box,
    require_box_in_anatomy,
    require_box_in_image,
)
from linop_core.candidate import Candidate
from linop_core.dicom import DicomImage, VoiWindow, apply_window, choose_window, invert_window, percentile_window
from linop_core.engines import Engine, ProgressFn
from linop_core.errors import LinopError
from linop_core.masks import Box, box_hole, feather, outpaint_keep_mask
from linop_core.vocab import BOX_HOLES, HoleKind, Task

CandidateFn = Callable[[Candidate], None]


class PasteIntegrityError(RuntimeError):
    """A pixel outside the generated region changed: a bug in the paste-back, never a user error."""


class SynthesisRequest(ABC):
    """What to synthesise in one image: an :class:`InpaintRequest` or an :class:`OutpaintRequest`.

    Both carry ``seeds`` (one candidate each), the VOI ``window`` and ``window_function`` that map the source
    to the model's [0, 1], ``feather_px``, the ``global_labels`` to record, and the ``anatomy`` region with
    the fraction ``min_inside_anatomy`` of each box that must lie in it. :func:`synthesize` runs either.
    """

    task: ClassVar[Task]
    seeds: Sequence[int]
    window: VoiWindow | int | None
    window_function: str | None
    feather_px: float | None
    global_labels: tuple[str, ...]
    anatomy: AnatomyRegion
    min_inside_anatomy: float


@dataclass(frozen=True)
class InpaintRequest(SynthesisRequest):
    """Generate a lesion in ``box`` (source pixel coordinates).

    ``hole``: "ellipse" (inscribed in the box), "rectangle" (the box), or a brush mask (H, W bool, True =
    hole, source coordinates). With a brush the lesion box becomes the bounding box of the brush inside
    ``box`` (``box=None``: of the whole brush).
    ``window``: a VoiWindow, an index into the DICOM file's windows, or None (the file's first window, else a
    percentile window; for a bare array a 0.5-99.5 % percentile window).
    ``context``: window side = ``context`` x the box's longer side (at least the box plus the feather band,
    and at least ``resolution / max_scale``, so small boxes are not magnified beyond ``max_scale``).
    ``feather_px``: width of the blend ramp outside the hole in source pixels; None = 15 % of the box's
    shorter side, at least 2 px.
    ``anatomy`` / ``min_inside_anatomy``: the region the box must lie in ("breast", or "chest" to inpaint
    into a chest X-ray) and the fraction of the box that must be inside it.
    """

    task: ClassVar[Task] = Task.INPAINT
    box: Box | None
    hole: HoleKind | np.ndarray = HoleKind.ELLIPSE
    seeds: Sequence[int] = (0,)
    window: VoiWindow | int | None = None
    window_function: str | None = None
    context: float = 2.0
    feather_px: float | None = None
    max_scale: float = 1.0
    category: str = "Mass"
    global_labels: tuple[str, ...] = ()
    anatomy: AnatomyRegion = "breast"
    min_inside_anatomy: float = 0.9


@dataclass(frozen=True)
class OutpaintRequest(SynthesisRequest):
    """Keep the lesion ``boxes`` (+ ``margin`` source pixels per side) and regenerate everything else.

    ``long_side``: the model canvas side for the image's longer side (a multiple of the engine resolution;
    None = the engine resolution). ``feather_px``: width of the blend ramp outside the kept regions in source
    pixels; None = 4 model pixels. ``min_inside_anatomy``: the fraction of each box that must lie in the
    chest region (lungs and mediastinum).
    """

    task: ClassVar[Task] = Task.OUTPAINT
    boxes: tuple[Box, ...]
    box_labels: tuple[str, ...]
    seeds: Sequence[int] = (0,)
    margin: float = 16.0
    global_labels: tuple[str, ...] = ()
    window: VoiWindow | int | None = None
    window_function: str | None = None
    feather_px: float | None = None
    long_side: int | None = None
    anatomy: AnatomyRegion = "chest"
    min_inside_anatomy: float = 0.5


# ----------------------------------------------------------------------------------------------- source


@dataclass(frozen=True)
class _Source:
    pixels: np.ndarray
    name: str
    source_id: str | None
    value_range: tuple[float, float]
    window: VoiWindow
    window_function: str
    padding_mask: np.ndarray | None


def _resolve_source(
    image: DicomImage | np.ndarray,
    window: VoiWindow | int | None,
    window_function: str | None,
    image_name: str | None,
) -> _Source:
    if isinstance(image, DicomImage):
        if image.pixels.size == 0:
            raise LinopError(f"{image.meta.path}: the image was read without pixels; read it with read_dicom(path)")
        chosen = choose_window(image, window)
        from_file = chosen in image.meta.windows
        function = window_function or (image.meta.voi_lut_function if from_file else "LINEAR")
        return _checked(_Source(
            pixels=image.pixels,
            name=image_name or image.meta.path,
            source_id=image.meta.sop_instance_uid,
            value_range=(float(image.value_range[0]), float(image.value_range[1])),
            window=chosen,
            window_function=function,
            padding_mask=image.padding_mask if image.padding_mask.any() else None,
        ))
    pixels = np.asarray(image)
    name = image_name or "image"
    if pixels.ndim != 2 or pixels.size == 0:
        raise LinopError(f"{name}: expected a 2-D greyscale image, got shape {pixels.shape}")
    if not (np.issubdtype(pixels.dtype, np.integer) or np.issubdtype(pixels.dtype, np.floating)):
        raise LinopError(f"{name}: pixel type {pixels.dtype} is not a number type")
    if isinstance(window, int) and not isinstance(window, bool):
        raise LinopError(f"{name}: a window index needs a DICOM image; give a VoiWindow for a bare array")
    if np.issubdtype(pixels.dtype, np.integer):
        info = np.iinfo(pixels.dtype)
        value_range = (float(info.min), float(info.max))
    else:
        value_range = (float(np.min(pixels)), float(np.max(pixels)))
    return _checked(_Source(
        pixels=pixels,
        name=name,
        source_id=image_name,
        value_range=value_range,
        window=window if isinstance(window, VoiWindow) else percentile_window(pixels, name=name),
        window_function=window_function or "LINEAR",
        padding_mask=None,
    ))


def _checked(source: _Source) -> _Source:
    """Refuse a window the VOI function cannot use (e.g. LINEAR width < 1), naming the image."""
    try:
        apply_window(np.zeros(1, dtype=np.float32), source.window, source.window_function)
    except ValueError as exc:
        raise LinopError(f"{source.name}: window {source.window} cannot be used ({exc}); pick another") from None
    return source


def _check_seeds(seeds: Sequence[int], name: str) -> list[int]:
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise LinopError(f"{name}: no seeds given; ask for at least one candidate")
    return seeds


def _check_anatomy(source: _Source, boxes: Sequence[Box], region: AnatomyRegion, min_inside: float) -> None:
    if not 0.0 <= min_inside <= 1.0:
        raise LinopError(f"{source.name}: min_inside_anatomy must be a fraction in [0, 1], got {min_inside}")
    mask = anatomy_mask(source.pixels, region, padding_mask=source.padding_mask)
    for box in boxes:
        require_box_in_anatomy(mask, box, region=region, image_name=source.name, min_inside=min_inside)


# ----------------------------------------------------------------------------------------------- resampling


def _resize(planes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize (N, h, w) float32 planes to (N, *size): area average when shrinking, bicubic when growing."""
    h, w = planes.shape[-2:]
    if (h, w) == tuple(size):
        return planes.astype(np.float32, copy=True)
    t = torch.from_numpy(np.ascontiguousarray(planes, dtype=np.float32))[:, None]
    if size[0] <= h and size[1] <= w:
        out = F.interpolate(t, size=size, mode="area")
    elif size[0] >= h and size[1] >= w:
        out = F.interpolate(t, size=size, mode="bicubic", align_corners=False)
    else:
        out = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=True)
    return out[:, 0].numpy()


def _to_native(unit: np.ndarray, source: _Source) -> np.ndarray:
    """[0, 1] -> native float64 values, clipped to the source's value range (and dtype limits)."""
    native = invert_window(np.clip(unit, 0.0, 1.0), source.window, source.window_function).astype(np.float64)
    lo, hi = source.value_range
    if np.issubdtype(source.pixels.dtype, np.integer):
        info = np.iinfo(source.pixels.dtype)
        lo, hi = max(lo, float(info.min)), min(hi, float(info.max))
    np.clip(native, lo, hi, out=native)
    return native


def blend_native(src: np.ndarray, generated_native: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``where(w > 0, round(w * gen + (1 - w) * src), src)`` in the source dtype: pixels of weight 0 are ``src``
    bit for bit (the contract :func:`verify_outside_unchanged` checks)."""
    w = weight.astype(np.float64)
    mixed = w * generated_native + (1.0 - w) * src.astype(np.float64)
    if np.issubdtype(src.dtype, np.integer):
        info = np.iinfo(src.dtype)
        mixed = np.clip(np.rint(mixed), info.min, info.max)
    return np.where(weight > 0, mixed.astype(src.dtype), src)


def verify_outside_unchanged(source: np.ndarray, result: np.ndarray, weight: np.ndarray, *, name: str) -> None:
    """Raise :class:`PasteIntegrityError` unless ``result`` equals ``source`` wherever ``weight`` is 0."""
    if result.shape != source.shape or result.dtype != source.dtype:
        raise PasteIntegrityError(
            f"{name}: result {result.shape} {result.dtype} differs from source {source.shape} {source.dtype}"
        )
    outside = weight == 0
    changed = int(np.count_nonzero(result[outside] != source[outside]))
    if changed:
        raise PasteIntegrityError(
            f"{name}: {changed} pixel(s) outside the generated region differ from the source (a LINOP bug; "
            "please report it with the request)"
        )


# ----------------------------------------------------------------------------------------------- inpaint


@dataclass(frozen=True)
class CropWindow:
    """The source region the model sees: origin (y0, x0), size (h, w), scale model px / source px."""

    y0: int
    x0: int
    height: int
    width: int
    scale: float
    model_height: int  # the crop's size at model scale, before padding to the engine resolution
    model_width: int


def crop_window(
    shape: tuple[int, int], box: Box, *, resolution: int, context: float, feather_px: float, max_scale: float
) -> CropWindow:
    """Square-ish window around ``box``: side = max(context x box side, box + feather band, res / max_scale),
    shifted (never shrunk) to stay in the image, cut to the image where the image is smaller."""
    h, w = shape
    x0, y0, x1, y1 = box
    box_side = max(x1 - x0, y1 - y0)
    side = math.ceil(max(box_side * context, box_side + 2.0 * feather_px + 2.0, resolution / max_scale))
    crop_h, crop_w = min(side, h), min(side, w)
    cy, cx = (y0 + y1) / 2.0, (x0 + x1) / 2.0
    top = min(max(round(cy - crop_h / 2.0), 0), h - crop_h)
    left = min(max(round(cx - crop_w / 2.0), 0), w - crop_w)
    scale = resolution / side
    model_h = min(max(round(crop_h * scale), 1), resolution)
    model_w = min(max(round(crop_w * scale), 1), resolution)
    return CropWindow(top, left, crop_h, crop_w, scale, model_h, model_w)


def _brush_hole(brush: np.ndarray, box: Box | None, shape: tuple[int, int], name: str) -> tuple[np.ndarray, Box]:
    brush = np.asarray(brush)
    if brush.shape != shape:
        raise LinopError(f"{name}: brush mask is {brush.shape[1::-1]} (w, h) but the image is {shape[::-1]}; "
                         "draw the brush on this image")
    hole = brush.astype(bool, copy=True)
    if box is not None:
        hole &= box_hole(shape, box, HoleKind.RECTANGLE)
    if not hole.any():
        raise LinopError(f"{name}: the brush mask is empty{' inside the box' if box is not None else ''}; "
                         "paint over the region where the lesion should go")
    rows = np.flatnonzero(hole.any(axis=1))
    cols = np.flatnonzero(hole.any(axis=0))
    return hole, (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))


def inpaint_lesion(
    image: DicomImage | np.ndarray,
    request: InpaintRequest,
    engine: Engine,
    *,
    anatomy_check: bool = True,
    image_name: str | None = None,
    progress: ProgressFn | None = None,
    on_candidate: CandidateFn | None = None,
) -> list[Candidate]:
    """Generate a lesion in ``request.box``: one :class:`Candidate` per seed, annotated with that box and
    ``request.category``. Pixels outside the feathered hole are the source bit for bit."""
    source = _resolve_source(image, request.window, request.window_function, image_name)
    seeds = _check_seeds(request.seeds, source.name)
    shape = source.pixels.shape
    if request.feather_px is not None and not 0.0 <= request.feather_px < math.inf:
        raise LinopError(f"{source.name}: feather_px must be a number of pixels >= 0, got {request.feather_px}")
    if request.context < 1.0 or request.max_scale <= 0:
        raise LinopError(f"{source.name}: context must be >= 1 and max_scale > 0 "
                         f"(got {request.context}, {request.max_scale})")

    if isinstance(request.hole, np.ndarray):
        box = None if request.box is None else require_box_in_image(request.box, shape, image_name=source.name)
        full_hole, box = _brush_hole(request.hole, box, shape, source.name)
        hole_kind = HoleKind.BRUSH
    else:
        if request.box is None:
            raise LinopError(f"{source.name}: an inpainting request needs a box (or a brush mask)")
        box = require_box_in_image(request.box, shape, image_name=source.name)
        if request.hole not in BOX_HOLES:
            raise LinopError(f"{source.name}: hole shape {request.hole!r} is not ellipse, rectangle or a brush mask")
        hole_kind = HoleKind(request.hole)
        full_hole = None
    if anatomy_check:
        _check_anatomy(source, [box], request.anatomy, request.min_inside_anatomy)

    bw, bh = box[2] - box[0], box[3] - box[1]
    feather_px = float(request.feather_px) if request.feather_px is not None else max(2.0, 0.15 * min(bw, bh))
    res = engine.resolution
    win = crop_window(shape, box, resolution=res, context=request.context, feather_px=feather_px,
                      max_scale=request.max_scale)
    rows = slice(win.y0, win.y0 + win.height)
    cols = slice(win.x0, win.x0 + win.width)
    local_box = (box[0] - win.x0, box[1] - win.y0, box[2] - win.x0, box[3] - win.y0)
    hole = box_hole((win.height, win.width), local_box, hole_kind) if full_hole is None else full_hole[rows, cols]
    if not hole.any():
        raise LinopError(f"{source.name}: box {format_box(box)} is too small to hold a hole; draw a larger box")
    weight = feather(hole, feather_px)

    crop = source.pixels[rows, cols]
    unit = apply_window(crop, source.window, source.window_function)
    model_unit = np.zeros((res, res), dtype=np.float32)
    model_unit[: win.model_height, : win.model_width] = _resize(unit[None], (win.model_height, win.model_width))[0]
    # A model pixel is a hole if any source pixel under it gets a weight; one more model pixel of hole keeps
    # the resampled border of known pixels out of the blended region.
    touched = _resize((weight > 0).astype(np.float32)[None], (win.model_height, win.model_width))[0] > 0
    touched = _dilate(touched, 1)
    keep = np.zeros((res, res), dtype=bool)  # padding beyond the crop is generated and discarded
    keep[: win.model_height, : win.model_width] = ~touched

    weight_full = np.zeros(shape, dtype=np.float32)
    weight_full[rows, cols] = weight
    weight_full.setflags(write=False)
    settings = engine.provenance()

    def finish(seed: int, plane: np.ndarray) -> Candidate:
        back = _resize(plane[None, : win.model_height, : win.model_width], (win.height, win.width))[0]
        result = source.pixels.copy()
        result[rows, cols] = blend_native(crop, _to_native(back, source), weight)
        verify_outside_unchanged(source.pixels, result, weight_full, name=source.name)
        return Candidate(
            task=Task.INPAINT, image=result, generated=weight_full, boxes=(box,), box_labels=(request.category,),
            global_labels=tuple(request.global_labels), seed=seed, crop_origin=(win.y0, win.x0),
            crop_size=(win.height, win.width), scale=win.scale, feather_px=feather_px, window=source.window,
            window_function=source.window_function, engine=engine.name, model_name=engine.model_name,
            checkpoint_sha256=engine.checkpoint_sha256, seed_used=engine.seed_used, hole_kind=hole_kind,
            margin_px=0.0, model_size=(res, res), source_id=source.source_id, engine_settings=settings,
        )

    return _generate(engine, model_unit, keep, seeds, finish, progress, on_candidate)


def _generate(
    engine: Engine,
    model_unit: np.ndarray,
    keep: np.ndarray,
    seeds: list[int],
    finish: Callable[[int, np.ndarray], Candidate],
    progress: ProgressFn | None,
    on_candidate: CandidateFn | None,
) -> list[Candidate]:
    """Run ``engine`` on the (H, W) model input once per seed and ``finish(seed, plane)`` each output plane into
    a checked candidate: all seeds in one call, or seed by seed (each candidate handed to ``on_candidate`` as
    soon as it exists). ``progress(done, total)`` counts candidates over all calls."""
    n = len(seeds)
    step = 1 if on_candidate is not None else n
    candidates = []
    for start in range(0, n, step):
        part = seeds[start : start + step]
        report = None if progress is None else (lambda done, _total, s=start: progress(s + done, n))
        planes = engine.generate(np.repeat(model_unit[None], len(part), axis=0),
                                 np.repeat(keep[None], len(part), axis=0), part, report)
        for seed, plane in zip(part, planes, strict=True):
            candidate = finish(seed, plane)
            candidates.append(candidate)
            if on_candidate is not None:
                on_candidate(candidate)
    return candidates


def _dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    if pixels <= 0 or not mask.any():
        return mask
    t = torch.from_numpy(mask.astype(np.float32))[None, None]
    size = 2 * pixels + 1
    return F.max_pool2d(t, size, stride=1, padding=pixels)[0, 0].numpy() > 0


# ----------------------------------------------------------------------------------------------- outpaint


def outpaint_around(
    image: DicomImage | np.ndarray,
    request: OutpaintRequest,
    engine: Engine,
    *,
    anatomy_check: bool = True,
    image_name: str | None = None,
    progress: ProgressFn | None = None,
    on_candidate: CandidateFn | None = None,
) -> list[Candidate]:
    """Regenerate everything but the lesion boxes (+ margin): one :class:`Candidate` per seed, carrying the
    boxes, their labels and the global labels over. Kept pixels are the source bit for bit."""
    source = _resolve_source(image, request.window, request.window_function, image_name)
    seeds = _check_seeds(request.seeds, source.name)
    shape = source.pixels.shape
    h, w = shape
    if not request.boxes:
        raise LinopError(f"{source.name}: outpainting needs at least one lesion box to keep")
    if len(request.box_labels) != len(request.boxes):
        raise LinopError(f"{source.name}: {len(request.boxes)} boxes but {len(request.box_labels)} box labels; "
                         "give one label per box")
    boxes = tuple(require_box_in_image(b, shape, image_name=source.name) for b in request.boxes)
    if anatomy_check:
        _check_anatomy(source, boxes, request.anatomy, request.min_inside_anatomy)

    if request.feather_px is not None and not 0.0 <= request.feather_px < math.inf:
        raise LinopError(f"{source.name}: feather_px must be a number of pixels >= 0, got {request.feather_px}")
    if not 0.0 <= request.margin < math.inf:
        raise LinopError(f"{source.name}: margin must be a number of pixels >= 0, got {request.margin}")
    res = engine.resolution
    long_side = request.long_side or res
    if long_side % res:
        raise LinopError(f"{source.name}: long side {long_side} is not a multiple of the engine resolution {res}")
    scale = long_side / max(h, w)
    model_h, model_w = max(round(h * scale), 1), max(round(w * scale), 1)
    canvas = (math.ceil(model_h / res) * res, math.ceil(model_w / res) * res)
    feather_px = float(request.feather_px) if request.feather_px is not None else 4.0 / scale

    kept = outpaint_keep_mask(shape, boxes, request.margin)
    weight = (1.0 - feather(kept, feather_px)).astype(np.float32)
    weight[kept] = 0.0
    weight.setflags(write=False)

    unit = apply_window(source.pixels, source.window, source.window_function)
    model_unit = np.zeros(canvas, dtype=np.float32)
    model_unit[:model_h, :model_w] = _resize(unit[None], (model_h, model_w))[0]
    # Keep a model pixel only if every source pixel under it is kept (padding is hole, discarded later).
    keep = np.zeros(canvas, dtype=bool)
    keep[:model_h, :model_w] = _resize(kept.astype(np.float32)[None], (model_h, model_w))[0] >= 1.0 - 1e-6
    if not keep.any():
        raise LinopError(f"{source.name}: the kept boxes are smaller than one model pixel at scale {scale:.3g}; "
                         "use a larger margin or a larger long_side")

    settings = engine.provenance()

    def finish(seed: int, plane: np.ndarray) -> Candidate:
        back = _resize(plane[None, :model_h, :model_w], shape)[0]
        result = blend_native(source.pixels, _to_native(back, source), weight)
        verify_outside_unchanged(source.pixels, result, weight, name=source.name)
        return Candidate(
            task=Task.OUTPAINT, image=result, generated=weight, boxes=boxes, box_labels=tuple(request.box_labels),
            global_labels=tuple(request.global_labels), seed=seed, crop_origin=(0, 0), crop_size=(h, w),
            scale=scale, feather_px=feather_px, window=source.window, window_function=source.window_function,
            engine=engine.name, model_name=engine.model_name, checkpoint_sha256=engine.checkpoint_sha256,
            seed_used=engine.seed_used, hole_kind=HoleKind.KEEP_BOXES, margin_px=float(request.margin),
            model_size=canvas, source_id=source.source_id, engine_settings=settings,
        )

    return _generate(engine, model_unit, keep, seeds, finish, progress, on_candidate)


# ----------------------------------------------------------------------------------------------- entry point


def synthesize(
    image: DicomImage | np.ndarray,
    request: SynthesisRequest,
    engine: Engine,
    *,
    anatomy_check: bool = True,
    image_name: str | None = None,
    progress: ProgressFn | None = None,
    on_candidate: CandidateFn | None = None,
) -> list[Candidate]:
    """Run ``request`` on ``image`` with ``engine``: one :class:`Candidate` per seed, pixels outside the
    generated region equal to the source (checked). The one way front doors synthesise.

    ``on_candidate(candidate)`` (optional) receives each candidate, checked, as soon as it is made, in seed order;
    ``progress(done, total)`` then counts candidates."""
    if isinstance(request, InpaintRequest):
        return inpaint_lesion(image, request, engine, anatomy_check=anatomy_check, image_name=image_name,
                              progress=progress, on_candidate=on_candidate)
    if isinstance(request, OutpaintRequest):
        return outpaint_around(image, request, engine, anatomy_check=anatomy_check, image_name=image_name,
                               progress=progress, on_candidate=on_candidate)
    raise TypeError(f"expected an InpaintRequest or OutpaintRequest, got {type(request).__name__}")
