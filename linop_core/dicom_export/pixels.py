"""How a synthetic set's pixels become DICOM stored values, bit for bit.

The set holds pixels after the source's modality LUT, in the MONOCHROME2 convention (a MONOCHROME1 source was
flipped on reading). They are written as MONOCHROME2, unsigned, with ``RescaleSlope`` 1 and a
``RescaleIntercept`` that moves the representable minimum to stored value 0 when it is negative (a CR with
intercept -1024, for example). Bits Stored is the source's, or more when a value needs more bits (it never
does when the engine kept the source range). Reading the file back through the modality LUT therefore gives
the set's pixels exactly: nothing is rescaled, rounded or clipped, and what cannot be written that way is
refused, not approximated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

MAX_BITS = 16  # greyscale radiographs: Bits Allocated 8 or 16


@dataclass(frozen=True)
class StoredPixels:
    """Stored values and the Image Pixel / Modality LUT attributes that map them back to the set's pixels."""

    stored: np.ndarray = field(repr=False)  # (H, W) uint8 or uint16
    bits_allocated: int
    bits_stored: int
    rescale_intercept: int  # pixel = stored + rescale_intercept (slope 1)


class PixelEncodingError(ValueError):
    """The pixels cannot be written as unsigned integers of at most 16 bits without changing them."""


def encode_pixels(pixels: np.ndarray, bits_stored: int, value_range: tuple[float, float]) -> StoredPixels:
    """Stored values for ``pixels`` (H, W) integer, MONOCHROME2, after the modality LUT.

    ``bits_stored`` (0 when unknown) and ``value_range`` ((NaN, NaN) when unknown) describe the source
    encoding; they are kept where the pixels allow, so the output has the source's bit depth.
    """
    if pixels.ndim != 2:
        raise PixelEncodingError(f"a greyscale image is 2-D, got shape {pixels.shape}")
    if not np.issubdtype(pixels.dtype, np.integer):
        raise PixelEncodingError(
            f"{pixels.dtype} pixels (a source with a non-integer Rescale Slope/Intercept) cannot be stored as "
            "DICOM integers without rounding"
        )
    low, high = int(pixels.min(initial=0)), int(pixels.max(initial=0))
    range_low = value_range[0]
    floor = min(low, math.floor(range_low) if math.isfinite(range_low) else 0)
    intercept = min(0, floor)
    needed = max(1, (high - intercept).bit_length())
    bits = max(needed, int(bits_stored) if bits_stored else 0)
    if bits > MAX_BITS:
        raise PixelEncodingError(
            f"values {low}..{high} need {needed} bits, more than the {MAX_BITS} of a greyscale DICOM radiograph"
        )
    allocated = 8 if bits <= 8 else 16
    dtype = np.uint8 if allocated == 8 else np.uint16
    stored = (pixels.astype(np.int64) - intercept).astype(dtype) if intercept else pixels.astype(dtype)
    return StoredPixels(stored=stored, bits_allocated=allocated, bits_stored=bits, rescale_intercept=intercept)
