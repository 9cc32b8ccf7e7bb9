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
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, apply_voi, get_decoder
from pydicom.uid import UID, ExplicitVRLittleEndian

from linop_core.errors import DicomError

VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
GREYSCALE = ("MONOCHROME1", "MONOCHROME2")

# JPEG, JPEG-LS and JPEG 2000 code streams all end with the marker FF D9 (EOI / EOC). libjpeg decodes a
# cut stream without complaint, so the marker is the cheap way to refuse a silently half-grey image.
_JPEG_FAMILY_PREFIXES = ("1.2.840.10008.1.2.4.5", "1.2.840.10008.1.2.4.7", "1.2.840.10008.1.2.4.8",
                         "1.2.840.10008.1.2.4.9", "1.2.840.10008.1.2.4.20")
_END_OF_CODESTREAM = b"\xff\xd9"

# The SIGMOID inverse is unbounded at 0 and 1; clamp to keep pasted-back values finite.
_SIGMOID_EPS = 1e-6
# Above this many distinct integer values the histogram percentile would allocate too much; use np.percentile.
_MAX_HISTOGRAM_SPAN = 1 << 24


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
    series_instance_uid: str | None = None
    bits_allocated: int = 16
    pixel_representation: int = 0
    voi_lut_explanations: tuple[str | None, ...] = ()
    patient_orientation: tuple[str, ...] = ()  # PatientOrientation (row, column directions), e.g. ('P', 'L')


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


def read_dicom(path: str | PathLike[str], *, read_pixels: bool = True) -> DicomImage:
    """Read one greyscale DICOM image.

    With ``read_pixels=False`` only the header is parsed (pydicom's ``stop_before_pixels``); ``pixels`` and
    ``padding_mask`` are then empty (0, 0) arrays. Raises DicomError for anything that is not a single-frame
    greyscale image that can be decoded correctly.
    """
    path_str = os.fspath(path)
    ds = _read_dataset(path_str, stop_before_pixels=not read_pixels)
    try:
        _check_is_greyscale_image(path_str, ds)
        inverted = _is_inverted(ds)
        value_range = _output_range(ds)
        meta = _build_meta(path_str, ds, inverted, value_range)
        voi_lut_source = _voi_lut_source(ds)
    except DicomError:
        raise
    except Exception as exc:  # pydicom raises many types for malformed values; the user needs one
        raise DicomError(path_str, f"malformed DICOM header ({type(exc).__name__}: {exc})") from exc

    if not read_pixels:
        empty = np.empty((0, 0), dtype=np.int32)
        return DicomImage(empty, meta, inverted, np.zeros((0, 0), dtype=bool), value_range, voi_lut_source)

    stored = _decode_stored(path_str, ds, meta)
    try:
        padding_mask = _padding_mask(ds, stored)
        pixels = _modality_transform(ds, stored)
    except Exception as exc:
        raise DicomError(path_str, f"cannot apply the modality LUT ({type(exc).__name__}: {exc})") from exc
    if inverted:
        axis = value_range[0] + value_range[1]
        if pixels.dtype == np.int32:
            np.subtract(np.int32(axis), pixels, out=pixels)
        else:
            np.subtract(np.float32(axis), pixels, out=pixels)
    return DicomImage(pixels, meta, inverted, padding_mask, value_range, voi_lut_source)


def read_dicom_meta(path: str | PathLike[str]) -> DicomMeta:
    """Header only, fast: the metadata of :func:`read_dicom` without decoding pixels."""
    return read_dicom(path, read_pixels=False).meta


