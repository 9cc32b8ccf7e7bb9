"""The words LINOP's modules share, as enums: what a synthesis does, what shape its hole has, what a reviewer
decided, and what kind of dataset an image comes from.

They are ``StrEnum``s, so a member equals its text (``Task.INPAINT == "inpaint"``): JSON files, HDF5 columns
and command-line choices keep the same strings they always had, and reading them back is ``Task(text)``.
"""

from __future__ import annotations

from enum import StrEnum


class Task(StrEnum):
    """Inpainting generates a lesion in a box; outpainting keeps the lesion boxes and regenerates the rest."""

    INPAINT = "inpaint"
    OUTPAINT = "outpaint"


class HoleKind(StrEnum):
    """The shape of the region a synthesis regenerates (inpainting) or keeps (outpainting)."""

    ELLIPSE = "ellipse"  # inscribed in the lesion box
    RECTANGLE = "rectangle"  # the lesion box itself
    BRUSH = "brush"  # a painted mask
    KEEP_BOXES = "keep-boxes"  # outpainting: the boxes (+ margin) are kept, everything else is generated


BOX_HOLES: tuple[HoleKind, ...] = (HoleKind.ELLIPSE, HoleKind.RECTANGLE)  # holes defined by a box alone


class Decision(StrEnum):
    """A reviewer's verdict on one candidate."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class DatasetKind(StrEnum):
    """Where images come from: a VinDr-Mammo root, a VinDr-CXR root, or a plain folder of DICOM files."""

    MAMMO = "mammo"
    CXR = "cxr"
    FOLDER = "folder"


def task_for_dataset(kind: DatasetKind | str) -> Task:
    """The synthesis a dataset's lesions get: masses are inpainted into mammograms, chest X-ray findings are
    kept and outpainted around. A plain folder has no task of its own (raises ValueError)."""
    kind = DatasetKind(kind)
    if kind is DatasetKind.MAMMO:
        return Task.INPAINT
    if kind is DatasetKind.CXR:
        return Task.OUTPAINT
    raise ValueError("a plain folder's task follows each image's modality, not the dataset")


CHEST_BODY_PARTS = ("CHEST", "THORAX", "LUNG")
CHEST_VIEWS = ("PA", "AP", "LL", "RL", "LAT", "LATERAL", "AP SUPINE")
PROJECTION_MODALITIES = ("CR", "DX", "DR")


def task_for_image(modality: str | None, body_part: str | None = None, view: str | None = None) -> Task | None:
    """The synthesis an image of a plain DICOM folder is for, from its header: a mammogram (Modality MG) gets
    masses inpainted; a chest radiograph (CR / DX with BodyPartExamined CHEST, or without one a chest view such as
    PA or AP) gets its findings outpainted around; anything else has no task (None)."""
    modality = (modality or "").strip().upper()
    if modality == "MG":
        return Task.INPAINT
    if modality in PROJECTION_MODALITIES:
        part = (body_part or "").strip().upper()
        if part:
            return Task.OUTPAINT if any(p in part for p in CHEST_BODY_PARTS) else None
        if (view or "").strip().upper() in CHEST_VIEWS:
            return Task.OUTPAINT
    return None
