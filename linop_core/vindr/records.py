"""Records shared by the VinDr-Mammo and VinDr-CXR readers, and the row-level CSV plumbing.

Boxes are ``(x0, y0, x1, y1)`` in native pixel coordinates, floats, half-open, clipped to the image on read.
Every malformed CSV row is reported as ``"file:line: reason"``; by default it is skipped (and the caller
warns once per file set), with ``strict=True`` the first one raises :class:`~linop_core.errors.DataError`.
"""

from __future__ import annotations

import csv
import logging
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from linop_core.errors import DataError

Box = tuple[float, float, float, float]

_log = logging.getLogger("linop_core.vindr")

_EMPTY = {"", "nan", "NaN", "NAN", "None", "none"}


@dataclass(frozen=True)
class Finding:
    """One box (or a box-less label) drawn by a radiologist, or one fused box.

    ``score`` is 1.0 for a raw annotation; for a fused CXR box it is the fraction of the image's readers
    whose boxes went into it.
    """

    categories: tuple[str, ...]
    box: Box | None
    birads: str | None = None
    reader: str | None = None
    score: float = 1.0


@dataclass(frozen=True)
class ImageRecord:
    """One image of a VinDr dataset, as described by its CSV files (the DICOM may be absent)."""

    dataset: Literal["mammo", "cxr"]
    image_id: str
    study_id: str
    path: Path
    split: str
    height: int | None
    width: int | None
    laterality: str | None
    view: str | None
    breast_birads: str | None
    breast_density: str | None
    findings: tuple[Finding, ...]
    reader_findings: tuple[Finding, ...]
    labels: tuple[str, ...]

    @property
    def exists(self) -> bool:
        return self.path.is_file()

    @property
    def boxes(self) -> list[Box]:
        return [f.box for f in self.findings if f.box is not None]


@dataclass
class ReadReport:
    """What happened while reading a dataset's CSV files."""

    rows_read: int = 0
    rows_skipped: int = 0
    problems: list[str] = field(default_factory=list)
    missing_files: int = 0


class RowError(ValueError):
    """A single CSV row cannot be used; the reason becomes the problem text."""


class ProblemLog:
    """Collects malformed rows into a :class:`ReadReport`, or raises at the first one when strict."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.report = ReadReport()

    def row_read(self) -> None:
        self.report.rows_read += 1

    def skip(self, path: Path, line: int, reason: str) -> None:
        if self.strict:
            raise DataError(path, f"{reason} (strict mode; fix the row or open without strict)", line)
        self.report.rows_skipped += 1
        self.note(f"{path}:{line}: {reason}")

    def note(self, problem: str) -> None:
        """Record a problem that does not skip a row (e.g. an unreadable DICOM header)."""
        self.report.problems.append(problem)
        _log.info("%s", problem)  # one UserWarning per dataset summarises them (warn_summary)

    def warn_summary(self, root: Path) -> None:
        if self.report.problems:
            first = self.report.problems[0]
            warnings.warn(
                f"{root}: {len(self.report.problems)} problem(s), {self.report.rows_skipped} row(s) skipped; "
                f"first: {first}",
                stacklevel=3,
            )


def read_csv_rows(path: Path, required: Sequence[str], log: ProblemLog) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line_number, row)`` for each data row of ``path``, whose header must hold ``required``.

    A row with the wrong number of fields is reported and skipped here; the caller parses the values.
    """
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise DataError(path, f"cannot open: {exc.strerror or exc}") from exc
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(path, "file is empty; expected a header with " + ", ".join(required)) from None
        except csv.Error as exc:
            raise DataError(path, f"not a readable CSV file: {exc}", 1) from exc
        header = [h.strip() for h in header]
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(path, f"missing column(s) {', '.join(missing)}; is this the right VinDr file?", 1)
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                log.row_read()
                log.skip(path, reader.line_num, f"unreadable CSV row ({exc})")
                continue
            if not values or all(not v.strip() for v in values):
                continue
            log.row_read()
            if len(values) != len(header):
                log.skip(path, reader.line_num, f"expected {len(header)} fields, found {len(values)}")
                continue
            yield reader.line_num, {k: v.strip() for k, v in zip(header, values, strict=True)}


def is_empty(value: str | None) -> bool:
    return value is None or value.strip() in _EMPTY


def parse_int(value: str, column: str) -> int | None:
    if is_empty(value):
        return None
    try:
        number = float(value)
    except ValueError:
        raise RowError(f"{column} {value!r} is not a number") from None
    if not math.isfinite(number) or number != int(number) or number <= 0:
        raise RowError(f"{column} {value!r} is not a positive whole number")
    return int(number)


def parse_float(value: str, column: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise RowError(f"{column} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise RowError(f"{column} {value!r} is not a finite number")
    return number


def parse_box(values: Sequence[str], columns: Sequence[str], width: int | None, height: int | None) -> Box | None:
    """Parse four coordinate strings into a clipped box; all four empty means no box.

    Raises :class:`RowError` for a partial box, a bad number, an inverted or empty box, or a box that lies
    entirely outside the image. Without a known size only the lower bound (0) can be clipped.
    """
    empty = [is_empty(v) for v in values]
    if all(empty):
        return None
    if any(empty):
        gaps = ", ".join(c for c, e in zip(columns, empty, strict=True) if e)
        raise RowError(f"box is incomplete (empty {gaps})")
    x0, y0, x1, y1 = (parse_float(v, c) for v, c in zip(values, columns, strict=True))
    if x1 < x0 or y1 < y0:
        raise RowError(f"inverted box ({x0:g}, {y0:g}, {x1:g}, {y1:g}): max below min")
    return clip_box((x0, y0, x1, y1), width, height)


def clip_box(box: Box, width: int | None, height: int | None) -> Box:
    x0, y0, x1, y1 = box
    x0, y0 = max(x0, 0.0), max(y0, 0.0)
    x1, y1 = max(x1, 0.0), max(y1, 0.0)
    if width is not None:
        x0, x1 = min(x0, float(width)), min(x1, float(width))
    if height is not None:
        y0, y1 = min(y0, float(height)), min(y1, float(height))
    if x1 <= x0 or y1 <= y0:
        raise RowError(f"box ({box[0]:g}, {box[1]:g}, {box[2]:g}, {box[3]:g}) has no area inside the image")
    return (x0, y0, x1, y1)
