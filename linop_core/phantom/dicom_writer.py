"""Write phantom pixels as DICOM files with the tags and quirks of the VinDr releases.

Device profiles name the real vendors and models of VinDr-Mammo (Siemens Mammomat Inspiration, Planmed
Nuance, IMS Giotto Image 3DL and Giotto Class). Which image size, bit depth, photometric interpretation and
VOI function belongs to which vendor is *not* known from the release (see vindr-data.md, "unverified"); the
assignment below is a plausible choice made so that every quirk a reader must handle occurs:

- MONOCHROME1 on some profiles: stored = 2**BitsStored - 1 - pixel (PresentationLUTShape INVERSE), so a
  reader that inverts with ``max - x`` gets the MONOCHROME2 phantom back;
- several WindowCenter/WindowWidth pairs with WindowCenterWidthExplanation (as on Giotto);
- VOILUTFunction SIGMOID on one mammography profile;
- PixelPaddingValue with the padding written outside the breast on some profiles;
- RescaleSlope/RescaleIntercept on some, one of them with a non-zero intercept.

Identifiers: VinDr names files by 32-hex hashes and also stores that hash as SOP Instance UID, which is not a
valid UID. Here the file name and the CSVs carry the hex id while the DICOM carries a valid, deterministic
UID (``pydicom.uid.generate_uid`` under pydicom's root, with the hex id as entropy source); the hex id is repeated in
ImageComments as ``image_id=<hex>`` so a file can be traced back without its name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ComputedRadiographyImageStorage,
    DigitalMammographyXRayImageStorageForPresentation,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    generate_uid,
)

from linop_core.dicom.voi import percentile_range
from linop_core.fileio import atomic_open

_SOP_CLASS = {
    "MG": DigitalMammographyXRayImageStorageForPresentation,
    "DX": DigitalXRayImageStorageForPresentation,
    "CR": ComputedRadiographyImageStorage,
}
_WINDOW_EXPLANATIONS = ("NORMAL", "HARDER", "SOFTER")


@dataclass(frozen=True)
class DeviceProfile:
    """How one (pseudo-)vendor writes its images.

    native_rows / native_cols: image size at ``--size full``; ``native_cols`` lists the widths a device
    produces (Giotto: a range). ``small_factor`` divides them for ``--size small``.
    rescale: (slope, intercept) written as RescaleSlope/RescaleIntercept, or None to omit the tags.
    """

    modality: str
    manufacturer: str
    model: str
    native_rows: int
    native_cols: tuple[int, ...]
    pixel_spacing_mm: float
    bits_stored: int
    photometric: str
    n_windows: int
    voi_lut_function: str | None
    padding: bool
    rescale: tuple[float, float] | None
    weight: float
    small_factor: int = 4

    def shape(self, size: str, rng: np.random.Generator) -> tuple[int, int]:
        """(rows, cols) for ``size`` 'small' or 'full'; draws the width when the device has several."""
        cols = int(self.native_cols[int(rng.integers(len(self.native_cols)))])
        if size == "full":
            return self.native_rows, cols
        if size == "small":
            return self.native_rows // self.small_factor, cols // self.small_factor
        raise ValueError(f"size must be 'small' or 'full', got {size!r}")

    def spacing(self, size: str) -> float:
        return self.pixel_spacing_mm * (self.small_factor if size == "small" else 1)


# VinDr-Mammo shape families (h x w): 3518x2800, 2812x2012, 3580 x 2531..2812 (the last one varies).
MAMMO_PROFILES: tuple[DeviceProfile, ...] = (
    DeviceProfile("MG", "Siemens", "Mammomat Inspiration", 3518, (2800,), 0.085, 12, "MONOCHROME2",
                  1, None, True, (1.0, 0.0), 0.6),
    DeviceProfile("MG", "Planmed", "Nuance", 2812, (2012,), 0.085, 14, "MONOCHROME1",
                  1, "SIGMOID", False, None, 0.2),
    DeviceProfile("MG", "IMS Giotto SpA", "Giotto Image 3DL", 3580, (2531, 2600, 2700, 2812), 0.083, 14,
                  "MONOCHROME2", 3, None, True, None, 0.1),
    DeviceProfile("MG", "IMS srl", "Giotto Class", 3580, (2531, 2650, 2812), 0.083, 16, "MONOCHROME1",
                  3, "LINEAR", True, (1.0, 0.0), 0.1),
)

# VinDr-CXR vendors are not documented in the reference notes; these are common PA chest devices with
# detector sizes in the 2000-3000 px range the release shows.
CXR_PROFILES: tuple[DeviceProfile, ...] = (
    DeviceProfile("DX", "Philips Medical Systems", "DigitalDiagnost", 2836, (2336,), 0.148, 12, "MONOCHROME2",
                  1, None, False, None, 0.45),
    DeviceProfile("DX", "GE Healthcare", "Definium 6000", 2022, (2022,), 0.2, 14, "MONOCHROME1",
                  1, "LINEAR", False, (1.0, 0.0), 0.3),
    DeviceProfile("CR", "FUJIFILM Corporation", "FCR CAPSULA XLII", 2140, (1760,), 0.2, 12, "MONOCHROME1",
                  2, None, False, (1.0, -1024.0), 0.25),
)


@dataclass(frozen=True)
class DicomIdentity:
    """Identifiers of one image. ``*_hex`` are the VinDr-style 32-hex ids; UIDs are derived from them."""

    patient_id: str
    study_hex: str
    series_hex: str
    image_hex: str
    series_number: int
    instance_number: int
    study_date: str  # YYYYMMDD
    patient_age: str  # e.g. '052Y'
    patient_sex: str

    @property
    def study_uid(self) -> str:
        return str(generate_uid(entropy_srcs=["study", self.study_hex]))

    @property
    def series_uid(self) -> str:
        return str(generate_uid(entropy_srcs=["series", self.series_hex]))

    @property
    def sop_uid(self) -> str:
        return str(generate_uid(entropy_srcs=["image", self.image_hex]))


@dataclass(frozen=True)
class WrittenImage:
    """What went into the file, in the units of the file (window values after the rescale)."""

    path: Path
    photometric: str
    window_centers: tuple[float, ...]
    window_widths: tuple[float, ...]
    padding_value: int | None
    rows: int
    cols: int


def hex_id(rng: np.random.Generator) -> str:
    """A 32-character lowercase hex id (VinDr style), deterministic for the generator's state."""
    return rng.bytes(16).hex()


