"""VinDr-Mammo reader (PhysioNet ``vindr-mammo/1.0.0``).

Layout: ``images/<study_id>/<image_id>.dicom`` next to ``breast-level_annotations.csv`` (one row per image),
``finding_annotations.csv`` (one row per box; ``['No Finding']`` rows carry no box) and optionally
``metadata.csv`` (DICOM tags per ``SOP Instance UID``, kept as raw strings). Either annotation file is
enough: ``finding_annotations.csv`` repeats the breast-level columns for every image.

The in-painting "normal" pool is breast BI-RADS 1 (as the paper's "No finding" images), not the
``['No Finding']`` rows: those include BI-RADS 2-5 breasts whose lesion shows only in the other view.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from linop_core.errors import DataError
from linop_core.vindr.records import (
    Box,
    DuplicateRows,
    Finding,
    ImageRecord,
    ProblemLog,
    ReadReport,
    RowError,
    is_empty,
    parse_box,
    parse_int,
    plain_id,
    read_csv_rows,
    shorten,
)

MAMMO_CATEGORIES: tuple[str, ...] = (
    "Mass",
    "Suspicious Calcification",
    "Asymmetry",
    "Focal Asymmetry",
    "Global Asymmetry",
    "Architectural Distortion",
    "Skin Thickening",
    "Skin Retraction",
    "Nipple Retraction",
    "Suspicious Lymph Node",
    "No Finding",
)
NO_FINDING = "No Finding"
MASS = "Mass"
NORMAL_BIRADS = "BI-RADS 1"

BREAST_LEVEL_CSV = "breast-level_annotations.csv"
FINDING_CSV = "finding_annotations.csv"
METADATA_CSV = "metadata.csv"
IMAGES_DIR = "images"

BREAST_LEVEL_COLUMNS: tuple[str, ...] = (
    "study_id",
    "series_id",
    "image_id",
    "laterality",
    "view_position",
    "height",
    "width",
    "breast_birads",
    "breast_density",
    "split",
)
FINDING_COLUMNS: tuple[str, ...] = (
    "study_id",
    "series_id",
    "image_id",
    "laterality",
    "view_position",
    "height",
    "width",
    "breast_birads",
    "breast_density",
    "finding_categories",
    "finding_birads",
    "xmin",
    "ymin",
    "xmax",
    "ymax",
    "split",
)
SPLITS: tuple[str, ...] = ("training", "test")

_BIRADS = re.compile(r"^BI-RADS [0-6]$")
_DENSITY = re.compile(r"^DENSITY [A-D]$")
_BOX_COLUMNS = ("xmin", "ymin", "xmax", "ymax")


@dataclass
class _ImageBase:
    study_id: str
    image_id: str
    laterality: str | None
    view: str | None
    height: int | None
    width: int | None
    breast_birads: str | None
    breast_density: str | None
    split: str
    findings: list[Finding] = field(default_factory=list)


# finding_categories is a Python list literal of category names; a bounded scanner, not a Python parser,
# reads it (ast.literal_eval on a 100 kB literal nested deeply runs out of memory).
MAX_CATEGORIES_CHARS = 512
_CATEGORY_ITEM = re.compile(r"""\s*(?:'([^'\\]*)'|"([^"\\]*)")\s*""")


