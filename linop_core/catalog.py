"""The image list behind the browser: what was opened, which images it holds, and how they filter.

No widgets here. A catalog is built from one of three things:

- a VinDr-Mammo or VinDr-CXR root (``linop_core.vindr.open_dataset``): records with labels and boxes;
- a plain folder of DICOM files (searched recursively): one header read per file, and every file that
  cannot be read becomes an *error entry* carrying the one-line reason, so the rest still open;
- a single DICOM file: its folder is opened and the file selected.

Entries are sorted by study, then in hanging order (R CC, L CC, R MLO, L MLO), so "next image" walks a
mammography study view by view.

Every entry carries an :class:`ImageLabel` (mammogram, chest X-ray, other radiograph, other image): from the
dataset for VinDr roots, from the file's own Modality and Body Part Examined for a plain folder
(:func:`image_label`), never from the modality alone (a CR can be a chest, a hand or a breast).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from linop_core.dicom import read_dicom_meta
from linop_core.dicom.limits import looks_like_dataset_start
from linop_core.errors import DataError, DicomError
from linop_core.sources import DicomSource
from linop_core.vindr import CxrDataset, Finding, ImageRecord, MammoDataset, open_dataset
from linop_core.vocab import DatasetKind, Task, task_for_dataset

ProgressFn = Callable[[int, int], None]

DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
HANGING_SLOTS: tuple[tuple[str, str], ...] = (("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO"))
_VIEW_ORDER = {slot: i for i, slot in enumerate(HANGING_SLOTS)}
ALL = None  # a filter field left at None matches everything


class ImageLabel(StrEnum):
    """What an image shows, as the file says it."""

    MAMMOGRAM = "mammogram"
    CHEST_XRAY = "chest X-ray"
    OTHER_RADIOGRAPH = "other radiograph"
    OTHER = "other image"  # not a projection radiograph (CT, MR, ultrasound ...)


# Projection X-ray modalities (PS3.3 C.7.3.1.1.1); RG is the retired code of older radiography equipment.
_RADIOGRAPHY = frozenset({"CR", "DX", "DR", "RG", "PX", "IO", "RF", "XA"})
_CHEST_PARTS = frozenset({"CHEST", "THORAX", "LUNG", "LUNGS", "CHEST_LAT", "CHEST_PA"})
_BREAST_PARTS = frozenset({"BREAST"})
_CHEST_VIEWS = frozenset({"PA", "AP", "LL", "RL", "LAT", "LATERAL", "AP SUPINE"})  # when Body Part is absent
_MAMMO_SOP_PREFIX = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography X-Ray Image Storage (and For Processing)


def image_label(
    modality: str | None, body_part_examined: str | None, sop_class_uid: str | None = None, view: str | None = None
) -> ImageLabel:
    """The label of a plain-folder image from its header: a projection radiograph (or an image without
    Modality) whose Body Part is the chest is a chest X-ray; Modality MG, Body Part BREAST, or without a Body
    Part a mammography SOP class, is a mammogram; without a Body Part a chest view such as PA or AP makes a
    radiograph a chest X-ray; any other projection radiograph is an "other radiograph"; CT, MR, ultrasound ...
    are "other"."""
    modality = (modality or "").strip().upper()
    part = (body_part_examined or "").strip().upper().replace(" ", "_")
    projection = modality in _RADIOGRAPHY or not modality
    if projection and part in _CHEST_PARTS:  # the body part is the most specific word in the header
        return ImageLabel.CHEST_XRAY
    mammo_class = (sop_class_uid or "").startswith(_MAMMO_SOP_PREFIX)
    if modality == "MG" or part in _BREAST_PARTS or (mammo_class and not part):
        return ImageLabel.MAMMOGRAM
    if projection and not part and (view or "").strip().upper() in _CHEST_VIEWS:
        return ImageLabel.CHEST_XRAY
    return ImageLabel.OTHER_RADIOGRAPH if projection else ImageLabel.OTHER


def task_for_label(label: ImageLabel | None) -> Task | None:
    """The synthesis an image is for: masses are inpainted into mammograms, chest X-ray findings are kept and
    outpainted around; other images have none."""
    return {ImageLabel.MAMMOGRAM: Task.INPAINT, ImageLabel.CHEST_XRAY: Task.OUTPAINT}.get(label) if label else None


@dataclass(frozen=True)
class CatalogEntry:
    """One row of the browser: an image that can be shown, or a file that could not be read (``error``)."""

    image_id: str
    path: Path
    study_id: str
    split: str | None = None
    laterality: str | None = None
    view: str | None = None
    breast_birads: str | None = None
    breast_density: str | None = None
    categories: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()
    modality: str | None = None
    manufacturer: str | None = None
    height: int | None = None
    width: int | None = None
    error: str | None = None
    body_part: str | None = None  # BodyPartExamined of a plain folder's file
    label: ImageLabel | None = None  # None only for unreadable files

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def view_label(self) -> str:
        """``"R CC"``, ``"L MLO"``, ``"PA"`` or ``""``."""
        return " ".join(p for p in (self.laterality, self.view) if p)


@dataclass(frozen=True)
class Filters:
    """Browser filters; None means "any". ``text`` matches image or study id (case-insensitive substring)."""

    split: str | None = ALL
    breast_birads: str | None = ALL
    breast_density: str | None = ALL
    category: str | None = ALL
    laterality: str | None = ALL
    view: str | None = ALL
    text: str = ""
    show_errors: bool = True

    def matches(self, entry: CatalogEntry) -> bool:
        if not entry.ok:
            return self.show_errors and self._text_matches(entry)
        checks = (
            (self.split, entry.split),
            (self.breast_birads, entry.breast_birads),
            (self.breast_density, entry.breast_density),
            (self.laterality, entry.laterality),
            (self.view, entry.view),
        )
        if any(wanted is not None and wanted != value for wanted, value in checks):
            return False
        if self.category is not None and self.category not in entry.categories:
            return False
        return self._text_matches(entry)

    def _text_matches(self, entry: CatalogEntry) -> bool:
        needle = self.text.strip().lower()
        return not needle or needle in entry.image_id.lower() or needle in entry.study_id.lower()


# Filter fields that have a choice list in the browser, with the entry attribute they read.
FILTER_FIELDS: tuple[tuple[str, str], ...] = (
    ("split", "Split"),
    ("breast_birads", "BI-RADS"),
    ("breast_density", "Density"),
    ("category", "Finding"),
    ("laterality", "Laterality"),
    ("view", "View"),
)


@dataclass
class Catalog:
    """An opened dataset or folder: entries in browsing order plus what went wrong while reading it."""

    root: Path
    kind: DatasetKind
    entries: list[CatalogEntry]
    problems: list[str] = field(default_factory=list)
    dataset: MammoDataset | CxrDataset | None = None
    initial_path: Path | None = None  # the file the user opened, when a single file was given

    def __post_init__(self) -> None:
        self._by_id = {e.image_id: e for e in self.entries}

    # -- opening ------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str], progress: ProgressFn | None = None) -> Catalog:
        """Open a VinDr root, a folder of DICOM files or one DICOM file. Raises DataError if there is nothing.

        Runs on a worker thread in the app (a VinDr-CXR root or a large folder reads many headers).
        """
        target = Path(path).expanduser()
        if not target.exists():
            raise DataError(target, "does not exist; choose a VinDr root, a folder of DICOM files or a DICOM file")
        if target.is_file():
            catalog = cls._open_folder(target.parent, progress, recursive=False)
            catalog.initial_path = target.resolve()
            return catalog
        if MammoDataset.is_root(target) or CxrDataset.is_root(target):
            return cls._open_vindr(target, progress)
        return cls._open_folder(target, progress, recursive=True)

    @classmethod
    def _open_vindr(cls, root: Path, progress: ProgressFn | None) -> Catalog:
        dataset = open_dataset(root) if MammoDataset.is_root(root) else CxrDataset.open(root, progress=progress)
        entries = [_entry_from_record(r) for r in dataset.records]
        problems = list(dataset.report.problems)
        missing = [e for e in entries if not e.path.is_file()]
        if missing:
            problems.append(f"{len(missing)} image(s) listed in the CSV files are missing on disk")
            missing_ids = {e.image_id for e in missing}
            entries = [
                replace(e, error=f"{e.path}: file not found (listed in the CSV)") if e.image_id in missing_ids else e
                for e in entries
            ]
        kind = DatasetKind.MAMMO if isinstance(dataset, MammoDataset) else DatasetKind.CXR
        return cls(root.resolve(), kind, sort_entries(entries), problems, dataset)

    @classmethod
    def _open_folder(cls, folder: Path, progress: ProgressFn | None, *, recursive: bool) -> Catalog:
        files = find_dicom_files(folder, recursive=recursive)
        if not files:
            raise DataError(folder, "no DICOM files (*.dcm, *.dicom or files with a DICM marker) in this folder")
        entries: list[CatalogEntry] = []
        problems: list[str] = []
        for done, path in enumerate(files, start=1):
            entry = _entry_from_file(folder, path)
            if entry.error:
                problems.append(entry.error)
            entries.append(entry)
            if progress is not None:
                progress(done, len(files))
        return cls(folder.resolve(), DatasetKind.FOLDER, sort_entries(entries), problems)

    # -- queries -------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.entries)

    def by_id(self, image_id: str) -> CatalogEntry:
        try:
            return self._by_id[image_id]
        except KeyError:
            raise DataError(self.root, f"no image {image_id!r} in this catalog") from None

    def source(self, image_id: str) -> DicomSource:
        """Where ``image_id``'s pixels are and its pseudonymous ids, as synthesis records them."""
        entry = self.by_id(image_id)
        return DicomSource(entry.path, str(self.kind), entry.image_id, entry.study_id, entry.split or "unknown",
                           entry.laterality, entry.view)

    def task_of(self, entry: CatalogEntry) -> Task | None:
        """What ``entry`` is for: the dataset's task for a VinDr root, else the image's own (from its header)."""
        if self.kind is not DatasetKind.FOLDER:
            return task_for_dataset(self.kind)
        return task_for_label(entry.label) if entry.ok else None

    def find_path(self, path: Path) -> CatalogEntry | None:
        resolved = Path(path).resolve()
        return next((e for e in self.entries if e.path.resolve() == resolved), None)

    def filtered(self, filters: Filters) -> list[CatalogEntry]:
        return [e for e in self.entries if filters.matches(e)]

    def choices(self, field_name: str) -> list[str]:
        """Distinct values of a filter field over the readable entries, sorted (for the filter combos)."""
        if field_name == "category":
            values: Iterable[str | None] = (c for e in self.entries for c in e.categories)
        else:
            values = (getattr(e, field_name) for e in self.entries if e.ok)
        return sorted({v for v in values if v})

    def study(self, entry: CatalogEntry) -> list[CatalogEntry]:
        return [e for e in self.entries if e.study_id == entry.study_id and e.ok]

    def hanging(self, entry: CatalogEntry) -> dict[tuple[str, str], CatalogEntry | None]:
        """The four standard mammography views of ``entry``'s study, by (laterality, view); None where absent."""
        slots: dict[tuple[str, str], CatalogEntry | None] = dict.fromkeys(HANGING_SLOTS)
        for e in self.study(entry):
            key = (e.laterality or "", _base_view(e.view))
            if key in slots and slots[key] is None:
                slots[key] = e
        return slots

    def has_hanging(self, entry: CatalogEntry) -> bool:
        """True when the study has at least two of the four standard mammography views."""
        return sum(v is not None for v in self.hanging(entry).values()) >= 2

    @property
    def summary(self) -> str:
        n_err = sum(not e.ok for e in self.entries)
        studies = len({e.study_id for e in self.entries if e.ok})
        kind = {"mammo": "VinDr-Mammo", "cxr": "VinDr-CXR", "folder": "DICOM folder"}[self.kind]
        text = f"{kind}: {len(self.entries) - n_err} images in {studies} studies"
        return text + (f", {n_err} unreadable" if n_err else "")


