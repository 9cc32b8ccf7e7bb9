"""The study file: a blinded visual Turing test of synthetic lesions, as JSON (schema ``linop-study`` 1.0).

The file is the organiser's key, never shown to a reader. It records, for every case, a random opaque
``case_id``, the truth (real / synthetic), where the pixels come from (a synthetic set + sample index, or a
DICOM path relative to the VinDr root), the lesion box(es) and the display crop; plus the options, the seed,
and each set's SHA-256 and size so that a set that changed after the study was made is refused.

Layout::

    {"schema": "linop-study", "schema_version": "1.0", "study_uid": "...", "created_utc": "...",
     "app_version": "...", "task": "mammo" | "cxr", "root": "/abs/vindr/root",
     "sets": [{"path": "/abs/a.h5", "sha256": "...", "size_bytes": N, "n_samples": N}],
     "options": {...StudyOptions...},
     "selection": {...SelectionReport...},
     "cases": [{"case_id": "...", "truth": "real" | "synthetic",
                "source": {"kind": "set", "set": 0, "sample_index": 12}
                        | {"kind": "root", "path": "images/<study>/<image>.dicom", "size_bytes": N},
                "lesion_boxes": [[x0, y0, x1, y1], ...],   # the first is the case's lesion; all count as hits
                "lesion_labels": ["Mass", ...],
                "image_size": [H, W], "crop": [x0, y0, x1, y1],  # native pixels, half-open
                "matched_to": "<synthetic case_id>" | null}]}

Boxes and crops are in native image pixels, ``(x0, y0, x1, y1)``, half-open, as everywhere in LINOP.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any

from linop_core.errors import DataError
from linop_core.fileio import atomic_write_text

SCHEMA = "linop-study"
SCHEMA_VERSION = "1.0"

Box = tuple[float, float, float, float]
CropBox = tuple[int, int, int, int]


class Truth(StrEnum):
    """What a case really is (and what a reader may call it)."""

    REAL = "real"
    SYNTHETIC = "synthetic"


class DisplayMode(StrEnum):
    """``crop``: a square of ``crop_size`` native pixels holding the lesion; ``whole``: the whole image."""

    CROP = "crop"
    WHOLE = "whole"


class SourceKind(StrEnum):
    SET = "set"
    ROOT = "root"


@dataclass(frozen=True)
class StudyOptions:
    """How a study was drawn (recorded in the file; the same options and seed draw the same study)."""

    cases: int
    synthetic_share: float
    mode: DisplayMode
    crop_size: int
    seed: int
    decisions: tuple[str, ...]
    size_tolerance: float  # mammography: a real box's side may differ from the synthetic one's by this factor
    match_density: bool  # mammography: real and synthetic breasts must share the density class when both known


@dataclass(frozen=True)
class SetRef:
    """A synthetic set a study draws from, with the checksum it had when the study was made."""

    path: Path
    sha256: str
    size_bytes: int
    n_samples: int


@dataclass(frozen=True)
class CaseSource:
    """Where a case's pixels are: ``set`` + ``sample_index`` (synthetic) or ``path`` under the root (real)."""

    kind: SourceKind
    set: int | None = None
    sample_index: int | None = None
    path: str | None = None  # POSIX, relative to the study's root
    size_bytes: int | None = None


@dataclass(frozen=True)
class StudyCase:
    """One case of a study, answer included: never give this to a reader (see ``CaseView``)."""

    case_id: str
    truth: Truth
    source: CaseSource
    lesion_boxes: tuple[Box, ...]
    lesion_labels: tuple[str, ...]
    image_size: tuple[int, int]  # (H, W)
    crop: CropBox
    matched_to: str | None = None


@dataclass(frozen=True)
class Unmatched:
    """A synthetic case for which no real lesion could be found, and why."""

    target: str  # the synthetic case_id
    reason: str


@dataclass(frozen=True)
class SelectionReport:
    """What drawing the study found: counts the user must see, including every case that could not be matched."""

    eligible_synthetic: int
    synthetic: int
    real_requested: int
    real: int
    real_candidates: int
    excluded_real_sources: int  # real images left out because a synthetic case was made from them
    missing_real_files: int  # real lesions whose DICOM is not under the root
    unmatched: tuple[Unmatched, ...] = ()


