"""VOI: native pixels -> float32 [0, 1] through a window or a VOI LUT, and back (for pasting generated pixels).

Windows follow PS3.3 C.11.2.1.2 (LINEAR, LINEAR_EXACT, SIGMOID). When a file has no window, a percentile
window over the non-padding pixels stands in; :func:`percentile_window` is the one place that computes one.
"""

from __future__ import annotations

import math

import numpy as np
from pydicom.pixels import apply_voi

from linop_core.dicom.image import VOI_FUNCTIONS, DicomImage, VoiWindow
from linop_core.errors import DicomError

# The SIGMOID inverse is unbounded at 0 and 1; clamp to keep pasted-back values finite.
_SIGMOID_EPS = 1e-6
# Above this many distinct integer values the histogram percentile would allocate too much; use np.percentile.
_MAX_HISTOGRAM_SPAN = 1 << 24


def apply_window(pixels: np.ndarray, window: VoiWindow, function: str = "LINEAR") -> np.ndarray:
    """Map native values to float32 [0, 1] with one window, exactly as PS3.3 C.11.2.1.2 (y range 0..1).

    LINEAR: below ``c - 0.5 - (w-1)/2`` -> 0, above ``c - 0.5 + (w-1)/2`` -> 1, linear between (w >= 1).
    LINEAR_EXACT: ``(x - c) / w + 0.5`` clipped (w > 0). SIGMOID: ``1 / (1 + exp(-4 (x - c) / w))`` (w > 0).
    """
    func = _normalise_function(function)
    center, width = float(window.center), float(window.width)
    _check_width(func, width)
    out = np.array(pixels, dtype=np.float32, copy=True)
    if func == "LINEAR":
        if width == 1.0:  # the linear segment is empty: a threshold at c - 0.5
            return (out > np.float32(center - 0.5)).astype(np.float32)
        out -= np.float32(center - 0.5)
        out *= np.float32(1.0 / (width - 1.0))
        out += np.float32(0.5)
        np.clip(out, 0.0, 1.0, out=out)
    elif func == "LINEAR_EXACT":
        out -= np.float32(center)
        out *= np.float32(1.0 / width)
        out += np.float32(0.5)
        np.clip(out, 0.0, 1.0, out=out)
    else:
        out -= np.float32(center)
        out *= np.float32(-4.0 / width)
        np.clip(out, -80.0, 80.0, out=out)  # exp overflows float32 near 88
        np.exp(out, out=out)
        out += np.float32(1.0)
        np.reciprocal(out, out=out)
    return out


def invert_window(unit: np.ndarray, window: VoiWindow, function: str = "LINEAR") -> np.ndarray:
    """[0, 1] -> native units: the inverse of :func:`apply_window` on its unclipped part (float32).

    SIGMOID values are clamped to [1e-6, 1 - 1e-6] first, so 0 and 1 map to finite values
    (about ``c -/+ 3.45 w``). LINEAR with width 1 maps every value to the threshold ``c - 0.5``.
    """
    func = _normalise_function(function)
    center, width = float(window.center), float(window.width)
    _check_width(func, width)
    y = np.asarray(unit, dtype=np.float32)
    if func == "LINEAR":
        return ((y - np.float32(0.5)) * np.float32(width - 1.0) + np.float32(center - 0.5)).astype(np.float32)
    if func == "LINEAR_EXACT":
        return ((y - np.float32(0.5)) * np.float32(width) + np.float32(center)).astype(np.float32)
    y = np.clip(y, _SIGMOID_EPS, 1.0 - _SIGMOID_EPS)
    return (np.float32(center) - np.float32(width / 4.0) * np.log(1.0 / y - 1.0)).astype(np.float32)


