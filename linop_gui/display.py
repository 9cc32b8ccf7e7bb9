"""How native pixels become grey levels on screen, without widgets: window presets, exact DICOM levels and
lookup tables, the display array and its mean pyramid.

The native (H, W) array goes to pyqtgraph as uint16 (or float32 when the values do not fit), never pre-scaled to
8 bits. A LINEAR / LINEAR_EXACT window is the ImageItem's levels; a SIGMOID window (or inversion) is a lookup table
over the data range built with ``linop_core.dicom.apply_window``, so the screen shows exactly what the model input
and the DICOM standard say.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from linop_core.dicom import VOI_FUNCTIONS, DicomImage, VoiWindow, apply_window, percentile_window

_SIGMOID_SAMPLES = 4096


def file_windows(image: DicomImage) -> list[VoiWindow]:
    """The file's own windows (at most four), labelled for the overlay."""
    return [VoiWindow(w.center, w.width, w.explanation or f"file window {i + 1}")
            for i, w in enumerate(image.meta.windows[:4])]


def window_presets(image: DicomImage) -> list[VoiWindow]:
    """Keys 1-4: the file's own windows first, then (if fewer than four) an automatic percentile window and
    the full data range, each labelled so the overlay says which one is in use."""
    presets = file_windows(image)
    if len(presets) < 4:
        auto = percentile_window(image)
        presets.append(VoiWindow(auto.center, auto.width, "auto 0.5–99.5 %"))
    if len(presets) < 4:
        lo, hi = data_range(image)
        width = max(hi - lo + 1.0, 1.0)
        presets.append(VoiWindow(lo + (width - 1.0) / 2.0 + 0.5, width, "full range"))
    return presets


def data_range(image: DicomImage) -> tuple[float, float]:
    """Min and max of the non-padding pixels."""
    pixels = image.pixels
    if image.padding_mask.size and image.padding_mask.any():
        values = pixels[~image.padding_mask]
        if values.size:
            return float(values.min()), float(values.max())
    return float(pixels.min()), float(pixels.max())


def linear_levels(window: VoiWindow, function: str) -> tuple[float, float]:
    """ImageItem levels (value shown black, value shown white) of a LINEAR or LINEAR_EXACT window."""
    c, w = float(window.center), float(window.width)
    if function == "LINEAR_EXACT":
        return c - w / 2.0, c + w / 2.0
    lo = c - 0.5 - (w - 1.0) / 2.0
    hi = c - 0.5 + (w - 1.0) / 2.0
    return lo, max(hi, lo + 1e-3)


def display_array(image: DicomImage) -> np.ndarray:
    """The array handed to the ImageItem: uint16 when the native values fit (pyqtgraph's fast path), else
    float32; padding pixels set to the bottom of the representable range (black unless inverted)."""
    pixels = image.pixels
    lo, hi = float(pixels.min()), float(pixels.max())
    integral = np.issubdtype(pixels.dtype, np.integer)
    out = pixels.astype(np.uint16) if integral and lo >= 0 and hi <= 65535 else pixels.astype(np.float32)
    if image.padding_mask.size and image.padding_mask.any():
        out[image.padding_mask] = max(image.value_range[0], 0) if out.dtype == np.uint16 else image.value_range[0]
    return out


def downsample_mean(data: np.ndarray, factor: int) -> np.ndarray:
    """Block means over ``factor`` x ``factor`` pixels (the ragged edge is dropped), in the input dtype.

    Sums of strided views: several times faster than a reshape + mean over two axes on large images."""
    h, w = data.shape[0] // factor * factor, data.shape[1] // factor * factor
    if h == 0 or w == 0:
        return data
    integral = np.issubdtype(data.dtype, np.integer)
    total = np.zeros((h // factor, w // factor), dtype=np.int64 if integral else np.float64)
    for dy in range(factor):
        for dx in range(factor):
            total += data[dy:h:factor, dx:w:factor]
    if integral:
        return ((total + (factor * factor) // 2) // (factor * factor)).astype(data.dtype)
    return (total / (factor * factor)).astype(data.dtype)


@dataclass(frozen=True)
class DisplayTransform:
    """How native values become grey levels: levels plus an optional uint8 lookup table."""

    levels: tuple[float, float]
    lut: np.ndarray | None


def display_transform(
    window: VoiWindow, function: str, invert: bool, value_span: tuple[float, float], integral: bool
) -> DisplayTransform:
    """Levels/LUT for the ImageItem. SIGMOID becomes an exact per-value table for integer data."""
    if function in ("LINEAR", "LINEAR_EXACT"):
        lut = np.arange(255, -1, -1, dtype=np.uint8) if invert else None
        return DisplayTransform(linear_levels(window, function), lut)
    lo, hi = value_span
    if integral and hi - lo + 1 <= 65536:
        samples = np.arange(lo, hi + 1, dtype=np.float64)
        levels = (lo, lo + samples.size)
    else:
        samples = np.linspace(lo, hi, _SIGMOID_SAMPLES)
        levels = (lo, hi)
    unit = apply_window(samples, window, function)
    if invert:
        unit = 1.0 - unit
    lut = np.clip(unit * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return DisplayTransform(levels, lut)


def shown_function(image: DicomImage) -> str:
    """The VOI LUT function the viewer applies: the file's own when the standard defines it, else LINEAR."""
    function = image.meta.voi_lut_function
    return function if function in VOI_FUNCTIONS else "LINEAR"

