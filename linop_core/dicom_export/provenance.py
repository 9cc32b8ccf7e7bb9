"""What a synthetic DICOM says about itself: the marks viewers show, and the provenance in standard attributes.

Every attribute used here is listed in docs/dicom-export.md. Everything comes from one row of the set's
``/meta`` table (pseudonymous ids, engine, checkpoint, seed, review); nothing is read from a source DICOM.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from linop_core.synthset.records import DECISION_NAMES

MARK = "SYNTHETIC"
MANUFACTURER = "LINOP Studio"
PATIENT_NAME = "SYNTHETIC^LINOP"
DEIDENTIFICATION_METHOD = "LINOP synthetic: no source patient/study attribute kept"
# ApprovalStatus (300E,0002) for each review decision of the set
APPROVAL_STATUS = {"approved": "APPROVED", "rejected": "REJECTED", "pending": "UNAPPROVED"}
_TASK_TEXT = {
    "inpaint": "a {labels} was generated inside the region of the DICOM SEG (in-painting)",
    "outpaint": "everything outside the kept finding boxes was generated (out-painting)",
}


@dataclass(frozen=True)
class Provenance:
    """The facts of one sample that the DICOM objects record."""

    index: int
    task: str
    engine: str
    model_name: str
    checkpoint_sha256: str
    seed: int
    decision: str
    reviewer: str
    reviewed_utc: str
    box_labels: tuple[str, ...]
    set_export_id: str
    app_version: str

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any], set_export_id: str, app_version: str) -> Provenance:
        return cls(
            index=int(meta["index"]),
            task=str(meta["task"]),
            engine=str(meta["engine"]),
            model_name=str(meta["model_name"]),
            checkpoint_sha256=str(meta["checkpoint_sha256"]),
            seed=int(meta["seed"]),
            decision=DECISION_NAMES[int(meta["decision"])],
            reviewer=str(meta["reviewer"]),
            reviewed_utc=str(meta["reviewed_utc"]),
            box_labels=tuple(json.loads(meta["box_labels"])),
            set_export_id=set_export_id,
            app_version=app_version,
        )

    def key_values(self) -> str:
        """``key=value`` pairs, the machine-readable part of the comments and descriptions."""
        pairs = {
            "task": self.task,
            "engine": self.engine,
            "model": self.model_name or "-",
            "checkpoint_sha256": self.checkpoint_sha256 or "-",
            "seed": self.seed,
            "sample": self.index,
            "set": self.set_export_id,
            "review": self.decision,
            "reviewer": self.reviewer or "-",
        }
        return " ".join(f"{k}={v}" for k, v in pairs.items())

    def what(self) -> str:
        labels = " / ".join(dict.fromkeys(self.box_labels)) or "lesion"
        return _TASK_TEXT.get(self.task, "part of the image was generated").format(labels=labels)


def series_description(prov: Provenance, kind: str) -> str:
    """LO (64 characters): the first thing a viewer's series list shows."""
    text = f"{MARK} LINOP {prov.task} ({prov.engine})" if kind == "image" else f"{MARK} LINOP generated region"
    return text[:64]


def image_comments(prov: Provenance) -> str:
    return (
        f"{MARK} IMAGE made by {MANUFACTURER} {prov.app_version}: not a real acquisition, not for diagnosis; "
        f"{prov.what()}. {prov.key_values()}"
    )


def derivation_description(prov: Provenance, source_referenced: bool, source_photometric: str) -> str:
    """ST (1024 characters): how the pixels relate to the source image."""
    parts = [
        f"{MARK}: {prov.what()} by {MANUFACTURER} ({prov.engine}); every pixel outside the generated region "
        "equals the source image bit for bit",
    ]
    if source_photometric == "MONOCHROME1":
        parts.append("source MONOCHROME1 written inverted as MONOCHROME2 (same display)")
    if not source_referenced:
        parts.append("source SOP Instance UID unknown (set written before LINOP recorded it), so no Source Image "
                     "Sequence")  # fmt: skip
    return "; ".join(parts)[:1024]


def contributing_equipment(prov: Provenance, when: datetime) -> hd.ContributingEquipment:
    model = f"{prov.engine} {prov.model_name}".strip()
    return hd.ContributingEquipment(
        manufacturer=MANUFACTURER,
        purpose_of_reference=codes.DCM.SynthesizingEquipment,
        manufacturer_model_name=model[:64],
        software_versions=prov.app_version,
        contribution_datetime=when,
        contribution_description=f"{prov.what()}; {prov.key_values()}"[:1024],
    )


def add_review(ds: Dataset, prov: Provenance) -> None:
    """The Approval attributes (PS3.3 C.8.8.16): the reviewer's decision on the synthetic image."""
    ds.ApprovalStatus = APPROVAL_STATUS[prov.decision]
    if prov.decision == "pending":
        return
    ds.ReviewerName = prov.reviewer
    if prov.reviewed_utc:
        try:
            when = datetime.fromisoformat(prov.reviewed_utc)
        except ValueError:
            return  # a free-text time stays in the set; the DICOM only takes a valid one
        ds.ReviewDate = when.strftime("%Y%m%d")
        ds.ReviewTime = when.strftime("%H%M%S")


def algorithm_identification(prov: Provenance) -> hd.AlgorithmIdentificationSequence:
    family = codes.DCM.ArtificialIntelligence if prov.engine == "mat" else codes.DCM.ImageProcessing
    parameters = {"seed": str(prov.seed), "task": prov.task, "set": prov.set_export_id, "sample": str(prov.index)}
    if prov.model_name:
        parameters["model"] = prov.model_name
    return hd.AlgorithmIdentificationSequence(
        name=f"LINOP {prov.engine}"[:64],
        family=family,
        version=(prov.checkpoint_sha256 or prov.app_version)[:64],
        source=MANUFACTURER,
        parameters=parameters,
    )


def segment_description(prov: Provenance) -> hd.seg.SegmentDescription:
    if prov.task == "inpaint":
        category = codes.SCT.MorphologicallyAbnormalStructure
        kind = codes.SCT.Mass if set(prov.box_labels) <= {"Mass"} else codes.SCT.MorphologicallyAbnormalStructure
        label = f"generated {' / '.join(dict.fromkeys(prov.box_labels)) or 'lesion'}"
    else:
        category = codes.SCT.Tissue
        kind = codes.SCT.Tissue
        label = "generated anatomy"
    return hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=label[:64],
        segmented_property_category=category,
        segmented_property_type=kind,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm_identification(prov),
    )
