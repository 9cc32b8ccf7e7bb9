"""Read greyscale radiographs (mammograms, chest X-rays) from DICOM and map them to [0, 1].

Pixel pipeline (PS3.3 C.11 and C.8.11.6):

1. decode the stored values (pydicom and its pixel plugins, pylibjpeg for JPEG / JPEG-LS / JPEG 2000);
2. modality LUT: Modality LUT Sequence (pydicom's ``apply_modality_lut``) or Rescale Slope / Intercept;
3. MONOCHROME2 convention: MONOCHROME1, or Presentation LUT Shape INVERSE, flips the values over the
   representable output range, ``x' = lo + hi - x``; windows move with them (``center' = lo + hi - center``).
   In DX / MG objects MONOCHROME1 *requires* the INVERSE shape, so both together are one flip, not two;
4. VOI: a Window Center / Width pair through LINEAR, LINEAR_EXACT or SIGMOID (PS3.3 C.11.2.1.2, implemented
   here in float32 numpy so full-field mammograms map fast), a VOI LUT Sequence (pydicom's ``apply_voi``),
   or, when the file carries neither, a percentile window over the non-padding pixels.

Padding pixels (Pixel Padding Value / Range Limit, in stored units) are reported as a mask, excluded from
the percentile window and mapped to 0.

Every problem with the file raises :class:`linop_core.errors.DicomError` with a one-line message.

Modules: :mod:`.image` (what a read image is), :mod:`.reading` (file -> native pixels, steps 1-3),
:mod:`.voi` (native pixels -> [0, 1] and back, step 4).
"""

from linop_core.dicom.image import GREYSCALE, VOI_FUNCTIONS, DicomImage, DicomMeta, VoiWindow
from linop_core.dicom.reading import read_dicom, read_dicom_meta
from linop_core.dicom.voi import (
    apply_window,
    choose_window,
    invert_window,
    percentile_range,
    percentile_window,
    to_unit,
)

__all__ = [
    "GREYSCALE",
    "VOI_FUNCTIONS",
    "DicomImage",
    "DicomMeta",
    "VoiWindow",
    "apply_window",
    "choose_window",
    "invert_window",
    "percentile_range",
    "percentile_window",
    "read_dicom",
    "read_dicom_meta",
    "to_unit",
]