def parse_categories(text: str) -> tuple[str, ...]:
    """``"['Suspicious Calcification', 'Mass']"`` -> ``('Suspicious Calcification', 'Mass')``.

    Accepts a list or tuple of quoted names, or one quoted name; at most :data:`MAX_CATEGORIES_CHARS`.
    """
    text = text.strip()
    if len(text) > MAX_CATEGORIES_CHARS:
        raise RowError(f"finding_categories is {len(text)} characters long (at most {MAX_CATEGORIES_CHARS})")
    if text[:1] + text[-1:] in ("[]", "()"):
        inner, bracketed = text[1:-1], True
    else:
        inner, bracketed = text, False
    names: list[str] = []
    pos = 0
    while pos < len(inner):
        match = _CATEGORY_ITEM.match(inner, pos)
        if match is None or (not bracketed and names):
            raise RowError(f"finding_categories {shorten(text)!r} is not a list string like ['Mass']")
        names.append(match.group(1) if match.group(1) is not None else match.group(2))
        pos = match.end()
        if pos < len(inner):
            if inner[pos] != ",":
                raise RowError(f"finding_categories {shorten(text)!r} is not a list string like ['Mass']")
            pos += 1
    names = [n.strip() for n in names]
    if not names:
        raise RowError(f"finding_categories {shorten(text)!r} is not a non-empty list of names")
    unknown = [n for n in names if n not in MAMMO_CATEGORIES]
    if unknown:
        raise RowError(f"unknown finding category {', '.join(repr(shorten(n)) for n in unknown)}")
    if NO_FINDING in names and len(names) > 1:
        raise RowError(f"finding_categories {shorten(text)!r} mixes 'No Finding' with lesions")
    return tuple(names)


def _parse_base(row: dict[str, str]) -> _ImageBase:
    image_id, study_id = plain_id(row["image_id"], "image_id"), plain_id(row["study_id"], "study_id")
    laterality = row["laterality"] or None
    if laterality not in (None, "L", "R"):
        raise RowError(f"laterality {laterality!r} is not L or R")
    birads = row["breast_birads"] or None
    if birads is not None and not _BIRADS.match(birads):
        raise RowError(f"breast_birads {birads!r} is not like 'BI-RADS 1'")
    density = row["breast_density"] or None
    if density is not None and not _DENSITY.match(density):
        raise RowError(f"breast_density {density!r} is not like 'DENSITY C'")
    split = row["split"]
    if split not in SPLITS:
        raise RowError(f"split {split!r} is not 'training' or 'test'")
    return _ImageBase(
        study_id=study_id,
        image_id=image_id,
        laterality=laterality,
        view=row["view_position"] or None,
        height=parse_int(row["height"], "height"),
        width=parse_int(row["width"], "width"),
        breast_birads=birads,
        breast_density=density,
        split=split,
    )


def _parse_finding(row: dict[str, str], base: _ImageBase) -> Finding | None:
    categories = parse_categories(row["finding_categories"])
    birads = None if is_empty(row["finding_birads"]) else row["finding_birads"]
    if birads is not None and not _BIRADS.match(birads):
        raise RowError(f"finding_birads {birads!r} is not like 'BI-RADS 4'")
    box = parse_box([row[c] for c in _BOX_COLUMNS], _BOX_COLUMNS, base.width, base.height)
    if categories == (NO_FINDING,):
        if box is not None:
            raise RowError("a ['No Finding'] row carries a box")
        return None
    return Finding(categories=categories, box=box, birads=birads)


