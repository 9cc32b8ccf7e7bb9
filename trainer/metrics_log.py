"""A run's ``metrics.jsonl``: one JSON record per line, appended by ``linop-train``, read by ``trainer.bundle``.

One rule for a line that is not JSON, whoever reads the file: the *last* line of a killed run may be torn,
so it is skipped; a bad line anywhere else means the file was damaged afterwards, which is a
:class:`~linop_core.errors.DataError` naming ``file:line`` (silently dropping it would lose or hide records).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from linop_core.errors import DataError
from trainer.run_files import write_run_text

Record = dict[str, Any]


def _parsed_lines(path: Path) -> list[tuple[str, Record]]:
    """(line, record) for every readable line of ``path``, in order; see the module docstring for bad lines."""
    lines = path.read_text(encoding="utf-8").splitlines()
    parsed = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise DataError(path, "not a JSON line; the metrics file is damaged", line=number) from None
        parsed.append((line, record))
    return parsed


def read_metrics(path: Path) -> list[Record]:
    """The records of ``path`` (a torn last line is skipped).

    Raises:
        DataError: a line before the last is not JSON.
    """
    return [record for _, record in _parsed_lines(path)]


def append_metrics(path: Path, record: Record) -> None:
    """Append one record; the file is rewritten atomically, so a crash never leaves half a line.

    Raises:
        CheckpointWriteError: the file could not be written (the previous version is intact).
    """
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    write_run_text(path, old + json.dumps(record, sort_keys=True) + "\n")


def truncate_metrics(path: Path, nimg: int) -> None:
    """Drop the records written after ``nimg`` images (a resumed run repeats that stretch) and a torn last line.

    Raises:
        DataError: a line before the last is not JSON.
        CheckpointWriteError: the file could not be written (the previous version is intact).
    """
    if not path.is_file():
        return
    kept = [line for line, record in _parsed_lines(path) if int(record.get("nimg", 0)) <= nimg]
    write_run_text(path, "".join(f"{line}\n" for line in kept))
