"""DICOM file -> :class:`DicomImage`: decoding, the modality LUT and the MONOCHROME2 convention.

See the package docstring for the pipeline. Every problem raises :class:`DicomError` with one line.
"""

from __future__ import annotations

import math
import os
import warnings
from os import PathLike
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, get_decoder
from pydicom.uid import UID, ExplicitVRLittleEndian

from linop_core.dicom.image import GREYSCALE, DicomImage, DicomMeta, VoiWindow
from linop_core.errors import DicomError

# JPEG, JPEG-LS and JPEG 2000 code streams all end with the marker FF D9 (EOI / EOC). libjpeg decodes a
# cut stream without complaint, so the marker is the cheap way to refuse a silently half-grey image.
_JPEG_FAMILY_PREFIXES = ("1.2.840.10008.1.2.4.5", "1.2.840.10008.1.2.4.7", "1.2.840.10008.1.2.4.8",
                         "1.2.840.10008.1.2.4.9", "1.2.840.10008.1.2.4.20")
_END_OF_CODESTREAM = b"\xff\xd9"


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
        body_part_examined=_str_or_none(ds.get("BodyPartExamined")),
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


# ----------------------------------------------------------------------------------------------- header values


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
