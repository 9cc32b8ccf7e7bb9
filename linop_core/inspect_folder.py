"""``linop-data inspect FOLDER`` for a plain folder of DICOM files (no VinDr CSVs): one row per file, counts
by label, modality and transfer syntax, and every file that cannot be read with its one-line reason.

Files are found as the GUI's browser finds them (:func:`linop_core.catalog.find_dicom_files`); headers are
read without pixels unless ``decode`` asks for the pixels too (slower; finds damaged compressed streams).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydicom.uid import UID

from linop_core.catalog import find_dicom_files, image_label
from linop_core.dicom import DicomMeta, read_dicom, read_dicom_meta
from linop_core.errors import DataError, DicomError

ProgressFn = Callable[[int, int], None]


def inspect_folder(folder: Path, *, decode: bool = False, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Describe every DICOM file under ``folder`` (recursively); JSON-serialisable."""
    folder = Path(folder)
    files = find_dicom_files(folder)
    if not files:
        raise DataError(
            folder, "no DICOM files (*.dcm, *.dicom, or files that start like DICOM) and no VinDr CSV files here"
        )
    images: list[dict[str, Any]] = []
    unreadable: list[dict[str, str]] = []
    for done, path in enumerate(files, start=1):
        name = path.relative_to(folder).as_posix()
        try:
            meta = read_dicom(path).meta if decode else read_dicom_meta(path)
        except DicomError as exc:
            unreadable.append({"file": name, "reason": exc.reason})
        else:
            images.append(_row(name, meta))
        if progress is not None:
            progress(done, len(files))
    return {
        "kind": "folder",
        "root": str(folder),
        "decoded": decode,
        "files": len(files),
        "readable": len(images),
        "unreadable_count": len(unreadable),
        "counts": {
            "label": _count(row["label"] for row in images),
            "modality": _count(row["modality"] or "(none)" for row in images),
            "transfer_syntax": _count(row["transfer_syntax"] for row in images),
            "no_preamble": sum(not row["preamble"] for row in images),
        },
        "images": images,
        "unreadable": unreadable,
    }


def _row(name: str, meta: DicomMeta) -> dict[str, Any]:
    syntax = UID(meta.transfer_syntax_uid)
    return {
        "file": name,
        "label": str(image_label(meta.modality, meta.body_part_examined, meta.sop_class_uid)),
        "modality": meta.modality,
        "body_part": meta.body_part_examined,
        "view": " ".join(p for p in (meta.laterality, meta.view_position) if p),
        "rows": meta.rows,
        "columns": meta.columns,
        "bits_stored": meta.bits_stored,
        "photometric": meta.photometric_interpretation,
        "transfer_syntax": syntax.name if syntax.is_transfer_syntax else str(syntax),
        "preamble": meta.has_preamble,
        "manufacturer": meta.manufacturer,
    }


def _count(values: Any) -> dict[str, int]:
    return dict(sorted(Counter(values).items(), key=lambda kv: (-kv[1], kv[0])))


def format_folder(report: Mapping[str, Any]) -> str:
    """The folder report as a terminal table."""
    decoded = "headers and pixels" if report["decoded"] else "headers"
    lines = [
        f"DICOM folder {report['root']}: {report['files']} file(s), {report['readable']} readable, "
        f"{report['unreadable_count']} unreadable ({decoded} read)",
    ]
    counts = report["counts"]
    for key, title in (("label", "labels"), ("modality", "modalities"), ("transfer_syntax", "transfer syntaxes")):
        if counts[key]:
            lines.append(f"  {title}: " + ", ".join(f"{name} {n}" for name, n in counts[key].items()))
    if counts["no_preamble"]:
        lines.append(f"  {counts['no_preamble']} file(s) without the Part-10 preamble (ACR-NEMA style), read anyway")
    if report["images"]:
        header = ("file", "label", "modality", "body part", "size", "bits", "transfer syntax", "preamble")
        table = [header] + [
            (
                row["file"], row["label"], row["modality"] or "-", row["body_part"] or "-",
                f"{row['columns']}x{row['rows']}", str(row["bits_stored"]), row["transfer_syntax"],
                "yes" if row["preamble"] else "no",
            )
            for row in report["images"]
        ]  # fmt: skip
        widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
        lines.append("")
        lines += ["  " + "  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in table]
    if report["unreadable"]:
        lines.append("")
        lines.append("  unreadable:")
        lines += [f"    {item['file']}: {item['reason']}" for item in report["unreadable"]]
    return "\n".join(lines)
