"""Synthetic sets: HDF5 writer (resumable, atomic), reader, PyTorch dataset, merge, COCO/CSV export, manifest.

See :mod:`linop_core.synthset.store` for the file layout and :mod:`linop_core.synthset.writer` for how
commits survive a crash.
"""

from typing import Any

from linop_core.sources import SourceDicom, SourceInfo
from linop_core.synthset.coco import CocoExport, export_coco, synthetic_image_id
from linop_core.synthset.manifest import build_manifest, manifest_path, verify_manifest, write_manifest
from linop_core.synthset.reader import SampleRecord, SynthSet
from linop_core.synthset.records import (
    DECISION_CODES,
    META_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    Review,
    SynthSample,
    check_sample,
)
from linop_core.synthset.writer import SynthSetWriter, merge_sets, partial_path, spool_path

__all__ = [
    "DECISION_CODES",
    "META_COLUMNS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "CocoExport",
    "Review",
    "SampleRecord",
    "SourceDicom",
    "SourceInfo",
    "SynthSample",
    "SynthSet",
    "SynthSetDataset",
    "SynthSetWriter",
    "build_manifest",
    "check_sample",
    "collate_samples",
    "export_coco",
    "manifest_path",
    "merge_sets",
    "partial_path",
    "spool_path",
    "synthetic_image_id",
    "verify_manifest",
    "write_manifest",
]


def __getattr__(name: str) -> Any:
    # the PyTorch dataset is imported on first use, so writing and reading sets does not load torch
    if name in ("SynthSetDataset", "collate_samples"):
        from linop_core.synthset import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