def _read_dataset(path: str, *, stop_before_pixels: bool) -> Dataset:
    if not os.path.exists(path):
        raise DicomError(path, "file not found")
    if os.path.isdir(path):
        raise DicomError(path, "is a folder, not a DICOM file")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
        except InvalidDicomError as exc:
            raise DicomError(path, "not a DICOM file (no 'DICM' marker after the 128-byte preamble)") from exc
        except (EOFError, OSError) as exc:
            raise DicomError(path, f"cannot read the file ({type(exc).__name__}: {exc})") from exc
        except Exception as exc:
            raise DicomError(path, f"not a readable DICOM file ({type(exc).__name__}: {exc})") from exc
    for record in caught:
        text = str(record.message)
        # pydicom drops an encapsulated Pixel Data element cut by the end of the file and only warns.
        if "End of file reached" in text:
            raise DicomError(path, "file is truncated (end of file reached inside an element: Pixel Data)")
        warnings.warn_explicit(record.message, record.category, record.filename, record.lineno)
    return ds


def _check_is_greyscale_image(path: str, ds: Dataset) -> None:
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        raise DicomError(path, "float pixel data is not supported; LINOP reads integer radiographs")
    if "Rows" not in ds or "Columns" not in ds:
        sop_class = ds.get("SOPClassUID")
        if sop_class is None:
            raise DicomError(path, "no image in this file (no SOP Class, Rows or Columns): damaged or truncated")
        if "Image Storage" in UID(str(sop_class)).name:  # an image object whose header stops early
            raise DicomError(path, f"header ends before Rows/Columns ({_sop_class_name(ds)}): file truncated")
        raise DicomError(path, f"no image in this file ({_sop_class_name(ds)} has no Rows/Columns or pixels)")
    rows, cols = int(ds.Rows or 0), int(ds.Columns or 0)
    if rows == 0 or cols == 0:
        raise DicomError(path, f"zero-size image (Rows {rows}, Columns {cols})")
    frames = _int_or_none(ds.get("NumberOfFrames")) or 1
    if frames > 1:
        raise DicomError(path, f"multi-frame image ({frames} frames); LINOP reads single-frame radiographs")
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples != 1 or photometric not in GREYSCALE:
        raise DicomError(
            path,
            f"colour image (Photometric Interpretation {photometric or 'missing'}, {samples} samples per"
            " pixel); LINOP reads greyscale MONOCHROME1/MONOCHROME2 radiographs only",
        )
    if "BitsStored" not in ds or "BitsAllocated" not in ds:
        raise DicomError(path, "Bits Stored / Bits Allocated missing; the pixel data cannot be interpreted")


def _sop_class_name(ds: Dataset) -> str:
    sop_class = ds.get("SOPClassUID")
    modality = ds.get("Modality")
    name = UID(str(sop_class)).name if sop_class else "unknown SOP class"
    return f"{name}, modality {modality}" if modality else name


def _is_inverted(ds: Dataset) -> bool:
    photometric = str(ds.PhotometricInterpretation).strip().upper()
    shape = str(ds.get("PresentationLUTShape", "") or "").strip().upper()
    return photometric == "MONOCHROME1" or shape == "INVERSE"


def _stored_range(ds: Dataset) -> tuple[int, int]:
    bits = int(ds.BitsStored)
    if int(ds.get("PixelRepresentation", 0) or 0) == 1:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _rescale(ds: Dataset) -> tuple[float, float] | None:
    """(slope, intercept), or None for the identity or when a Modality LUT Sequence takes precedence."""
    if ds.get("ModalityLUTSequence"):
        return None
    slope = ds.get("RescaleSlope")
    intercept = ds.get("RescaleIntercept")
    slope_f = 1.0 if slope is None or slope == "" else float(slope)
    intercept_f = 0.0 if intercept is None or intercept == "" else float(intercept)
    if slope_f == 1.0 and intercept_f == 0.0:
        return None
    return slope_f, intercept_f


