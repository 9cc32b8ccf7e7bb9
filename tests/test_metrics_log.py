"""metrics.jsonl: one rule for bad lines, whoever reads it (bundling, or a resumed run truncating it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from linop_core.errors import DataError
from trainer.metrics_log import append_metrics, read_metrics, truncate_metrics

TORN = '{"kind": "tra'  # the last line of a run killed mid-write


def _write(path: Path, records: list[dict[str, object]], tail: str = "") -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail, encoding="utf-8")


def test_a_torn_last_line_is_skipped_by_reading_and_truncating(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    records = [{"kind": "train", "nimg": n} for n in (2, 4, 6)]
    _write(path, records, TORN)
    assert read_metrics(path) == records
    truncate_metrics(path, 4)
    assert read_metrics(path) == records[:2]
    assert path.read_text(encoding="utf-8").endswith("}\n")  # the torn line is gone


@pytest.mark.parametrize("read", [read_metrics, lambda path: truncate_metrics(path, 10)])
def test_a_damaged_middle_line_is_an_error_naming_file_and_line(tmp_path: Path, read: object) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"kind": "fid", "nimg": 2}\nnot json\n{"kind": "fid", "nimg": 4}\n', encoding="utf-8")
    before = path.read_bytes()
    with pytest.raises(DataError, match=r"metrics\.jsonl:2: not a JSON line"):
        read(path)  # type: ignore[operator]
    assert path.read_bytes() == before


def test_append_adds_sorted_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "run" / "metrics.jsonl"
    append_metrics(path, {"nimg": 2, "kind": "train"})
    append_metrics(path, {"nimg": 4, "kind": "fid"})
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines == ['{"kind": "train", "nimg": 2}', '{"kind": "fid", "nimg": 4}']
    truncate_metrics(tmp_path / "absent.jsonl", 0)  # nothing to truncate
    assert not (tmp_path / "absent.jsonl").exists()
