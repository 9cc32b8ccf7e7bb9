"""One synthetic sample as a DICOM Secondary Capture image (highdicom ``SCImage``).

Why Secondary Capture and not the source's SOP class: the issue asks for Image Type DERIVED\\SECONDARY, which
the DX and Digital Mammography IODs forbid (their Image Type value 2 must be PRIMARY), while the SC IOD was
made for derived images and has Conversion Type ``SYN`` (synthetic image). Modality stays the source's (MG,
DX, CR), so viewers and PACS worklists file it with its kind. Geometry and display come from the set:
Pixel Spacing, (Image) Laterality, View Position, Patient Orientation, MONOCHROME2 with the source's bit
depth, and the VOI window the sample was generated with.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.valuerep import DS

from linop_core.dicom_export import provenance as pv
from linop_core.dicom_export.pixels import encode_pixels
from linop_core.dicom_export.run import ExportRun

IMAGE_SERIES_NUMBER = 9001
SEG_SERIES_NUMBER = 9002
VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
# Modality for sets written before the source's was recorded: VinDr-Mammo is MG; anything else is unknown
FALLBACK_MODALITY = {"mammo": "MG"}
_ORIENTATIONS = set("APLRHF")


@dataclass(frozen=True)
class ImageIds:
    """UIDs and numbers of one synthetic image and its SEG (all from the run, see :class:`ExportRun`)."""

    study_uid: str
    image_series_uid: str
    seg_series_uid: str
    image_uid: str
    seg_uid: str
    frame_of_reference_uid: str
    patient_id: str
    instance_number: int

    @classmethod
    def for_sample(cls, run: ExportRun, index: int, source_study_id: str) -> ImageIds:
        return cls(
            study_uid=run.study_uid(source_study_id),
            image_series_uid=run.series_uid("image", source_study_id),
            seg_series_uid=run.series_uid("seg", source_study_id),
            image_uid=run.instance_uid("image", index),
            seg_uid=run.instance_uid("seg", index),
            frame_of_reference_uid=run.frame_of_reference_uid(index),
            patient_id=run.pseudo_patient_id(source_study_id),
            instance_number=int(index) + 1,
        )


def modality_of(meta: Mapping[str, Any]) -> str:
    return str(meta["modality"]) or FALLBACK_MODALITY.get(str(meta["dataset"]), "OT")


def _orientation(meta: Mapping[str, Any]) -> tuple[str, str] | None:
    parts = tuple(str(meta["patient_orientation"]).split("\\"))
    if len(parts) == 2 and all(p and set(p) <= _ORIENTATIONS for p in parts):
        return parts  # type: ignore[return-value]
    return None


def synthetic_image(
    pixels: np.ndarray, meta: Mapping[str, Any], ids: ImageIds, run: ExportRun, prov: pv.Provenance
) -> Dataset:
    """The SC image of one sample: ``pixels`` (H, W) are the set's image, ``meta`` its ``/meta`` row."""
    encoded = encode_pixels(pixels, int(meta["bits_stored"]), tuple(meta["value_range"]))
    # the set keeps spacing as float32: its shortest decimal (0.34, not 0.3400000035762787) is what the source said
    spacing = tuple(float(str(np.float32(v))) for v in meta["pixel_spacing_mm"])
    laterality = str(meta["laterality"]) if meta["laterality"] in ("L", "R") else None
    orientation = _orientation(meta)
    created = run.created
    image = hd.sc.SCImage(
        pixel_array=encoded.stored,
        photometric_interpretation="MONOCHROME2",
        bits_allocated=encoded.bits_allocated,
        coordinate_system="PATIENT",
        study_instance_uid=ids.study_uid,
        series_instance_uid=ids.image_series_uid,
        series_number=IMAGE_SERIES_NUMBER,
        sop_instance_uid=ids.image_uid,
        instance_number=ids.instance_number,
        manufacturer=pv.MANUFACTURER,
        patient_id=ids.patient_id,
        patient_name=pv.PATIENT_NAME,
        study_id="",
        accession_number="",
        study_date=created.date(),
        study_time=created.time(),
        pixel_spacing=spacing if all(math.isfinite(v) and v > 0 for v in spacing) else None,
        laterality=laterality,
        # highdicom wants one for the PATIENT coordinate system but takes single letters only, not the compound
        # values (e.g. "FR" on an MLO view) that are valid DICOM: the real one is set below
        patient_orientation=("P", "F"),
        contributing_equipment=[pv.contributing_equipment(prov, created)],
        series_description=pv.series_description(prov, "image"),
        content_qualification="RESEARCH",
        manufacturer_model_name=pv.MANUFACTURER,
        software_versions=prov.app_version,
        series_date=created.date(),
        series_time=created.time(),
    )
    image.PatientOrientation = list(orientation) if orientation else ""  # type 2: empty = unknown
    image.Modality = modality_of(meta)
    image.ConversionType = "SYN"
    image.ImageType = ["DERIVED", "SECONDARY"]
    image.BitsStored = encoded.bits_stored
    image.HighBit = encoded.bits_stored - 1
    image.RescaleIntercept = DS(encoded.rescale_intercept)
    image.RescaleSlope = DS(1)
    image.RescaleType = "US"
    _add_voi(image, meta)
    if laterality is not None:
        image.ImageLaterality = laterality
    if meta["view"]:
        image.ViewPosition = str(meta["view"])[:16]
    image.BurnedInAnnotation = "NO"
    image.PatientIdentityRemoved = "YES"
    image.DeidentificationMethod = pv.DEIDENTIFICATION_METHOD
    image.ImageComments = pv.image_comments(prov)
    source_uid, source_class = str(meta["source_sop_instance_uid"]), str(meta["source_sop_class_uid"])
    referenced = bool(source_uid and source_class)
    image.DerivationDescription = pv.derivation_description(prov, referenced, str(meta["source_photometric"]))
    if referenced:
        image.SourceImageSequence = [_source_reference(source_uid, source_class)]
    # a 2-D projection has no patient coordinates; the frame of reference ties the image and its SEG together
    image.FrameOfReferenceUID = ids.frame_of_reference_uid
    image.PositionReferenceIndicator = ""
    pv.add_review(image, prov)
    return image


def _add_voi(image: Dataset, meta: Mapping[str, Any]) -> None:
    center, width = float(meta["voi_center"]), float(meta["voi_width"])
    if not (math.isfinite(center) and math.isfinite(width) and width > 0):
        return
    image.WindowCenter = DS(center, auto_format=True)
    image.WindowWidth = DS(width, auto_format=True)
    explanation = str(meta["voi_explanation"]) or "LINOP generation window"
    image.WindowCenterWidthExplanation = explanation[:64]
    function = str(meta["window_function"]).upper()
    if function in VOI_FUNCTIONS:
        image.VOILUTFunction = function


def _source_reference(sop_uid: str, sop_class_uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class_uid
    item.ReferencedSOPInstanceUID = sop_uid
    purpose = hd.sr.CodedConcept.from_code(codes.DCM.SourceImageForImageProcessingOperation)
    item.PurposeOfReferenceCodeSequence = [purpose]
    return item