def _output_range(ds: Dataset) -> tuple[float, float]:
    """The representable range after the modality LUT (PS3.3 C.11.1)."""
    if ds.get("ModalityLUTSequence"):
        depth = int(ds.ModalityLUTSequence[0].LUTDescriptor[2])
        return 0.0, float((1 << depth) - 1)
    lo, hi = _stored_range(ds)
    rescale = _rescale(ds)
    if rescale is None:
        return float(lo), float(hi)
    slope, intercept = rescale
    a, b = lo * slope + intercept, hi * slope + intercept
    return (min(a, b), max(a, b))


def _integer_output(ds: Dataset) -> bool:
    """True if the modality output is integer and lo, hi and lo + hi (the inversion axis) fit in int32."""
    lo, hi = _output_range(ds)
    rescale = _rescale(ds)
    integral = rescale is None or all(float(v).is_integer() for v in rescale)
    return integral and lo >= -(2**30) and hi < 2**30


def _to_output_units(
    ds: Dataset, stored_value: float, inverted: bool, value_range: tuple[float, float]
) -> float:
    if ds.get("ModalityLUTSequence"):
        value = float(apply_modality_lut(np.array([int(stored_value)], dtype=np.int64), ds)[0])
    else:
        rescale = _rescale(ds)
        value = float(stored_value) if rescale is None else stored_value * rescale[0] + rescale[1]
    return value_range[0] + value_range[1] - value if inverted else value


def _build_meta(path: str, ds: Dataset, inverted: bool, value_range: tuple[float, float]) -> DicomMeta:
    centers = [_float_or_none(v) for v in _as_list(ds.get("WindowCenter"))]
    widths = [_float_or_none(v) for v in _as_list(ds.get("WindowWidth"))]
    explanations = _as_list(ds.get("WindowCenterWidthExplanation"))
    axis = value_range[0] + value_range[1]
    windows: list[VoiWindow] = []
    for i, (center, width) in enumerate(zip(centers, widths, strict=False)):
        if center is None or width is None or not math.isfinite(center) or not (width > 0):
            continue  # an unusable pair (empty, NaN or non-positive width) is not a window
        explanation = _str_or_none(explanations[i]) if i < len(explanations) else None
        windows.append(VoiWindow(axis - center if inverted else center, width, explanation))

    function = _str_or_none(ds.get("VOILUTFunction")) or "LINEAR"
    padding = ds.get("PixelPaddingValue")
    padding_value = None if padding is None else _to_output_units(ds, float(padding), inverted, value_range)
    voi_luts = ds.get("VOILUTSequence") or []
    file_meta = getattr(ds, "file_meta", None)
    transfer_syntax = str(file_meta.get("TransferSyntaxUID", "")) if file_meta is not None else ""

    return DicomMeta(
        path=path,
        sop_instance_uid=_str_or_none(ds.get("SOPInstanceUID")),
        study_instance_uid=_str_or_none(ds.get("StudyInstanceUID")),
        laterality=_laterality(ds),
        view_position=_str_or_none(ds.get("ViewPosition")),
        manufacturer=_str_or_none(ds.get("Manufacturer")),
        manufacturer_model=_str_or_none(ds.get("ManufacturerModelName")),
        modality=_str_or_none(ds.get("Modality")),
        photometric_interpretation=str(ds.PhotometricInterpretation).strip(),
        presentation_lut_shape=_str_or_none(ds.get("PresentationLUTShape")),
        bits_stored=int(ds.BitsStored),
        pixel_spacing_mm=_pixel_spacing(ds),
        windows=tuple(windows),
        voi_lut_function=function.upper(),
        has_voi_lut_sequence=bool(voi_luts),
        padding_value=padding_value,
        presentation_intent_type=_str_or_none(ds.get("PresentationIntentType")),
        transfer_syntax_uid=transfer_syntax,
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        sop_class_uid=_str_or_none(ds.get("SOPClassUID")),
        series_instance_uid=_str_or_none(ds.get("SeriesInstanceUID")),
        bits_allocated=int(ds.BitsAllocated),
        pixel_representation=int(ds.get("PixelRepresentation", 0) or 0),
        voi_lut_explanations=tuple(_str_or_none(item.get("LUTExplanation")) for item in voi_luts),
        patient_orientation=tuple(str(v).strip() for v in _as_list(ds.get("PatientOrientation")) if str(v).strip()),
    )


