"""Readers' answers: the 5-point confidence scale, one answer, and one append-only file per reader.

Scale (the usual visual-Turing-test scale, :class:`Confidence`)::

    1 certainly real   2 probably real   3 unsure   4 probably synthetic   5 certainly synthetic

An answer also carries the reader's forced choice (``label``, real or synthetic): it must agree with the
confidence (1-2 real, 4-5 synthetic); at 3 ("unsure") the reader still picks one, which is how the "3"
threshold of the report stays a forced choice. Optional ``mark``: where the reader thinks the lesion is,
``(x, y)`` in native image pixels.

Storage: ``<study stem>.answers/<reader>.jsonl`` next to the study file. Line 1 is a header
``{"schema": "linop-study-answers", "version": 1, "study_uid": ..., "reader": ...}``; each further line is one
answer. The file is a log: answering a case again (after ``back``) appends a new line and the last line per
case counts, so nothing a reader ever answered is lost. The whole file is rewritten atomically
(``linop_core.fileio``) after every answer, so a crash leaves the previous or the new version, never half.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from linop_core.errors import DataError, LinopError
from linop_core.fileio import atomic_write_text
from linop_core.study.model import Study, Truth

ANSWERS_SCHEMA = "linop-study-answers"
ANSWERS_VERSION = 1
ANSWERS_SUFFIX = ".jsonl"
_READER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class Confidence(IntEnum):
    """How sure the reader is that the case is synthetic: 1 certainly real ... 5 certainly synthetic."""

    CERTAINLY_REAL = 1
    PROBABLY_REAL = 2
    UNSURE = 3
    PROBABLY_SYNTHETIC = 4
    CERTAINLY_SYNTHETIC = 5

    @property
    def text(self) -> str:
        return self.name.lower().replace("_", " ")

    def implied_label(self) -> Truth | None:
        """The forced choice this confidence implies; None at 3, where the reader must pick."""
        if self < Confidence.UNSURE:
            return Truth.REAL
        if self > Confidence.UNSURE:
            return Truth.SYNTHETIC
        return None


# The report's "3" threshold: a confidence of 3 (unsure) or more counts as a "synthetic" call, so the operating
# point splits the scale into {1, 2} real and {3, 4, 5} synthetic.
SYNTHETIC_AT = Confidence.UNSURE


@dataclass(frozen=True)
class Answer:
    """One reader's answer to one case."""

    case_id: str
    label: Truth
    confidence: Confidence
    mark: tuple[float, float] | None  # (x, y) native image pixels, or None when not marked
    seconds: float  # time from showing the case to answering it
    answered_utc: str  # ISO 8601, e.g. 2025-01-31T12:00:00Z

    def __post_init__(self) -> None:
        # accept "real" / 4 from callers, store the enums (frozen: set through object.__setattr__)
        object.__setattr__(self, "label", Truth(self.label))
        object.__setattr__(self, "confidence", Confidence(self.confidence))
        implied = self.confidence.implied_label()
        if implied is not None and implied is not self.label:
            raise ValueError(
                f"label {self.label.value!r} contradicts confidence {int(self.confidence)} ({self.confidence.text})"
            )
        if not self.seconds >= 0:
            raise ValueError(f"seconds must be >= 0, got {self.seconds}")

    def to_json(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "label": Truth(self.label).value,
            "confidence": int(self.confidence),
            "mark": None if self.mark is None else [float(v) for v in self.mark],
            "seconds": float(self.seconds),
            "answered_utc": self.answered_utc,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Answer:
        mark = data.get("mark")
        if mark is not None:
            if len(mark) != 2:
                raise ValueError(f"mark must be [x, y], got {mark!r}")
            mark = (float(mark[0]), float(mark[1]))
        confidence = data["confidence"]
        if isinstance(confidence, bool) or not isinstance(confidence, int):
            raise ValueError(f"confidence must be a whole number 1-5, got {confidence!r}")
        return cls(
            case_id=str(data["case_id"]),
            label=Truth(data["label"]),
            confidence=Confidence(confidence),
            mark=mark,
            seconds=float(data["seconds"]),
            answered_utc=str(data["answered_utc"]),
        )


def check_reader_name(reader: str) -> str:
    if not _READER_NAME.match(reader):
        raise LinopError(
            f"reader name {reader!r} must be 1-64 letters, digits, '.', '_' or '-' (it names the reader's answers "
            "file); use a pseudonym such as reader1"
        )
    return reader


def answers_dir(study_path: str | os.PathLike[str]) -> Path:
    path = Path(study_path)
    return path.with_name(path.stem + ".answers")


def answers_path(study_path: str | os.PathLike[str], reader: str) -> Path:
    return answers_dir(study_path) / f"{check_reader_name(reader)}{ANSWERS_SUFFIX}"


def _line_error(path: Path, line: int, reason: str) -> DataError:
    return DataError(path, f"{reason}; fix or remove this line (answers above it are kept)", line)


def read_answers(path: Path, study: Study) -> tuple[str, list[Answer]]:
    """``(reader, answers in file order)``; raises DataError naming ``file:line`` for anything malformed."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(path, f"cannot read the answers file: {exc.strerror or exc}") from exc
    if not lines:
        raise DataError(path, "empty answers file: expected a header line; delete it to start this reader afresh", 1)
    try:
        header = json.loads(lines[0])
        if header.get("schema") != ANSWERS_SCHEMA:
            raise ValueError(f"schema {header.get('schema')!r} is not {ANSWERS_SCHEMA!r}")
        reader = check_reader_name(str(header["reader"]))
        study_uid = str(header["study_uid"])
    except (json.JSONDecodeError, KeyError, ValueError, AttributeError, LinopError) as exc:
        raise _line_error(path, 1, f"not an answers header ({exc})") from None
    if study_uid != study.study_uid:
        raise DataError(
            path, f"answers of study {study_uid}, not of {study.study_uid}; it belongs to another study file", 1
        )
    known = set(study.case_ids)
    answers: list[Answer] = []
    for number, text in enumerate(lines[1:], start=2):
        if not text.strip():
            continue
        try:
            answer = Answer.from_json(json.loads(text))
        except json.JSONDecodeError as exc:
            raise _line_error(path, number, f"not valid JSON ({exc.msg})") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            reason = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            raise _line_error(path, number, f"not a valid answer ({reason})") from None
        if answer.case_id not in known:
            raise _line_error(path, number, f"case {answer.case_id!r} is not in this study")
        answers.append(answer)
    return reader, answers


def latest(answers: Iterable[Answer]) -> dict[str, Answer]:
    """The answer that counts per case: the last one given."""
    out: dict[str, Answer] = {}
    for answer in answers:
        out[answer.case_id] = answer
    return out


class AnswerStore:
    """One reader's answers file: load on open, rewrite atomically on every :meth:`record`."""

    def __init__(self, study: Study, reader: str) -> None:
        if study.path is None:
            raise ValueError("the study must be saved (its answers live next to the study file)")
        self.study = study
        self.reader = check_reader_name(reader)
        self.path = answers_path(study.path, reader)
        self._log: list[Answer] = []
        if self.path.exists():
            found, self._log = read_answers(self.path, study)
            if found != reader:
                raise DataError(self.path, f"header names reader {found!r}, not {reader!r}; was the file renamed?", 1)

    @property
    def log(self) -> tuple[Answer, ...]:
        return tuple(self._log)

    def answers(self) -> dict[str, Answer]:
        return latest(self._log)

    def record(self, answer: Answer) -> None:
        """Append ``answer`` and rewrite the file atomically before returning (nothing answered is lost)."""
        if answer.case_id not in self.study.case_ids:
            raise KeyError(f"case {answer.case_id!r} is not in study {self.study.study_uid}")
        header = {
            "schema": ANSWERS_SCHEMA, "version": ANSWERS_VERSION, "study_uid": self.study.study_uid,
            "reader": self.reader,
        }  # fmt: skip
        lines = [json.dumps(header), *(json.dumps(a.to_json()) for a in [*self._log, answer])]
        atomic_write_text(self.path, "\n".join(lines) + "\n")
        self._log.append(answer)


def load_all_answers(study: Study) -> dict[str, dict[str, Answer]]:
    """``{reader: {case_id: answer}}`` from every answers file next to the study, readers sorted by name."""
    if study.path is None:
        raise ValueError("the study must be saved (its answers live next to the study file)")
    folder = answers_dir(study.path)
    out: dict[str, dict[str, Answer]] = {}
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob(f"*{ANSWERS_SUFFIX}")):
        reader, answers = read_answers(path, study)
        if path.stem != reader:
            raise DataError(path, f"header names reader {reader!r} but the file is named {path.name}", 1)
        out[reader] = latest(answers)
    return out
