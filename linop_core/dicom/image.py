"""What a read DICOM image is: native pixels, the header facts LINOP uses, and VOI windows."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset

VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
GREYSCALE = ("MONOCHROME1", "MONOCHROME2")


@dataclass(frozen=True)
class VoiWindow:
    """A window in the units of ``DicomImage.pixels`` (after the modality LUT, MONOCHROME2)."""

    center: float
    width: float
    explanation: str | None = None


@dataclass(frozen=True)
class DicomMeta:
    """What LINOP needs from the header. Optional fields are None where the file lacks them."""

    path: str
    sop_instance_uid: str | None
    study_instance_uid: str | None
    laterality: str | None  # 'L' or 'R', from ImageLaterality, else Laterality
    view_position: str | None
    manufacturer: str | None
    manufacturer_model: str | None
    modality: str | None
    photometric_interpretation: str  # as stored in the file
    presentation_lut_shape: str | None
    bits_stored: int
    pixel_spacing_mm: tuple[float, float] | None  # (row, col): PixelSpacing, else ImagerPixelSpacing
    windows: tuple[VoiWindow, ...]  # converted to the MONOCHROME2 convention of DicomImage.pixels
    voi_lut_function: str  # 'LINEAR' when absent
    has_voi_lut_sequence: bool
    padding_value: float | None  # in output units (after modality LUT and inversion)
    presentation_intent_type: str | None
    transfer_syntax_uid: str
    rows: int
    columns: int
    sop_class_uid: str | None = None
    # False: no 128-byte preamble and 'DICM' marker (an ACR-NEMA style file, read in pydicom's force mode)
    has_preamble: bool = True
    series_instance_uid: str | None = None
    bits_allocated: int = 16
    pixel_representation: int = 0
    voi_lut_explanations: tuple[str | None, ...] = ()
    patient_orientation: tuple[str, ...] = ()  # PatientOrientation (row, column directions), e.g. ('P', 'L')
    body_part_examined: str | None = None  # BodyPartExamined (0018,0015), e.g. "BREAST", "CHEST"


@dataclass(frozen=True)
class DicomImage:
    """Native pixels of one greyscale image plus its header.

    ``pixels`` is (H, W), after the modality LUT, in the MONOCHROME2 convention (bright = dense);
    int32, or float32 when the modality transform is not integer.
    """

    pixels: np.ndarray = field(compare=False)
    meta: DicomMeta
    inverted: bool
    padding_mask: np.ndarray = field(compare=False)  # (H, W) bool, True on padding pixels
    value_range: tuple[float, float]  # representable output range: inversion axis and LUT domain
    # The VOI LUT Sequence in a minimal dataset, for pydicom's apply_voi (None without one).
    voi_lut_source: Dataset | None = field(default=None, compare=False, repr=False)


# ----------------------------------------------------------------------------------------------- reading