def _voi_lut_source(ds: Dataset) -> Dataset | None:
    """A minimal dataset with the VOI LUT Sequence, enough for pydicom's apply_voi (OW needs endianness)."""
    if not ds.get("VOILUTSequence"):
        return None
    source = Dataset()
    source.VOILUTSequence = ds.VOILUTSequence
    source.file_meta = FileMetaDataset()
    file_meta = getattr(ds, "file_meta", None)
    syntax = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    source.file_meta.TransferSyntaxUID = syntax or ExplicitVRLittleEndian
    return source


def _laterality(ds: Dataset) -> str | None:
    for keyword in ("ImageLaterality", "Laterality"):
        value = (_str_or_none(ds.get(keyword)) or "").upper()
        if value in ("L", "R"):
            return value
    return None


def _pixel_spacing(ds: Dataset) -> tuple[float, float] | None:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        values = [_float_or_none(v) for v in _as_list(ds.get(keyword))]
        if len(values) >= 2 and all(v is not None and math.isfinite(v) and v > 0 for v in values[:2]):
            return float(values[0]), float(values[1])  # type: ignore[arg-type]
    return None


def _decode_stored(path: str, ds: Dataset, meta: DicomMeta) -> np.ndarray:
    if "PixelData" not in ds:
        raise DicomError(path, f"no pixel data in this file ({_sop_class_name(ds)})")
    syntax = UID(meta.transfer_syntax_uid) if meta.transfer_syntax_uid else None
    if syntax is None:
        raise DicomError(path, "no Transfer Syntax UID in the file meta information; cannot decode the pixels")
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as exc:
        raise DicomError(
            path,
            f"pixel data uses transfer syntax {syntax.name} ({syntax}), which no pydicom decoder supports;"
            " convert the file to an uncompressed or JPEG 2000 transfer syntax",
        ) from exc
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies)
        raise DicomError(
            path, f"pixel data is compressed with {syntax.name} but no decoder plugin is installed"
            f" ({missing or 'none available'}); install pylibjpeg, pylibjpeg-libjpeg and pylibjpeg-openjpeg"
        )
    if syntax.is_encapsulated:
        _check_codestream_complete(path, ds, syntax)
    else:
        _check_native_length(path, ds)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # excess padding after valid pixel data is harmless
            stored = ds.pixel_array
    except Exception as exc:
        reason = " ".join(str(exc).split())
        raise DicomError(path, f"pixel data cannot be decoded ({syntax.name}): {reason}") from exc
    if stored.shape != (meta.rows, meta.columns):
        raise DicomError(
            path,
            f"decoded pixel array has shape {stored.shape} but the header says {meta.rows}x{meta.columns}",
        )
    return stored


def _check_native_length(path: str, ds: Dataset) -> None:
    bits = int(ds.BitsAllocated)
    expected = (int(ds.Rows) * int(ds.Columns) * bits + 7) // 8
    actual = len(ds.PixelData)
    if actual < expected:
        raise DicomError(path, f"pixel data is truncated: {actual} of {expected} bytes present")


def _check_codestream_complete(path: str, ds: Dataset, syntax: UID) -> None:
    if not str(syntax).startswith(_JPEG_FAMILY_PREFIXES):
        return  # RLE: pydicom's decoder checks the decoded segment lengths itself
    from pydicom.encaps import generate_frames

    try:
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    except Exception as exc:
        raise DicomError(path, f"encapsulated pixel data is malformed ({type(exc).__name__}: {exc})") from exc
    # Encoders pad fragments to even length with 0x00 or 0xFF. FF D9 cannot occur inside the entropy-coded
    # data of these codecs (byte stuffing), so finding it among the last bytes means the stream is complete.
    if _END_OF_CODESTREAM not in frame[-16:]:
        raise DicomError(
            path, f"compressed pixel data is truncated ({syntax.name} code stream has no end marker)"
        )