# ----------------------------------------------------------------------------------------------- helpers


def find_dicom_files(folder: Path, *, recursive: bool = True) -> list[Path]:
    """DICOM files under ``folder``: by suffix, or, without a suffix, by the 'DICM' marker at byte 128 or
    (ACR-NEMA files, which have no preamble) by a DICOM element at the start."""
    found: list[Path] = []
    iterator = folder.rglob("*") if recursive else folder.glob("*")
    for path in iterator:
        if not path.is_file() or path.name.startswith("."):
            continue
        suffix = path.suffix.lower()
        if suffix in DICOM_SUFFIXES or (suffix == "" and _looks_like_dicom(path)):
            found.append(path)
    return sorted(found)


def _looks_like_dicom(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM" or looks_like_dataset_start(head)


def _base_view(view: str | None) -> str:
    """Map view variants to the hanging slots (e.g. 'ML' and 'MLO' both hang as MLO)."""
    v = (view or "").upper()
    return "MLO" if v in ("MLO", "ML", "LMO") else v


def sort_entries(entries: list[CatalogEntry]) -> list[CatalogEntry]:
    """Study order of first appearance, then hanging order inside a study, then image id; errors last."""
    first_seen: dict[str, int] = {}
    for e in entries:
        first_seen.setdefault(e.study_id, len(first_seen))

    def key(e: CatalogEntry) -> tuple[int, int, int, str]:
        slot = _VIEW_ORDER.get((e.laterality or "", _base_view(e.view)), len(_VIEW_ORDER))
        return (0 if e.ok else 1, first_seen[e.study_id], slot, e.image_id)

    return sorted(entries, key=key)


def _entry_from_record(record: ImageRecord) -> CatalogEntry:
    return CatalogEntry(
        image_id=record.image_id,
        path=record.path,
        study_id=record.study_id,
        split=record.split,
        laterality=record.laterality,
        view=record.view,
        breast_birads=record.breast_birads,
        breast_density=record.breast_density,
        categories=record.labels,
        findings=tuple(f for f in record.findings if f.box is not None),
        modality="MG" if record.dataset == "mammo" else "DX",
        height=record.height,
        width=record.width,
        label=ImageLabel.MAMMOGRAM if record.dataset == "mammo" else ImageLabel.CHEST_XRAY,
    )


def _entry_from_file(folder: Path, path: Path) -> CatalogEntry:
    rel = path.relative_to(folder).as_posix() if path.is_relative_to(folder) else path.name
    try:
        meta = read_dicom_meta(path)
    except DicomError as exc:
        return CatalogEntry(image_id=rel, path=path, study_id="(unreadable)", error=str(exc))
    return CatalogEntry(
        image_id=rel,
        path=path,
        study_id=meta.study_instance_uid or rel,
        laterality=meta.laterality,
        view=meta.view_position,
        modality=meta.modality,
        manufacturer=meta.manufacturer,
        height=meta.rows,
        width=meta.columns,
        body_part=meta.body_part_examined,
        label=image_label(meta.modality, meta.body_part_examined, meta.sop_class_uid, meta.view_position),
    )
