"""Sources a batch could not use: what is recorded about them, and checking a pool before a run.

A unit whose source cannot be read (a damaged DICOM) or cannot take the request (no breast to place a mass
in) draws the next source from the same unit random stream, so the unit stays deterministic; each skipped
source is recorded in the set as a ``/audit/events`` JSON line (:meth:`SourceSkip.event`), committed
with its unit, and counted in the run's summary. Files are named by their last two path components
(``<study>/<image>.dicom``, ``train/<image>.dicom``): enough to find them in the dataset, without the
user's local folder layout.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from linop_core.errors import DicomError, LinopError
from linop_core.sources import DicomSource, ImageSource

EVENT_SOURCE_SKIPPED = "source_skipped"
EVENT_SIZE_MISMATCH = "size_mismatch"
MAX_REDRAWS = 20  # sources tried per unit before the unit fails: a pool that bad needs --check-sources


@dataclass(frozen=True)
class SourceSkip:
    """One source a unit could not use."""

    unit: int
    image_id: str
    file: str
    reason: str

    def event(self) -> str:
        record = {"event": EVENT_SOURCE_SKIPPED, "unit": self.unit, "image_id": self.image_id, "file": self.file,
                  "reason": self.reason}  # fmt: skip
        return json.dumps(record, sort_keys=True)

    def line(self) -> str:
        return f"unit {self.unit}: skipped {self.file} ({self.reason})"


def skips_from_events(events: Iterable[str]) -> list[SourceSkip]:
    """The skipped sources among a set's audit events, in order."""
    skips = []
    for text in events:
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("event") == EVENT_SOURCE_SKIPPED:
            skips.append(SourceSkip(int(record["unit"]), str(record["image_id"]), str(record["file"]),
                                    str(record["reason"])))
    return skips


def size_mismatch_event(unit: int, source: ImageSource, recorded: tuple[int, int], actual: tuple[int, int]) -> str:
    record = {"event": EVENT_SIZE_MISMATCH, "unit": unit, "image_id": source.info.image_id,
              "file": source_file(source), "csv_height_width": list(recorded), "file_height_width": list(actual)}
    return json.dumps(record, sort_keys=True)


def source_file(source: ImageSource) -> str:
    if isinstance(source, DicomSource):
        return Path(*Path(source.path).parts[-2:]).as_posix()
    return source.name


def skip_reason(exc: LinopError) -> str:
    """The reason of a source error without the path it starts with (the event names the file)."""
    reason = getattr(exc, "reason", None)
    return str(reason) if reason else str(exc)


@dataclass(frozen=True)
class SourceProblem:
    """A pool source that cannot be read (what ``--check-sources`` lists)."""

    image_id: str
    file: str
    reason: str


def check_sources(
    sources: Sequence[ImageSource], *, progress: Callable[[int, int], None] | None = None
) -> list[SourceProblem]:
    """Read every source completely (header and pixels); the ones that fail, with their one-line reasons."""
    problems = []
    for done, source in enumerate(sources, start=1):
        try:
            source.load()
        except DicomError as exc:
            problems.append(SourceProblem(source.info.image_id, source_file(source), skip_reason(exc)))
        if progress is not None:
            progress(done, len(sources))
    return problems