@dataclass(frozen=True)
class Study:
    """A whole study file; :meth:`load` / :meth:`save` read and write it (atomically)."""

    study_uid: str
    created_utc: str
    app_version: str
    task: str  # "mammo" | "cxr"
    root: Path
    sets: tuple[SetRef, ...]
    options: StudyOptions
    selection: SelectionReport
    cases: tuple[StudyCase, ...]
    path: Path | None = field(default=None, compare=False)

    @cached_property
    def _by_id(self) -> dict[str, StudyCase]:
        return {case.case_id: case for case in self.cases}

    def case(self, case_id: str) -> StudyCase:
        try:
            return self._by_id[case_id]
        except KeyError:
            raise KeyError(f"case {case_id!r} is not in study {self.study_uid}") from None

    @property
    def case_ids(self) -> tuple[str, ...]:
        return tuple(case.case_id for case in self.cases)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "study_uid": self.study_uid,
            "created_utc": self.created_utc,
            "app_version": self.app_version,
            "task": self.task,
            "root": str(self.root),
            "sets": [
                {"path": str(s.path), "sha256": s.sha256, "size_bytes": s.size_bytes, "n_samples": s.n_samples}
                for s in self.sets
            ],
            "options": {
                **asdict(self.options), "mode": str(self.options.mode), "decisions": list(self.options.decisions)
            },
            "selection": {
                **asdict(self.selection),
                "unmatched": [asdict(u) for u in self.selection.unmatched],
            },
            "cases": [_case_json(case) for case in self.cases],
        }

    def save(self, path: str | os.PathLike[str]) -> Study:
        """Write atomically; returns the study with ``path`` set."""
        target = Path(path)
        atomic_write_text(target, json.dumps(self.to_json(), indent=1) + "\n")
        return replace(self, path=target)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Study:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(path, "study file not found; make one with `linop-study create`") from None
        except OSError as exc:
            raise DataError(path, f"cannot read the study file: {exc.strerror or exc}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(path, f"not valid JSON ({exc.msg})", exc.lineno) from exc
        try:
            return _study_from_json(data, path)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(path, f"not a valid study file ({_describe(exc)}); was it edited by hand?") from exc


def _case_json(case: StudyCase) -> dict[str, Any]:
    source: dict[str, Any] = {"kind": str(case.source.kind)}
    if case.source.kind is SourceKind.SET:
        source |= {"set": case.source.set, "sample_index": case.source.sample_index}
    else:
        source |= {"path": case.source.path, "size_bytes": case.source.size_bytes}
    return {
        "case_id": case.case_id,
        "truth": str(case.truth),
        "source": source,
        "lesion_boxes": [[float(v) for v in box] for box in case.lesion_boxes],
        "lesion_labels": list(case.lesion_labels),
        "image_size": list(case.image_size),
        "crop": list(case.crop),
        "matched_to": case.matched_to,
    }


def _describe(exc: Exception) -> str:
    return f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)


def _box(values: Sequence[Any]) -> Box:
    if len(values) != 4:
        raise ValueError(f"a box needs 4 numbers, got {list(values)}")
    x0, y0, x1, y1 = (float(v) for v in values)
    return (x0, y0, x1, y1)


def _crop(values: Sequence[Any]) -> CropBox:
    if len(values) != 4:
        raise ValueError(f"a crop needs 4 numbers, got {list(values)}")
    x0, y0, x1, y1 = (int(v) for v in values)
    if not (0 <= x0 < x1 and 0 <= y0 < y1):
        raise ValueError(f"crop {list(values)} is empty")
    return (x0, y0, x1, y1)


def _case_from_json(item: Mapping[str, Any], n_sets: int) -> StudyCase:
    src = item["source"]
    kind = SourceKind(src["kind"])
    if kind is SourceKind.SET:
        set_index = int(src["set"])
        if not 0 <= set_index < n_sets:
            raise ValueError(f"case {item['case_id']} names set {set_index}, but the study has {n_sets}")
        source = CaseSource(kind, set=set_index, sample_index=int(src["sample_index"]))
    else:
        size = src.get("size_bytes")
        source = CaseSource(kind, path=str(src["path"]), size_bytes=None if size is None else int(size))
    height, width = (int(v) for v in item["image_size"])
    return StudyCase(
        case_id=str(item["case_id"]),
        truth=Truth(item["truth"]),
        source=source,
        lesion_boxes=tuple(_box(b) for b in item["lesion_boxes"]),
        lesion_labels=tuple(str(v) for v in item["lesion_labels"]),
        image_size=(height, width),
        crop=_crop(item["crop"]),
        matched_to=item.get("matched_to"),
    )


def _study_from_json(data: Mapping[str, Any], path: Path) -> Study:
    if data.get("schema") != SCHEMA:
        raise ValueError(f"schema is {data.get('schema')!r}, expected {SCHEMA!r}")
    if str(data.get("schema_version", "")).split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise ValueError(f"schema_version {data.get('schema_version')!r} is not readable by this version")
    sets = tuple(
        SetRef(Path(s["path"]), str(s["sha256"]), int(s["size_bytes"]), int(s["n_samples"])) for s in data["sets"]
    )
    opts = data["options"]
    options = StudyOptions(
        cases=int(opts["cases"]),
        synthetic_share=float(opts["synthetic_share"]),
        mode=DisplayMode(opts["mode"]),
        crop_size=int(opts["crop_size"]),
        seed=int(opts["seed"]),
        decisions=tuple(str(d) for d in opts["decisions"]),
        size_tolerance=float(opts["size_tolerance"]),
        match_density=bool(opts["match_density"]),
    )
    sel = data["selection"]
    selection = SelectionReport(
        **{k: int(v) for k, v in sel.items() if k != "unmatched"},
        unmatched=tuple(Unmatched(str(u["target"]), str(u["reason"])) for u in sel["unmatched"]),
    )
    cases = tuple(_case_from_json(item, len(sets)) for item in data["cases"])
    ids = [case.case_id for case in cases]
    if len(set(ids)) != len(ids):
        raise ValueError("two cases share a case_id")
    return Study(
        study_uid=str(data["study_uid"]),
        created_utc=str(data["created_utc"]),
        app_version=str(data["app_version"]),
        task=str(data["task"]),
        root=Path(data["root"]),
        sets=sets,
        options=options,
        selection=selection,
        cases=cases,
        path=path,
    )