@dataclass
class MammoDataset:
    """A VinDr-Mammo root: records in CSV order, what reading found, and raw ``metadata.csv`` rows."""

    root: Path
    records: list[ImageRecord]
    report: ReadReport
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._index = {r.image_id: r for r in self.records}

    @staticmethod
    def is_root(root: Path) -> bool:
        return (root / BREAST_LEVEL_CSV).is_file() or (root / FINDING_CSV).is_file()

    @classmethod
    def open(cls, root: str | Path, *, strict: bool = False) -> MammoDataset:
        root = Path(root)
        breast_csv, finding_csv = root / BREAST_LEVEL_CSV, root / FINDING_CSV
        if not breast_csv.is_file() and not finding_csv.is_file():
            reason = f"not a VinDr-Mammo root: neither {BREAST_LEVEL_CSV} nor {FINDING_CSV} found"
            raise DataError(root, reason)
        log = ProblemLog(strict)
        bases: dict[str, _ImageBase] = {}
        base_lines: dict[str, int] = {}
        if breast_csv.is_file():
            for line, row in read_csv_rows(breast_csv, BREAST_LEVEL_COLUMNS, log):
                try:
                    base = _parse_base(row)
                except RowError as exc:
                    log.skip(breast_csv, line, str(exc))
                    continue
                if base.image_id in bases:
                    reason = f"image_id {base.image_id} listed twice (first on line {base_lines[base.image_id]})"
                    log.skip(breast_csv, line, reason)
                    continue
                bases[base.image_id] = base
                base_lines[base.image_id] = line
        if finding_csv.is_file():
            seen = DuplicateRows()
            for line, row in read_csv_rows(finding_csv, FINDING_COLUMNS, log):
                first = seen.first_line(line, row)
                if first is not None:  # the same box twice would be two masses
                    log.duplicate(finding_csv, line, first)
                    continue
                try:
                    row_base = _parse_base(row)
                    base = bases.get(row_base.image_id, row_base)
                    finding = _parse_finding(row, base)
                except RowError as exc:
                    log.skip(finding_csv, line, str(exc))
                    continue
                bases.setdefault(base.image_id, base)
                if finding is not None:
                    if finding.box is None:
                        log.without_box(finding_csv, line, finding.categories)
                    base.findings.append(finding)
        records = [_to_record(root, b) for b in bases.values()]
        log.report.missing_files = sum(not r.exists for r in records)
        metadata = _read_metadata(root / METADATA_CSV, log) if (root / METADATA_CSV).is_file() else {}
        log.warn_summary(root)
        return cls(root=root, records=records, report=log.report, metadata=metadata)

    def by_id(self, image_id: str) -> ImageRecord:
        try:
            return self._index[image_id]
        except KeyError:
            raise DataError(self.root, f"no image {image_id!r} in this VinDr-Mammo dataset") from None

    def split(self, split: str | None) -> list[ImageRecord]:
        return [r for r in self.records if split is None or r.split == split]

    def normal_pool(self, split: str | None = "training") -> list[ImageRecord]:
        """Images of breast BI-RADS 1 without any finding box (the paper's "No finding" images)."""
        return [r for r in self.split(split) if r.breast_birads == NORMAL_BIRADS and not r.findings]

    def with_masses(self, split: str | None = None) -> list[ImageRecord]:
        return [r for r in self.split(split) if any(_is_mass_box(f) for f in r.findings)]

    def mass_boxes(self, split: str | None = None) -> list[tuple[ImageRecord, Box]]:
        """Every box whose categories include Mass (co-labelled boxes too), with its image."""
        return [(r, f.box) for r in self.split(split) for f in r.findings if _is_mass_box(f) and f.box]


def _is_mass_box(finding: Finding) -> bool:
    return MASS in finding.categories and finding.box is not None


def _to_record(root: Path, base: _ImageBase) -> ImageRecord:
    findings = tuple(base.findings)
    labels = tuple(dict.fromkeys(c for f in findings for c in f.categories))
    record = ImageRecord(
        dataset="mammo",
        image_id=base.image_id,
        study_id=base.study_id,
        path=root / IMAGES_DIR / base.study_id / f"{base.image_id}.dicom",
        split=base.split,
        height=base.height,
        width=base.width,
        laterality=base.laterality,
        view=base.view,
        breast_birads=base.breast_birads,
        breast_density=base.breast_density,
        findings=findings,
        reader_findings=(),
        labels=labels,
    )
    if not record.path.is_file():
        dcm = record.path.with_suffix(".dcm")
        if dcm.is_file():
            record = replace(record, path=dcm)
    return record


def _read_metadata(path: Path, log: ProblemLog) -> dict[str, dict[str, str]]:
    """Raw ``metadata.csv`` rows keyed by ``SOP Instance UID`` (= image_id); the full schema is not fixed."""
    rows: dict[str, dict[str, str]] = {}
    lines: dict[str, int] = {}
    for line, row in read_csv_rows(path, ("SOP Instance UID",), log):
        uid = row["SOP Instance UID"]
        if not uid:
            log.skip(path, line, "empty SOP Instance UID")
            continue
        if uid in rows:
            log.skip(path, line, f"SOP Instance UID {shorten(uid)} listed twice (first on line {lines[uid]})")
            continue
        rows[uid] = row
        lines[uid] = line
    return rows
