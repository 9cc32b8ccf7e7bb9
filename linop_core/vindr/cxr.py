"""VinDr-CXR reader (PhysioNet ``vindr-cxr/1.0.0``), also accepting the Kaggle VinBigData ``train.csv``.

PhysioNet layout: ``train/<image_id>.dicom``, ``test/<image_id>.dicom`` and
``annotations/{annotations,image_labels}_{train,test}.csv`` (the CSVs may also sit at the root).
``annotations_*`` hold one row per (reader, box) with ``rad_id`` (any case; optional for consensus files),
``class_name`` and ``x_min,y_min,x_max,y_max`` (empty for box-less labels such as "No finding").
``image_labels_*`` hold one row per (image, reader) with 0/1 columns for the 22 local and 6 global labels
("Other disease" in the test file is read as "Other diseases").

Kaggle layout: ``train.csv`` (``image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max``) and
``train/<image_id>.dicom``; it has 14 local classes and no global labels, so no 4-class task.

Labels: from ``image_labels_*`` when present for the split, else from the annotation rows; a label is
present by the vote rule of :class:`FusionConfig` (majority of the image's readers by default, any reader
with ``label_votes=1``; single consensus rows always count). Boxes: ``reader_findings`` are the raw
per-reader boxes, ``findings`` the weighted-boxes-fusion result (see :mod:`linop_core.vindr.fusion`).

An image whose labels come from a single consensus row (test split) keeps its boxes as drawn, unfused.

VinDr-CXR has no study ids: ``ImageRecord.study_id`` is the image id. Image sizes are not in the CSVs:
they are read from the DICOM header (``linop_core.dicom.read_dicom_meta``) for images that have boxes and
exist on disk, to clip boxes to the image; otherwise they stay ``None`` and boxes are clipped at 0 only.

Four-class task (normal / pleural effusion / pneumothorax / pneumonia): an image is *normal* when its only
present label is "No finding"; it belongs to a disease class when exactly one of Pleural effusion,
Pneumothorax, Pneumonia is present (other findings may be present too). Images carrying several of the three
are dropped by default (``multi="drop"``), or given one by ``multi="priority"``: Pneumothorax (the rarest)
> Pleural effusion > Pneumonia (boxed local findings before the global label). Other images are not in
the task.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from linop_core.errors import DataError, DicomError
from linop_core.vindr.csvfile import read_header
from linop_core.vindr.fusion import FusionConfig, fuse_reader_boxes
from linop_core.vindr.records import (
    DuplicateRows,
    Finding,
    ImageRecord,
    ProblemLog,
    ReadReport,
    RowError,
    clip_box,
    parse_box,
    parse_float,
    plain_id,
    read_csv_rows,
    shorten,
)

LOCAL_LABELS: tuple[str, ...] = (
    "Aortic enlargement",
    "Atelectasis",
    "Calcification",
    "Cardiomegaly",
    "Clavicle fracture",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Enlarged PA",
    "ILD",
    "Infiltration",
    "Lung Opacity",
    "Lung cavity",
    "Lung cyst",
    "Mediastinal shift",
    "Nodule/Mass",
    "Pleural effusion",
    "Pleural thickening",
    "Pneumothorax",
    "Pulmonary fibrosis",
    "Rib fracture",
    "Other lesion",
)
GLOBAL_LABELS: tuple[str, ...] = (
    "COPD",
    "Lung tumor",
    "Pneumonia",
    "Tuberculosis",
    "Other diseases",
    "No finding",
)
ALL_LABELS: tuple[str, ...] = LOCAL_LABELS + GLOBAL_LABELS
NO_FINDING = "No finding"
FOUR_CLASSES: tuple[str, ...] = ("normal", "pleural effusion", "pneumothorax", "pneumonia")
FOUR_CLASS_LABELS: dict[str, int] = {"Pleural effusion": 1, "Pneumothorax": 2, "Pneumonia": 3}
FOUR_CLASS_PRIORITY: tuple[str, ...] = ("Pneumothorax", "Pleural effusion", "Pneumonia")
FourClassPolicy = Literal["drop", "priority"]

_CANONICAL = {name.lower(): name for name in ALL_LABELS} | {"other disease": "Other diseases"}
_BOX_COLUMNS = ("x_min", "y_min", "x_max", "y_max")
ANNOTATION_COLUMNS: tuple[str, ...] = ("image_id", "class_name", *_BOX_COLUMNS)
KAGGLE_COLUMNS: tuple[str, ...] = ("image_id", "class_name", "class_id", "rad_id", *_BOX_COLUMNS)
KAGGLE_CSV = "train.csv"
# split name -> (image folder, annotation file, label file)
SPLIT_FILES: dict[str, tuple[str, str, str]] = {
    "training": ("train", "annotations_train.csv", "image_labels_train.csv"),
    "test": ("test", "annotations_test.csv", "image_labels_test.csv"),
}


def canonical_label(name: str) -> str:
    """The canonical spelling of a VinDr-CXR label name; RowError for an unknown one."""
    try:
        return _CANONICAL[name.strip().lower()]
    except KeyError:
        raise RowError(f"unknown class {shorten(name)!r}") from None


def _header(path: Path) -> list[str]:
    return read_header(path)


def _reader_column(header: list[str]) -> str | None:
    return next((h for h in header if h.lower() == "rad_id"), None)


@dataclass
class _Image:
    split: str
    readers: set[str] = field(default_factory=set)
    label_readers: set[str] = field(default_factory=set)
    label_votes: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    box_votes: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    boxes: list[tuple[Finding, Path, int]] = field(default_factory=list)
    from_labels_file: bool = False


def _annotation_dir(root: Path) -> Path:
    return root / "annotations" if (root / "annotations").is_dir() else root


def _layout(root: Path) -> Literal["physionet", "kaggle"] | None:
    folder = _annotation_dir(root)
    if any((folder / name).is_file() for _, a, lab in SPLIT_FILES.values() for name in (a, lab)):
        return "physionet"
    if (root / KAGGLE_CSV).is_file() and "class_id" in _header(root / KAGGLE_CSV):
        return "kaggle"
    return None


@dataclass
class CxrDataset:
    """A VinDr-CXR root (PhysioNet or Kaggle layout): records, what reading found, and the settings used."""

    root: Path
    records: list[ImageRecord]
    report: ReadReport
    layout: Literal["physionet", "kaggle"]
    fusion: FusionConfig
    has_global_labels: bool

    def __post_init__(self) -> None:
        self._index = {r.image_id: r for r in self.records}

    @staticmethod
    def is_root(root: Path) -> bool:
        return _layout(root) is not None

    @classmethod
    def open(
        cls,
        root: str | Path,
        *,
        strict: bool = False,
        fusion: FusionConfig = FusionConfig(),  # noqa: B008 - frozen dataclass, safe as a default
        read_sizes: bool = True,
        progress: Callable[[int, int], None] | None = None,
    ) -> CxrDataset:
        """Read the CSVs under ``root``.

        ``strict``: a malformed row raises DataError instead of being skipped. ``fusion``: box fusion and label
        vote settings. ``read_sizes``: read Rows/Columns from the DICOM headers of images with boxes (to clip
        boxes to the image). ``progress(done, total)`` is called per image while records are built (the
        part that reads DICOM headers).
        """
        root = Path(root)
        layout = _layout(root)
        if layout is None:
            names = ", ".join(f"annotations/{a}, annotations/{lab}" for _, a, lab in SPLIT_FILES.values())
            raise DataError(root, f"not a VinDr-CXR root: none of {names} or a Kaggle {KAGGLE_CSV} found")
        log = ProblemLog(strict)
        images: dict[str, _Image] = {}
        folders: dict[str, str] = {}
        has_global = False
        if layout == "kaggle":
            _read_annotations(root / KAGGLE_CSV, "training", images, log, kaggle=True)
            folders["training"] = "train"
        else:
            folder = _annotation_dir(root)
            for split, (image_dir, ann_name, lab_name) in SPLIT_FILES.items():
                folders[split] = image_dir
                if (folder / lab_name).is_file():
                    _read_labels(folder / lab_name, split, images, log)
                    has_global = True
                if (folder / ann_name).is_file():
                    _read_annotations(folder / ann_name, split, images, log, kaggle=False)
        records = []
        for done, (image_id, img) in enumerate(images.items(), start=1):
            records.append(_to_record(root, image_id, img, folders[img.split], fusion, log, read_sizes))
            if progress is not None:
                progress(done, len(images))
        log.report.missing_files = sum(not r.exists for r in records)
        log.warn_summary(root)
        return cls(root, records, log.report, layout, fusion, has_global)

    def by_id(self, image_id: str) -> ImageRecord:
        try:
            return self._index[image_id]
        except KeyError:
            raise DataError(self.root, f"no image {image_id!r} in this VinDr-CXR dataset") from None

    def split(self, split: str | None) -> list[ImageRecord]:
        return [r for r in self.records if split is None or r.split == split]

    def normal(self, split: str | None = None) -> list[ImageRecord]:
        """Images whose only present label is "No finding" (the outpainting training pool)."""
        return [r for r in self.split(split) if r.labels == (NO_FINDING,)]

    def four_class(self, split: str | None = None, *, multi: FourClassPolicy = "drop") -> list[tuple[ImageRecord, int]]:
        """``(record, class index into FOUR_CLASSES)`` for the images in the paper's 4-class task.

        See the module docstring for the policy; needs the PhysioNet ``image_labels_*`` files (Pneumonia is
        a global label).
        """
        if not self.has_global_labels:
            raise DataError(
                self.root,
                "the 4-class task needs annotations/image_labels_{train,test}.csv (Pneumonia is a global "
                "label); a Kaggle train.csv has none",
            )
        if multi not in ("drop", "priority"):
            raise ValueError(f"multi must be 'drop' or 'priority', got {multi!r}")
        out: list[tuple[ImageRecord, int]] = []
        for record in self.split(split):
            index = four_class_index(record.labels, multi)
            if index is not None:
                out.append((record, index))
        return out


def four_class_index(labels: tuple[str, ...], multi: FourClassPolicy = "drop") -> int | None:
    """Class index of an image with these present labels, or None when it is not part of the task."""
    diseases = [name for name in FOUR_CLASS_PRIORITY if name in labels]
    if not diseases:
        return 0 if labels == (NO_FINDING,) else None
    if len(diseases) > 1 and multi == "drop":
        return None
    return FOUR_CLASS_LABELS[diseases[0]]


def _read_labels(path: Path, split: str, images: dict[str, _Image], log: ProblemLog) -> None:
    header = _header(path)
    reader_col = _reader_column(header)
    columns: dict[str, str] = {}
    for name in header:
        canon = _CANONICAL.get(name.lower())
        if canon is not None:
            columns[canon] = name
    missing = [label for label in ALL_LABELS if label not in columns]
    if missing:
        reason = f"missing label column(s) {', '.join(missing)}; is this an image_labels file?"
        raise DataError(path, reason, 1)
    required = ["image_id", *([reader_col] if reader_col else []), *columns.values()]
    rows_per_image: dict[str, int] = defaultdict(int)
    for line, row in read_csv_rows(path, required, log):
        try:
            image_id = plain_id(row["image_id"], "image_id")
            img = images.get(image_id) or _Image(split)  # registered only once the row is valid
            if img.split != split:
                raise RowError(f"image {image_id} is also listed in the {img.split} split")
            if reader_col:
                reader = row[reader_col]
                if not reader:
                    raise RowError(f"empty {reader_col}")
            else:
                # the same name as box rows without a reader column, so consensus boxes are not fused
                count = rows_per_image[image_id]
                reader = "consensus" if count == 0 else f"consensus{count}"
            if reader in img.label_readers:
                raise RowError(f"reader {reader} is listed twice for image {image_id}")
            votes = []
            for label, column in columns.items():
                value = parse_float(row[column] or "0", column)
                if value not in (0.0, 1.0):
                    raise RowError(f"{column} {row[column]!r} is not 0 or 1")
                if value == 1.0:
                    votes.append(label)
        except RowError as exc:
            log.skip(path, line, str(exc))
            continue
        images.setdefault(image_id, img)
        rows_per_image[image_id] += 1
        img.from_labels_file = True
        img.label_readers.add(reader)
        img.readers.add(reader)
        for label in votes:
            img.label_votes[label].add(reader)


def _read_annotations(path: Path, split: str, images: dict[str, _Image], log: ProblemLog, *, kaggle: bool) -> None:
    header = _header(path)
    reader_col = "rad_id" if kaggle else _reader_column(header)
    required = list(KAGGLE_COLUMNS if kaggle else ANNOTATION_COLUMNS)
    if reader_col and reader_col not in required:
        required.append(reader_col)
    seen = DuplicateRows()
    for line, row in read_csv_rows(path, required, log):
        first = seen.first_line(line, row)
        if first is not None:  # a repeated reader box would weigh twice in the fusion and move the fused box
            log.duplicate(path, line, first)
            continue
        try:
            image_id = plain_id(row["image_id"], "image_id")
            label = canonical_label(row["class_name"])
            if kaggle and not row["class_id"].isdigit():
                raise RowError(f"class_id {row['class_id']!r} is not a whole number")
            reader = row[reader_col] if reader_col else "consensus"
            if not reader:
                raise RowError(f"empty {reader_col}")
            box = parse_box([row[c] for c in _BOX_COLUMNS], _BOX_COLUMNS, None, None)
            if label == NO_FINDING and box is not None:
                raise RowError("a 'No finding' row carries a box")
            img = images.setdefault(image_id, _Image(split))
            if img.split != split:
                raise RowError(f"image {image_id} is also listed in the {img.split} split")
        except RowError as exc:
            log.skip(path, line, str(exc))
            continue
        img.box_votes[label].add(reader)
        if not img.from_labels_file:
            img.readers.add(reader)
        if box is not None:
            img.boxes.append((Finding((label,), box, None, reader, 1.0), path, line))
        elif label in LOCAL_LABELS:
            log.without_box(path, line, (label,))


def _image_size(path: Path, log: ProblemLog) -> tuple[int | None, int | None]:
    from linop_core.dicom import read_dicom_meta  # deferred: CSV-only use must not need the DICOM stack

    try:
        meta = read_dicom_meta(path)
    except DicomError as exc:
        log.note(f"{path}: size unknown, boxes clipped at 0 only ({exc.reason})")
        return None, None
    return int(meta.rows), int(meta.columns)


def _to_record(
    root: Path,
    image_id: str,
    img: _Image,
    folder: str,
    fusion: FusionConfig,
    log: ProblemLog,
    read_sizes: bool,
) -> ImageRecord:
    path = root / folder / f"{image_id}.dicom"
    if not path.is_file() and path.with_suffix(".dcm").is_file():
        path = path.with_suffix(".dcm")
    height = width = None
    if img.boxes and read_sizes and path.is_file():
        height, width = _image_size(path, log)
    reader_findings: list[Finding] = []
    for finding, csv_path, line in img.boxes:
        try:
            box = clip_box(finding.box, width, height) if finding.box is not None else None
        except RowError as exc:
            log.skip(csv_path, line, str(exc))
            continue
        reader_findings.append(Finding(finding.categories, box, None, finding.reader, 1.0))
    if img.from_labels_file and len(img.label_readers) == 1:
        # one consensus label row (test split): its boxes are the consensus, whatever rad_id they carry
        fused = tuple(Finding(f.categories, f.box, None, None, 1.0) for f in reader_findings)
    else:
        fused = fuse_reader_boxes(reader_findings, img.readers, width, height, fusion)
    votes = img.label_votes if img.from_labels_file else img.box_votes
    needed = min(fusion.label_votes, max(len(img.readers), 1))
    labels = tuple(label for label in ALL_LABELS if len(votes.get(label, ())) >= needed)
    return ImageRecord(
        dataset="cxr",
        image_id=image_id,
        study_id=image_id,
        path=path,
        split=img.split,
        height=height,
        width=width,
        laterality=None,
        view=None,
        breast_birads=None,
        breast_density=None,
        findings=fused,
        reader_findings=tuple(reader_findings),
        labels=labels,
    )
