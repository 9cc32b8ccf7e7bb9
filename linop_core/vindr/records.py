"""Records shared by the VinDr-Mammo and VinDr-CXR readers, and the row-level CSV plumbing.

Boxes are ``(x0, y0, x1, y1)`` in native pixel coordinates, floats, half-open, clipped to the image on read.
Every malformed CSV row is reported as ``"file:line: reason"``; by default it is skipped (and the caller
warns once per file set), with ``strict=True`` the first one raises :class:`~linop_core.errors.DataError`.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from linop_core.errors import DataError
from linop_core.vindr.csvfile import detect_encoding, iter_lines, open_text

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
    """What happened while reading a dataset's CSV files. Every row that was dropped, de-duplicated or lost its
    box is counted here and listed in ``problems`` as ``file:line: reason``."""

    rows_read: int = 0
    rows_skipped: int = 0
    problems: list[str] = field(default_factory=list)
    missing_files: int = 0
    rows_deduplicated: int = 0
    findings_without_box: int = 0
    files_not_utf8: int = 0

    @property
    def rows_changed(self) -> int:
        """Rows not taken exactly as written: skipped, de-duplicated, or a lesion kept without its box."""
        return self.rows_skipped + self.rows_deduplicated + self.findings_without_box


class RowError(ValueError):
    """A single CSV row cannot be used; the reason becomes the problem text."""


class ProblemLog:
    """Collects what reading changed into a :class:`ReadReport`, or raises at the first change when strict."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.report = ReadReport()

    def row_read(self) -> None:
        self.report.rows_read += 1

    def _refuse_if_strict(self, path: Path, line: int | None, reason: str) -> None:
        if self.strict:
            raise DataError(path, f"{reason} (strict mode; fix the file or open without strict)", line)

    def skip(self, path: Path, line: int, reason: str) -> None:
        self._refuse_if_strict(path, line, reason)
        self.report.rows_skipped += 1
        self.note(f"{path}:{line}: {reason}")

    def duplicate(self, path: Path, line: int, first_line: int) -> None:
        """A row identical to an earlier one: counted once."""
        reason = f"duplicate of line {first_line}; counted once"
        self._refuse_if_strict(path, line, reason)
        self.report.rows_deduplicated += 1
        self.note(f"{path}:{line}: {reason}")

    def without_box(self, path: Path, line: int, categories: Sequence[str]) -> None:
        """A lesion row whose box is empty (NaN): the label is kept, but there is no box to train or sample."""
        reason = f"{', '.join(categories)} finding has no box (empty or NaN coordinates); kept as a label only"
        self._refuse_if_strict(path, line, reason)
        self.report.findings_without_box += 1
        self.note(f"{path}:{line}: {reason}")

    def not_utf8(self, path: Path, line: int, reason: str) -> None:
        self._refuse_if_strict(path, line, f"{reason}; save the file as UTF-8")
        self.report.files_not_utf8 += 1
        self.note(f"{path}:{line}: {reason}")

    def note(self, problem: str) -> None:
        """Record a problem that does not skip a row (e.g. an unreadable DICOM header)."""
        self.report.problems.append(problem)
        _log.info("%s", problem)  # one UserWarning per dataset summarises them (warn_summary)

    def warn_summary(self, root: Path) -> None:
        report = self.report
        if report.problems:
            warnings.warn(
                f"{root}: {len(report.problems)} problem(s): {report.rows_skipped} row(s) skipped, "
                f"{report.rows_deduplicated} duplicate(s) counted once, {report.findings_without_box} finding(s) "
                f"without a box; first: {report.problems[0]}",
                stacklevel=3,
            )


_PLAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def plain_id(value: str, column: str) -> str:
    """``value`` if it can name a file or folder inside the dataset (no separators, no '..', no leading dot)."""
    if not value:
        raise RowError(f"empty {column}")
    if not _PLAIN_ID.fullmatch(value):
        raise RowError(
            f"{column} {shorten(value)!r} is not a plain id (letters, digits, '.', '_', '-'; at most 128): "
            "it could point outside the dataset folder"
        )
    return value


def shorten(text: str, limit: int = 60) -> str:
    """``text`` cut for a one-line message."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def read_csv_rows(path: Path, required: Sequence[str], log: ProblemLog) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line_number, row)`` for each data row of ``path``, whose header must hold ``required``.

    Lines that cannot be split into the header's fields are reported and skipped here (see
    :mod:`linop_core.vindr.csvfile`); the caller parses the values.
    """
    encoding = detect_encoding(path)
    if encoding.is_fallback:
        assert encoding.foreign_line is not None
        log.not_utf8(path, encoding.foreign_line, encoding.describe())
    try:
        with open_text(path, encoding) as handle:
            lines = iter_lines(handle)
            first = next(lines, None)
            if first is None:
                raise DataError(path, "file is empty; expected a header with " + ", ".join(required))
            if first.fields is None:
                raise DataError(path, f"not a readable CSV file: {first.error}", first.number)
            header = [h.strip() for h in first.fields]
            missing = [c for c in required if c not in header]
            if missing:
                reason = f"missing column(s) {', '.join(missing)}; is this the right VinDr file?"
                raise DataError(path, reason, first.number)
            for line in lines:
                if line.fields is not None and all(not v.strip() for v in line.fields):
                    continue
                log.row_read()
                if line.fields is None:
                    log.skip(path, line.number, line.error or "unreadable line")
                    continue
                if len(line.fields) != len(header):
                    log.skip(path, line.number, f"expected {len(header)} fields, found {len(line.fields)}")
                    continue
                yield line.number, {k: v.strip() for k, v in zip(header, line.fields, strict=True)}
    except OSError as exc:
        raise DataError(path, f"cannot read: {exc.strerror or exc}") from exc


class DuplicateRows:
    """Remembers rows by content, to count a row repeated in a file once (and say where it first was)."""

    def __init__(self) -> None:
        self._first: dict[tuple[str, ...], int] = {}

    def first_line(self, line: int, row: dict[str, str]) -> int | None:
        """The line this row's exact content was first seen on, or None (and remember it) when it is new."""
        key = tuple(row.values())
        if key in self._first:
            return self._first[key]
        self._first[key] = line
        return None


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