def _padding_mask(ds: Dataset, stored: np.ndarray) -> np.ndarray:
    padding = ds.get("PixelPaddingValue")
    if padding is None:
        return np.zeros(stored.shape, dtype=bool)
    limit = ds.get("PixelPaddingRangeLimit")
    if limit is None:
        return stored == int(padding)
    lo, hi = sorted((int(padding), int(limit)))
    return (stored >= lo) & (stored <= hi)


def _modality_transform(ds: Dataset, stored: np.ndarray) -> np.ndarray:
    if ds.get("ModalityLUTSequence"):
        return np.asarray(apply_modality_lut(stored, ds), dtype=np.int32)
    slope, intercept = _rescale(ds) or (1.0, 0.0)
    if _integer_output(ds):
        pixels = stored.astype(np.int32)
        if slope != 1.0:
            pixels *= np.int32(slope)
        if intercept != 0.0:
            pixels += np.int32(intercept)
        return pixels
    # Non-integer rescale, or 32-bit data that int32 cannot hold with its inversion axis.
    pixels = stored.astype(np.float32)
    pixels *= np.float32(slope)
    pixels += np.float32(intercept)
    return pixels


# ----------------------------------------------------------------------------------------------- VOI


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


def percentile_window(image: DicomImage, percentiles: tuple[float, float] = (0.5, 99.5)) -> VoiWindow:
    """A LINEAR window whose ends sit on the given percentiles of the non-padding pixels."""
    p_lo, p_hi = percentiles
    if not 0.0 <= p_lo < p_hi <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
    values = image.pixels[~image.padding_mask] if image.padding_mask.any() else image.pixels.ravel()
    if values.size == 0:
        raise DicomError(image.meta.path, "every pixel is padding; no display window can be computed")
    lo, hi = _percentiles(values, (p_lo, p_hi))
    # LINEAR puts 0 at c - 0.5 - (w-1)/2 and 1 at c - 0.5 + (w-1)/2: solve for lo and hi.
    width = max(hi - lo + 1.0, 1.0)
    center = lo + (width - 1.0) / 2.0 + 0.5
    return VoiWindow(center, width, f"percentile {p_lo:g}-{p_hi:g} %")


def _percentiles(values: np.ndarray, qs: tuple[float, float]) -> tuple[float, float]:
    """Exact 'inverted CDF' percentiles; a histogram for integer pixels (much faster than a sort)."""
    if np.issubdtype(values.dtype, np.integer):
        vmin, vmax = int(values.min()), int(values.max())
        if vmax - vmin < _MAX_HISTOGRAM_SPAN:
            shifted = values - np.int32(vmin) if vmin != 0 else values
            counts = np.bincount(shifted.ravel(), minlength=vmax - vmin + 1)
            cdf = np.cumsum(counts)
            targets = np.array(qs, dtype=np.float64) / 100.0 * values.size
            idx = np.searchsorted(cdf, targets, side="left")
            idx = np.clip(idx, 0, len(cdf) - 1)
            return float(idx[0] + vmin), float(idx[1] + vmin)
    lo, hi = np.percentile(values, qs, method="inverted_cdf")
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


# ----------------------------------------------------------------------------------------------- helpers


def _as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, MultiValue | list | tuple):
        return list(value)
    return [value]


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _float_or_none(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int_or_none(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


__all__: Sequence[str] = (
    "VOI_FUNCTIONS",
    "DicomImage",
    "DicomMeta",
    "VoiWindow",
    "apply_window",
    "choose_window",
    "invert_window",
    "percentile_window",
    "read_dicom",
    "read_dicom_meta",
    "to_unit",
)
