"""Summaries behind ``linop-data inspect PATH``: one DICOM file, or a VinDr-Mammo / VinDr-CXR root.

``inspect_path`` returns a JSON-serialisable dict; ``format_inspection`` turns it into text for a terminal.
A dataset summary needs only the CSV files: images listed but absent on disk are counted, not fatal.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from linop_core.errors import DataError
from linop_core.vindr import (
    ALL_LABELS,
    FOUR_CLASS_PRIORITY,
    FOUR_CLASSES,
    MAMMO_CATEGORIES,
    CxrDataset,
    ImageRecord,
    MammoDataset,
    four_class_index,
    open_dataset,
)

MAX_PROBLEMS_LISTED = 50


def inspect_path(
    path: str | Path, *, strict: bool = False, decode: bool = False, check_files: bool = False
) -> dict[str, Any]:
    """Describe a DICOM file (metadata, value range, chosen window), a VinDr dataset root (counts) or a plain
    folder of DICOM files (a row per file, see :mod:`linop_core.inspect_folder`).

    ``strict`` makes a malformed CSV row raise DataError instead of being skipped and counted; ``decode`` makes
    a folder's inspection decode every image's pixels, not only its header; ``check_files`` reads the header
    of every image of a VinDr root on disk and compares its size with the CSV's.
    """
    path = Path(path)
    if path.is_dir():
        if MammoDataset.is_root(path) or CxrDataset.is_root(path):
            dataset = open_dataset(path, strict=strict)
            report = inspect_dataset(dataset)
            if check_files:
                report["files"] = check_dataset_files(dataset.records)
            return report
        from linop_core.inspect_folder import inspect_folder

        return inspect_folder(path, decode=decode)
    if path.is_file():
        return inspect_dicom(path)
    raise DataError(path, "does not exist; give a DICOM file, a folder of DICOM files or a VinDr dataset folder")


def inspect_dicom(path: Path) -> dict[str, Any]:
    """Header metadata, pixel value range and the display window :mod:`linop_core.dicom` chooses.

    Pixel values are native (after the modality LUT, MONOCHROME2); ``value_range`` is the representable
    range, ``pixels`` the observed one (``foreground`` excludes padding pixels).
    """
    from linop_core.dicom import choose_window, read_dicom  # deferred: dataset summaries need no pixels

    image = read_dicom(path)
    window = choose_window(image)
    meta = image.meta
    if meta.windows and window == meta.windows[0]:
        source = "file (first WindowCenter/WindowWidth)"
    elif meta.has_voi_lut_sequence:
        source = "VOI LUT Sequence (linear span of its input domain)"
    else:
        source = "percentile window of the non-padding pixels (the file has none)"
    foreground = image.pixels[~image.padding_mask] if image.padding_mask.any() else image.pixels
    return {
        "kind": "dicom",
        "path": str(path),
        "meta": to_jsonable(meta),
        "inverted_from_monochrome1": image.inverted,
        "value_range": to_jsonable(image.value_range),
        "pixels": _array_summary(image.pixels),
        "foreground": _array_summary(np.asarray(foreground)),
        "padding_pixels": int(image.padding_mask.sum()),
        "window": {**to_jsonable(window), "source": source},
    }


def to_jsonable(value: Any) -> Any:
    """A JSON-serialisable view of a (nested) dataclass holding arrays, paths, enums and numbers."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        return _array_summary(value)
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        return _array_summary(value.detach().cpu().numpy())
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, Iterable):
        return [to_jsonable(v) for v in value]
    return str(value)


