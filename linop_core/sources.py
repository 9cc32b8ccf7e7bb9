"""Where a synthetic sample's pixels come from: a DICOM file on disk or an in-memory array, with the
pseudonymous dataset ids the set records (never a DICOM patient attribute)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from linop_core.dicom import DicomImage, read_dicom
from linop_core.vindr import ImageRecord


@dataclass(frozen=True)
class SourceDicom:
    """The source image as a DICOM instance: its UIDs (so a DICOM export can reference it) and pixel encoding.

    UIDs identify the instance, not the patient; no patient attribute is kept here either.
    """

    sop_instance_uid: str
    sop_class_uid: str
    modality: str
    photometric: str  # as stored in the source; the set's pixels are MONOCHROME2 whatever this is
    bits_stored: int
    value_range: tuple[float, float]  # representable range after the modality LUT, MONOCHROME2
    patient_orientation: tuple[str, ...] = ()

    @classmethod
    def from_image(cls, image: DicomImage) -> SourceDicom:
        meta = image.meta
        return cls(
            sop_instance_uid=meta.sop_instance_uid or "",
            sop_class_uid=meta.sop_class_uid or "",
            modality=meta.modality or "",
            photometric=meta.photometric_interpretation,
            bits_stored=int(meta.bits_stored),
            value_range=(float(image.value_range[0]), float(image.value_range[1])),
            patient_orientation=tuple(meta.patient_orientation),
        )


@dataclass(frozen=True)
class SourceInfo:
    """Where a sample's pixels came from, by dataset ids only (no DICOM patient attribute is ever read here)."""

    dataset: str  # "mammo" | "cxr" | another dataset name
    image_id: str
    study_id: str
    split: str  # "training" | "test" | ...
    laterality: str | None = None
    view: str | None = None
    pixel_spacing_mm: tuple[float, float] | None = None
    dicom: SourceDicom | None = None  # None for non-DICOM sources (the DICOM export then cannot reference them)


class ImageSource(Protocol):
    """What a synthesis starts from: pseudonymous ids for the set, and the pixels, loaded when needed."""

    @property
    def info(self) -> SourceInfo: ...

    @property
    def name(self) -> str: ...

    def load(self) -> DicomImage | np.ndarray: ...

    def info_with(self, image: DicomImage | np.ndarray) -> SourceInfo:
        """``info`` completed with what only the loaded image knows (its pixel spacing)."""
        ...


@dataclass(frozen=True)
class DicomSource:
    """A source image on disk, with its dataset ids (the pixel spacing is read from the file)."""

    path: Path
    dataset: str
    image_id: str
    study_id: str
    split: str
    laterality: str | None = None
    view: str | None = None

    @classmethod
    def from_record(cls, record: ImageRecord) -> DicomSource:
        return cls(record.path, record.dataset, record.image_id, record.study_id, record.split, record.laterality,
                   record.view)

    @property
    def name(self) -> str:
        return f"{self.dataset} image {self.image_id}"

    @property
    def info(self) -> SourceInfo:
        return SourceInfo(self.dataset, self.image_id, self.study_id, self.split, self.laterality, self.view)

    def load(self) -> DicomImage:
        return read_dicom(self.path)

    def info_with(self, image: DicomImage | np.ndarray) -> SourceInfo:
        if not isinstance(image, DicomImage):
            return self.info
        return replace(self.info, pixel_spacing_mm=image.meta.pixel_spacing_mm, dicom=SourceDicom.from_image(image))


@dataclass(frozen=True)
class ArraySource:
    """An in-memory source image (e.g. a rendered phantom): (H, W) native pixels and its ids."""

    pixels: np.ndarray = field(repr=False)
    info: SourceInfo

    @property
    def name(self) -> str:
        return f"{self.info.dataset} image {self.info.image_id}"

    def load(self) -> np.ndarray:
        return self.pixels

    def info_with(self, image: DicomImage | np.ndarray) -> SourceInfo:
        return self.info
