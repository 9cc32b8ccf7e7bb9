"""VinDr-Mammo and VinDr-CXR readers: CSVs -> :class:`ImageRecord` lists, box fusion, the CXR 4-class task.

``open_dataset(root)`` detects the layout. Malformed CSV rows are reported as ``file:line: reason`` in
``dataset.report`` and skipped (one warning per dataset), or raise :class:`~linop_core.errors.DataError`
with ``strict=True``. Images listed but missing on disk are counted in ``report.missing_files``.
"""

from __future__ import annotations

from pathlib import Path

from linop_core.errors import DataError
from linop_core.vindr.cxr import (
    ALL_LABELS,
    FOUR_CLASS_PRIORITY,
    FOUR_CLASSES,
    GLOBAL_LABELS,
    LOCAL_LABELS,
    CxrDataset,
    FourClassPolicy,
    four_class_index,
)
from linop_core.vindr.fusion import FusionConfig, fuse_reader_boxes
from linop_core.vindr.mammo import MAMMO_CATEGORIES, MammoDataset, parse_categories
from linop_core.vindr.records import Box, Finding, ImageRecord, ReadReport
from linop_core.vocab import Task

__all__ = [
    "ALL_LABELS",
    "FOUR_CLASSES",
    "FOUR_CLASS_PRIORITY",
    "GLOBAL_LABELS",
    "LOCAL_LABELS",
    "MAMMO_CATEGORIES",
    "Box",
    "CxrDataset",
    "Finding",
    "FourClassPolicy",
    "FusionConfig",
    "ImageRecord",
    "MammoDataset",
    "ReadReport",
    "four_class_index",
    "fuse_reader_boxes",
    "open_dataset",
    "parse_categories",
    "root_task",
]


def open_dataset(root: str | Path, *, strict: bool = False) -> MammoDataset | CxrDataset:
    """Open a VinDr-Mammo or VinDr-CXR root, whichever layout its CSV files show."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "not a folder; give the root of a VinDr-Mammo or VinDr-CXR download")
    if MammoDataset.is_root(root):
        return MammoDataset.open(root, strict=strict)
    if CxrDataset.is_root(root):
        return CxrDataset.open(root, strict=strict)
    raise DataError(
        root,
        "no VinDr CSV files found: expected breast-level_annotations.csv / finding_annotations.csv "
        "(VinDr-Mammo), annotations/image_labels_train.csv etc. (VinDr-CXR) or a Kaggle train.csv",
    )


def root_task(root: str | Path) -> Task:
    """The synthesis a VinDr root's lesions get, from its layout alone (no CSV is parsed): VinDr-Mammo masses
    are inpainted, VinDr-CXR findings are outpainted around."""
    return Task.INPAINT if MammoDataset.is_root(Path(root)) else Task.OUTPAINT