def choose_window(
    image: DicomImage,
    window: int | VoiWindow | None = None,
    *,
    percentiles: tuple[float, float] = (0.5, 99.5),
    prefer_lut: bool = False,
) -> VoiWindow:
    """The window :func:`to_unit` uses with the same arguments; record it in provenance.

    ``None``: the file's first window; else, if the file has only a VOI LUT Sequence, a linear stand-in
    spanning the LUT's input domain (the LUT itself is what to_unit applies; this window is only the record,
    and an invertible approximation); else the percentile window of the non-padding pixels.
    An ``int`` picks the file's window (or, with ``prefer_lut``, the LUT item) of that index.
    """
    if isinstance(window, VoiWindow):
        return window
    lut_index = _lut_index(image, window, prefer_lut)
    if lut_index is not None:
        return _lut_span_window(image, lut_index)
    windows = image.meta.windows
    if isinstance(window, int) and not isinstance(window, bool):
        if not 0 <= window < len(windows):
            raise DicomError(
                image.meta.path, f"window {window} requested but the file has {len(windows)} window(s)"
            )
        return windows[window]
    if window is not None:
        raise TypeError(f"window must be an int index, a VoiWindow or None, not {type(window).__name__}")
    if windows:
        return windows[0]
    return percentile_window(image, percentiles)


def to_unit(
    image: DicomImage,
    window: int | VoiWindow | None = None,
    *,
    function: str | None = None,
    percentiles: tuple[float, float] = (0.5, 99.5),
    prefer_lut: bool = False,
) -> np.ndarray:
    """Map the image to float32 (H, W) in [0, 1] for display and model input; padding pixels -> 0.

    Window choice (see :func:`choose_window`): an explicit VoiWindow or index, else the file's first window,
    else its VOI LUT Sequence, else a percentile window. When a file has both windows and a VOI LUT
    Sequence, the window wins unless ``prefer_lut`` (pydicom's ``apply_voi_lut`` prefers the LUT): windows are
    invertible, which pasting generated pixels back needs. ``function`` overrides the file's VOI LUT Function.
    """
    if image.pixels.size == 0:
        raise ValueError("to_unit needs pixels; this image was read with read_pixels=False")
    lut_index = None if isinstance(window, VoiWindow) else _lut_index(image, window, prefer_lut)
    if lut_index is not None:
        unit = _apply_voi_lut(image, lut_index)
    else:
        chosen = choose_window(image, window, percentiles=percentiles)
        try:
            unit = apply_window(image.pixels, chosen, function or image.meta.voi_lut_function)
        except ValueError as exc:
            raise DicomError(image.meta.path, str(exc)) from exc
    if image.padding_mask.any():
        unit[image.padding_mask] = 0.0
    return unit


def percentile_window(
    source: DicomImage | np.ndarray,
    percentiles: tuple[float, float] = (0.5, 99.5),
    *,
    exclude: np.ndarray | None = None,
    name: str = "image",
) -> VoiWindow:
    """A LINEAR window whose ends sit on the given percentiles of an image's pixels.

    For a :class:`DicomImage` the padding pixels are left out; for a bare (H, W) array, the pixels where
    ``exclude`` is True. ``name`` names a bare array in the error raised when no pixel is left.
    """
    p_lo, p_hi = percentiles
    if not 0.0 <= p_lo < p_hi <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
    if isinstance(source, DicomImage):
        pixels, exclude, name = source.pixels, source.padding_mask, source.meta.path
    else:
        pixels = np.asarray(source)
    values = pixels[~exclude] if exclude is not None and exclude.any() else pixels.ravel()
    if values.size == 0:
        raise DicomError(name, "every pixel is padding; no display window can be computed")
    lo, hi = percentile_range(values, (p_lo, p_hi))
    # LINEAR puts 0 at c - 0.5 - (w-1)/2 and 1 at c - 0.5 + (w-1)/2: solve for lo and hi.
    width = max(hi - lo + 1.0, 1.0)
    center = lo + (width - 1.0) / 2.0 + 0.5
    return VoiWindow(center, width, f"percentile {p_lo:g}-{p_hi:g} %")


