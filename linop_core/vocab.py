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