def vendor_windows(pixels: np.ndarray, foreground: np.ndarray, n_windows: int) -> tuple[list[float], list[float]]:
    """The (centers, widths) a phantom file stores, MONOCHROME2 stored units: a vendor-style window 5 % wider
    than the 0.5-99.5 % percentile range of the body, then a narrower and a wider variant."""
    values = pixels[foreground] if foreground.any() else pixels.ravel()
    lo, hi = percentile_range(values, (0.5, 99.5))
    center, width = (lo + hi) / 2.0, max(2.0, (hi - lo) * 1.05)
    centers = [center, center + 0.05 * width, center - 0.05 * width][:n_windows]
    widths = [width, 0.8 * width, 1.25 * width][:n_windows]
    return centers, widths


def _ds(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    foreground: np.ndarray,
    profile: DeviceProfile,
    identity: DicomIdentity,
    *,
    pixel_spacing_mm: float,
    view_position: str,
    laterality: str | None,
    patient_orientation: Sequence[str],
    body_part: str,
    study_description: str,
) -> WrittenImage:
    """Write ``pixels`` (uint16 (H, W), MONOCHROME2, < 2**bits_stored) atomically as one DICOM file.

    ``foreground`` (bool (H, W)) is the body part: windows are computed inside it and, on profiles with
    padding, everything outside it is set to PixelPaddingValue.
    """
    bits = profile.bits_stored
    max_value = (1 << bits) - 1
    if pixels.dtype != np.uint16 or pixels.ndim != 2:
        raise ValueError(f"pixels must be a 2-D uint16 array, got {pixels.dtype} {pixels.shape}")
    if int(pixels.max(initial=0)) > max_value:
        raise ValueError(f"pixel values exceed BitsStored={bits}")
    inverted = profile.photometric == "MONOCHROME1"
    stored = (max_value - pixels).astype(np.uint16) if inverted else pixels.copy()
    centers, widths = vendor_windows(pixels, foreground, profile.n_windows)
    if inverted:
        centers = [max_value - c for c in centers]
    padding_value: int | None = None
    if profile.padding:
        padding_value = max_value if inverted else 0
        stored[~foreground] = padding_value
    slope, intercept = profile.rescale if profile.rescale is not None else (1.0, 0.0)
    centers = [slope * c + intercept for c in centers]
    widths = [slope * w for w in widths]

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = _SOP_CLASS[profile.modality]
    meta.MediaStorageSOPInstanceUID = identity.sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = identity.sop_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = identity.study_date
    ds.Modality = profile.modality
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Manufacturer = profile.manufacturer
    ds.ManufacturerModelName = profile.model
    ds.StudyDescription = study_description
    ds.PatientName = identity.patient_id
    ds.PatientID = identity.patient_id
    ds.PatientSex = identity.patient_sex
    ds.PatientAge = identity.patient_age
    ds.BodyPartExamined = body_part
    ds.ViewPosition = view_position
    ds.ImagerPixelSpacing = [_ds(pixel_spacing_mm), _ds(pixel_spacing_mm)]
    ds.PixelSpacing = [_ds(pixel_spacing_mm), _ds(pixel_spacing_mm)]
    ds.StudyInstanceUID = identity.study_uid
    ds.SeriesInstanceUID = identity.series_uid
    ds.StudyID = identity.study_hex[:16]
    ds.SeriesNumber = identity.series_number
    ds.InstanceNumber = identity.instance_number
    ds.PatientOrientation = list(patient_orientation)
    if laterality is not None:
        ds.Laterality = laterality
        ds.ImageLaterality = laterality
    ds.ImageComments = f"image_id={identity.image_hex}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = profile.photometric
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.BurnedInAnnotation = "NO"
    if padding_value is not None:
        ds.add_new(0x00280120, "US", padding_value)  # PixelPaddingValue, US because unsigned pixels
    ds.WindowCenter = [_ds(c) for c in centers] if len(centers) > 1 else _ds(centers[0])
    ds.WindowWidth = [_ds(w) for w in widths] if len(widths) > 1 else _ds(widths[0])
    if len(centers) > 1:
        ds.WindowCenterWidthExplanation = list(_WINDOW_EXPLANATIONS[: len(centers)])
    if profile.voi_lut_function is not None:
        ds.VOILUTFunction = profile.voi_lut_function
    if profile.rescale is not None:
        ds.RescaleIntercept = _ds(intercept)
        ds.RescaleSlope = _ds(slope)
        ds.RescaleType = "US"
    ds.PresentationLUTShape = "INVERSE" if inverted else "IDENTITY"
    ds.PixelData = stored.astype("<u2").tobytes()

    path = Path(path)
    with atomic_open(path) as f:
        ds.save_as(f, enforce_file_format=True)
    return WrittenImage(
        path=path,
        photometric=profile.photometric,
        window_centers=tuple(float(_ds(c)) for c in centers),
        window_widths=tuple(float(_ds(w)) for w in widths),
        padding_value=padding_value,
        rows=int(pixels.shape[0]),
        cols=int(pixels.shape[1]),
    )