def percentile_range(values: np.ndarray, percentiles: tuple[float, float]) -> tuple[float, float]:
    """Exact 'inverted CDF' percentiles of ``values`` (any shape); a histogram for integer values (much
    faster than a sort on a full-field mammogram)."""
    if not np.issubdtype(values.dtype, np.number):
        raise TypeError(f"percentiles need numbers, got dtype {values.dtype}")
    if np.issubdtype(values.dtype, np.integer):
        vmin, vmax = int(values.min()), int(values.max())
        if vmax - vmin < _MAX_HISTOGRAM_SPAN:
            shifted = values - np.int32(vmin) if vmin != 0 else values
            counts = np.bincount(shifted.ravel(), minlength=vmax - vmin + 1)
            cdf = np.cumsum(counts)
            targets = np.array(percentiles, dtype=np.float64) / 100.0 * values.size
            idx = np.searchsorted(cdf, targets, side="left")
            idx = np.clip(idx, 0, len(cdf) - 1)
            return float(idx[0] + vmin), float(idx[1] + vmin)
    lo, hi = np.percentile(values, percentiles, method="inverted_cdf")
    return float(lo), float(hi)


def _lut_index(image: DicomImage, window: int | VoiWindow | None, prefer_lut: bool) -> int | None:
    """Which VOI LUT Sequence item to apply, or None to use a window."""
    if image.voi_lut_source is None or isinstance(window, VoiWindow):
        return None
    n_luts = len(image.voi_lut_source.VOILUTSequence)
    if prefer_lut or (window is None and not image.meta.windows):
        index = 0 if window is None else int(window)
        if not 0 <= index < n_luts:
            raise DicomError(
                image.meta.path, f"VOI LUT {index} requested but the file has {n_luts} VOI LUT(s)"
            )
        return index
    return None


def _apply_voi_lut(image: DicomImage, index: int) -> np.ndarray:
    assert image.voi_lut_source is not None
    lo, hi = image.value_range
    native = image.pixels
    if image.inverted:  # the LUT is defined on the file's own values, before our MONOCHROME2 flip
        native = (np.int64(lo + hi) - native) if native.dtype == np.int32 else (lo + hi) - native
    if not np.issubdtype(native.dtype, np.integer):
        native = np.rint(native).astype(np.int64)
    item = image.voi_lut_source.VOILUTSequence[index]
    depth = int(item.LUTDescriptor[2])
    try:
        mapped = apply_voi(native, image.voi_lut_source, index=index)
    except Exception as exc:
        reason = f"VOI LUT {index} cannot be applied ({type(exc).__name__}: {exc})"
        raise DicomError(image.meta.path, reason) from exc
    unit = mapped.astype(np.float32) * np.float32(1.0 / ((1 << depth) - 1))
    if image.inverted:
        np.subtract(np.float32(1.0), unit, out=unit)
    return unit


def _lut_span_window(image: DicomImage, index: int) -> VoiWindow:
    assert image.voi_lut_source is not None
    item = image.voi_lut_source.VOILUTSequence[index]
    n_entries = int(item.LUTDescriptor[0]) or 65536
    first = float(item.LUTDescriptor[1])
    first_out, last_out = first, first + n_entries - 1
    if image.inverted:
        axis = image.value_range[0] + image.value_range[1]
        first_out, last_out = sorted((axis - first_out, axis - last_out))
    width = max(last_out - first_out + 1.0, 1.0)
    center = first_out + (width - 1.0) / 2.0 + 0.5
    explanations = image.meta.voi_lut_explanations
    explanation = explanations[index] if index < len(explanations) else None
    label = f"VOI LUT {index} linear span" + (f": {explanation}" if explanation else "")
    return VoiWindow(center, width, label)


def _normalise_function(function: str) -> str:
    func = str(function).strip().upper()
    if func not in VOI_FUNCTIONS:
        expected = ", ".join(VOI_FUNCTIONS)
        raise ValueError(f"unsupported VOI LUT Function {function!r} (expected one of {expected})")
    return func


def _check_width(function: str, width: float) -> None:
    minimum_ok = width >= 1.0 if function == "LINEAR" else width > 0.0
    if not (math.isfinite(width) and minimum_ok):
        raise ValueError(f"window width {width} is invalid for {function} (PS3.3 C.11.2.1.2)")
