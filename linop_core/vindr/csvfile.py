"""Reading a dataset CSV file the way real ones arrive: their encoding, one row per physical line, bounded.

Encoding: UTF-8 (with or without a byte-order mark; VinDr's own files are plain ASCII/UTF-8), UTF-16 with a
byte-order mark, and for files re-saved by a spreadsheet on Windows, Windows-1252 (Latin-1 where even that
fails). A file that is not UTF-8 is named with the line of its first foreign byte, so the caller can stop
(strict) or note it and go on.

Rows: VinDr fields never hold a line break, so each physical line is parsed on its own. A stray quote then
damages only its own line, which is reported at its real line number, instead of silently swallowing the
rows after it into one giant field. A line longer than :data:`MAX_LINE_CHARS` is reported and skipped
without being held in memory.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

from linop_core.errors import DataError

MAX_LINE_CHARS = 1 << 20  # a VinDr line is under 1 kB; a megabyte is damage, not data
FALLBACK_ENCODINGS = ("cp1252", "latin-1")
_CHUNK = 1 << 16
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


@dataclass(frozen=True)
class CsvEncoding:
    """How a CSV file is decoded. ``foreign_line`` is the first line that is not UTF-8 (None when it is)."""

    codec: str
    foreign_line: int | None = None
    foreign_byte: int | None = None

    @property
    def is_fallback(self) -> bool:
        return self.foreign_line is not None

    def describe(self) -> str:
        return (
            f"not UTF-8 (byte 0x{self.foreign_byte:02x} on this line); read as {self.codec}"
            if self.is_fallback else self.codec
        )


def detect_encoding(path: Path) -> CsvEncoding:
    """The encoding to read ``path`` with, found by streaming through it (memory: one chunk)."""
    try:
        with path.open("rb") as handle:
            start = handle.read(4)
            for bom, codec in _BOMS:
                if start.startswith(bom):
                    return CsvEncoding(codec)
            handle.seek(0)
            foreign = _first_non_utf8(handle)
            if foreign is None:
                return CsvEncoding("utf-8")
            for codec in FALLBACK_ENCODINGS:
                handle.seek(0)
                if _decodes(handle, codec):
                    return CsvEncoding(codec, *foreign)
    except OSError as exc:
        raise DataError(path, f"cannot open: {exc.strerror or exc}") from exc
    raise AssertionError("latin-1 decodes every byte")  # pragma: no cover


def _first_non_utf8(handle: BinaryIO) -> tuple[int, int] | None:
    """(line, byte) of the first byte that is not UTF-8, or None."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines_before = 0
    while True:
        chunk = handle.read(_CHUNK)
        try:
            decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            # the decoder may hold up to 3 bytes of the previous chunk; the error is within this one's reach
            offset = max(exc.start - len(exc.object) + len(chunk), 0)
            return lines_before + chunk.count(b"\n", 0, offset) + 1, chunk[offset] if offset < len(chunk) else 0
        if not chunk:
            return None
        lines_before += chunk.count(b"\n")


def _decodes(handle: BinaryIO, codec: str) -> bool:
    decoder = codecs.getincrementaldecoder(codec)()
    while True:
        chunk = handle.read(_CHUNK)
        try:
            decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError:
            return False
        if not chunk:
            return True


def open_text(path: Path, encoding: CsvEncoding) -> TextIO:
    try:
        return path.open(encoding=encoding.codec, newline="")
    except OSError as exc:
        raise DataError(path, f"cannot open: {exc.strerror or exc}") from exc


@dataclass(frozen=True)
class CsvLine:
    """One physical line: its number (1-based), its fields, or why it could not be split into fields."""

    number: int
    fields: list[str] | None
    error: str | None = None


def iter_lines(handle: TextIO) -> Iterator[CsvLine]:
    """Every non-blank physical line of ``handle``, split into fields on its own (see the module docstring)."""
    number = 0
    while True:
        line = handle.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_CHARS and not line.endswith(("\n", "\r")):
            while (rest := handle.readline(MAX_LINE_CHARS)) and not rest.endswith(("\n", "\r")):
                pass  # drop the rest of the overlong line, a bounded piece at a time
            yield CsvLine(number, None, f"line longer than {MAX_LINE_CHARS} characters (damaged file?)")
            continue
        text = line.rstrip("\r\n")
        if not text.strip():
            continue
        try:
            fields = next(csv.reader([text], strict=True))
        except csv.Error as exc:
            reason = str(exc)
            if "unexpected end of data" in reason or "newline inside string" in reason:
                reason = "a quote (\") opens a field that this line never closes"
            yield CsvLine(number, None, f"unreadable CSV line: {reason}")
            continue
        yield CsvLine(number, fields)


def read_header(path: Path) -> list[str]:
    """The stripped column names of ``path``'s first line ([] for an empty file)."""
    with open_text(path, detect_encoding(path)) as handle:
        for line in iter_lines(handle):
            if line.fields is None:
                raise DataError(path, f"cannot read the header: {line.error}", line.number)
            return [h.strip() for h in line.fields]
    return []