def _array_summary(array: np.ndarray) -> dict[str, Any]:
    summary: dict[str, Any] = {"shape": list(array.shape), "dtype": str(array.dtype)}
    if array.size and (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        summary["min"] = to_jsonable(array.min())
        summary["max"] = to_jsonable(array.max())
    return summary


def inspect_dataset(dataset: MammoDataset | CxrDataset) -> dict[str, Any]:
    """Counts of a dataset: images, missing files, normal images, boxes and images per category, per split."""
    records = dataset.records
    splits = sorted({r.split for r in records}, key=lambda s: (s != "training", s))
    report: dict[str, Any] = {
        "kind": "dataset",
        "dataset": "mammo" if isinstance(dataset, MammoDataset) else "cxr",
        "root": str(dataset.root),
    }
    if isinstance(dataset, MammoDataset):
        report |= _mammo_counts(dataset, None)
        report["splits"] = {s: _mammo_counts(dataset, s) for s in splits}
    else:
        report["layout"] = dataset.layout
        report["fusion"] = dataclasses.asdict(dataset.fusion)
        report |= _cxr_counts(dataset, None)
        report["splits"] = {s: _cxr_counts(dataset, s) for s in splits}
    report["rows_read"] = dataset.report.rows_read
    report["rows_skipped"] = dataset.report.rows_skipped
    report["rows_deduplicated"] = dataset.report.rows_deduplicated
    report["findings_without_box"] = dataset.report.findings_without_box
    report["files_not_utf8"] = dataset.report.files_not_utf8
    report["missing_files"] = dataset.report.missing_files
    report["problem_count"] = len(dataset.report.problems)
    report["problems"] = list(dataset.report.problems)  # all of them: --json is the full record
    return report


def check_dataset_files(records: Iterable[ImageRecord]) -> dict[str, Any]:
    """Read the header of every listed image on disk: the ones that cannot be read, and the ones whose size
    differs from the size the CSV records (boxes are in the CSV's pixel grid), as ``file: reason`` lines."""
    from linop_core.dicom import read_dicom_meta
    from linop_core.errors import DicomError

    checked, unreadable, mismatched = 0, [], []
    for record in records:
        if not record.exists:
            continue
        checked += 1
        try:
            meta = read_dicom_meta(record.path)
        except DicomError as exc:
            unreadable.append(str(exc))
            continue
        if record.height and record.width and (meta.rows, meta.columns) != (record.height, record.width):
            mismatched.append(f"{record.path}: the CSV records {record.height}x{record.width} (height x width), the "
                              f"file is {meta.rows}x{meta.columns}; its boxes may not fit the pixels")
    return {"checked": checked, "unreadable": unreadable, "size_mismatches": mismatched}


def _common_counts(records: list[ImageRecord], normal: int) -> dict[str, Any]:
    missing = sum(not r.exists for r in records)
    return {
        "images": len(records),
        "images_on_disk": len(records) - missing,
        "missing_on_disk": missing,
        "normal_images": normal,
        "boxes": sum(f.box is not None for r in records for f in r.findings),
    }


def _mammo_counts(dataset: MammoDataset, split: str | None) -> dict[str, Any]:
    records = dataset.split(split)
    counts = _common_counts(records, len(dataset.normal_pool(split)))
    boxes: Counter[str] = Counter()
    images: Counter[str] = Counter()
    for record in records:
        for finding in record.findings:
            boxes.update(c for c in finding.categories if finding.box is not None)
        images.update(record.labels)
    counts["categories"] = {
        name: {"boxes": boxes[name], "images": images[name]} for name in MAMMO_CATEGORIES if images[name]
    }
    counts["images_with_mass"] = len(dataset.with_masses(split))
    counts["mass_boxes"] = len(dataset.mass_boxes(split))
    counts["breast_birads"] = _sorted_counter(r.breast_birads for r in records)
    counts["breast_density"] = _sorted_counter(r.breast_density for r in records)
    return counts


def _cxr_counts(dataset: CxrDataset, split: str | None) -> dict[str, Any]:
    records = dataset.split(split)
    counts = _common_counts(records, len(dataset.normal(split)))
    counts["reader_boxes"] = sum(f.box is not None for r in records for f in r.reader_findings)
    fused: Counter[str] = Counter(c for r in records for f in r.findings if f.box for c in f.categories)
    raw: Counter[str] = Counter(c for r in records for f in r.reader_findings if f.box for c in f.categories)
    images: Counter[str] = Counter(label for r in records for label in r.labels)
    counts["categories"] = {
        name: {"boxes": fused[name], "reader_boxes": raw[name], "images": images[name]}
        for name in ALL_LABELS
        if images[name] or raw[name]
    }
    if dataset.has_global_labels:
        classes = Counter(four_class_index(r.labels) for r in records)
        counts["four_class"] = {name: classes[i] for i, name in enumerate(FOUR_CLASSES)}
        counts["four_class_multi_label_dropped"] = sum(
            sum(name in r.labels for name in FOUR_CLASS_PRIORITY) > 1 for r in records
        )
    return counts


def _sorted_counter(values: Iterable[str | None]) -> dict[str, int]:
    counter = Counter("(empty)" if v is None else v for v in values)
    return dict(sorted(counter.items()))


def format_inspection(report: Mapping[str, Any]) -> str:
    """Human-readable text for a report from :func:`inspect_path`."""
    if report.get("kind") == "dicom":
        return _format_dicom(report)
    if report.get("kind") == "folder":
        from linop_core.inspect_folder import format_folder

        return format_folder(report)
    return _format_dataset(report)


def _format_dicom(report: Mapping[str, Any]) -> str:
    meta, window, pixels = report["meta"], report["window"], report["pixels"]
    lines = [
        f"DICOM {report['path']}",
        f"  {meta['rows']}x{meta['columns']} {meta['photometric_interpretation']}, "
        f"bits stored {meta['bits_stored']}"
        f"{', inverted to MONOCHROME2' if report['inverted_from_monochrome1'] else ''}",
        f"  pixel values {pixels['min']} .. {pixels['max']} (representable {report['value_range'][0]} .. "
        f"{report['value_range'][1]}); padding pixels {report['padding_pixels']}",
        f"  window center {window['center']:g}, width {window['width']:g} from {window['source']}",
        "  metadata:",
    ]
    lines += _format_tree(meta, indent=2)
    return "\n".join(lines)


def _format_tree(value: Any, indent: int) -> list[str]:
    pad = "  " * indent
    lines: list[str] = []
    for key, item in value.items():
        if isinstance(item, Mapping) and "shape" in item and "dtype" in item:
            shape = "x".join(str(n) for n in item["shape"])
            span = f", range {item['min']} .. {item['max']}" if "min" in item else ""
            lines.append(f"{pad}{key}: array {shape} {item['dtype']}{span}")
        elif isinstance(item, Mapping) and item:
            lines.append(f"{pad}{key}:")
            lines += _format_tree(item, indent + 1)
        else:
            lines.append(f"{pad}{key}: {item}")
    return lines


def _format_dataset(report: Mapping[str, Any]) -> str:
    name = {"mammo": "VinDr-Mammo", "cxr": "VinDr-CXR"}[report["dataset"]]
    layout = f" ({report['layout']} layout)" if "layout" in report else ""
    lines = [f"{name} dataset at {report['root']}{layout}"]
    lines += _format_counts(report, "  ")
    for split, counts in report["splits"].items():
        lines.append(f"  split {split}:")
        lines += _format_counts(counts, "    ")
    lines.append(
        f"  CSV rows read {report['rows_read']}, skipped {report['rows_skipped']}, duplicates counted once "
        f"{report['rows_deduplicated']}, findings without a box {report['findings_without_box']}, "
        f"problems {report['problem_count']}"
    )
    if report["files_not_utf8"]:
        lines.append(f"  {report['files_not_utf8']} CSV file(s) are not UTF-8 (read in another encoding; see below)")
    if "files" in report:
        files = report["files"]
        lines.append(f"  files checked {files['checked']}: unreadable {len(files['unreadable'])}, size differs from "
                     f"the CSV {len(files['size_mismatches'])}")
        lines += [f"    {line}" for line in (files["unreadable"] + files["size_mismatches"])[:MAX_PROBLEMS_LISTED]]
    shown = report["problems"][:MAX_PROBLEMS_LISTED]
    for problem in shown:
        lines.append(f"    {problem}")
    if report["problem_count"] > len(shown):
        lines.append(f"    ... {report['problem_count'] - len(shown)} more (all of them with --json)")
    return "\n".join(lines)


def _format_counts(counts: Mapping[str, Any], pad: str) -> list[str]:
    lines = [
        f"{pad}images {counts['images']} (on disk {counts['images_on_disk']}, missing {counts['missing_on_disk']})",
        f"{pad}normal images {counts['normal_images']}",
    ]
    if "mass_boxes" in counts:
        lines.append(
            f"{pad}boxes {counts['boxes']}; mass boxes {counts['mass_boxes']} on {counts['images_with_mass']} images"
        )
    else:
        lines.append(f"{pad}fused boxes {counts['boxes']} (reader boxes {counts['reader_boxes']})")
    if counts["categories"]:
        width = max(len(n) for n in counts["categories"])
        for category, c in counts["categories"].items():
            raw = f", reader boxes {c['reader_boxes']:>6}" if "reader_boxes" in c else ""
            lines.append(f"{pad}  {category:<{width}}  images {c['images']:>6}, boxes {c['boxes']:>6}{raw}")
    for key in ("breast_birads", "breast_density", "four_class"):
        if key in counts:
            lines.append(f"{pad}{key.replace('_', ' ')}: " + ", ".join(f"{k} {v}" for k, v in counts[key].items()))
    if "four_class_multi_label_dropped" in counts:
        lines.append(f"{pad}four-class: {counts['four_class_multi_label_dropped']} multi-label images dropped")
    return lines
