"""One reader working through a study: :class:`ReadingSession`, Qt-free, for the GUI's reading view to drive.

API (what a thin Qt view needs)::

    session = ReadingSession.open("study.json", "reader1")   # checks the inputs; resumes saved answers
    view = session.current_case()      # CaseView (blinded pixels + window + crop) or None when finished
    session.current_answer()           # this reader's earlier answer to the current case (after back()), or None
    session.answer(Confidence.PROBABLY_SYNTHETIC, mark=(x, y))   # saved atomically, then the next case
    session.answer(Confidence.UNSURE, label=Truth.REAL)          # at 3 the reader picks real or synthetic
    session.back(); session.forward()  # previous / next case in the reader's order (answered or not)
    session.skip()                     # leave this case for later: the next unanswered case
    session.progress                   # Progress(done, total, position)
    session.is_finished                # every case answered
    session.close()                    # or use it as a context manager

Order: each reader gets their own shuffled order of the cases, derived from the study seed and the reader
name (:func:`reader_order`), so order effects average out over readers and a resumed session sees the same
order. Resume = the first unanswered case in that order; skipped cases come round again after the last one.

Kill safety: :meth:`ReadingSession.answer` returns only after the answers file was rewritten atomically
(:class:`~linop_core.study.answers.AnswerStore`), so nothing answered is lost however the process ends;
there is nothing to flush on close. Time per answer is measured from when the case was first shown
(``current_case()``) with the injected monotonic ``clock``.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from linop_core.errors import LinopError
from linop_core.study.answers import Answer, AnswerStore, Confidence
from linop_core.study.inputs import check_inputs
from linop_core.study.model import Study, Truth
from linop_core.study.views import CaseLoader, CaseView


@dataclass(frozen=True)
class Progress:
    done: int  # cases answered
    total: int  # cases in the study
    position: int  # 0-based place of the current case in the reader's order; == total when none is current


def reader_order(study: Study, reader: str) -> tuple[str, ...]:
    """The reader's own order of the case ids: a permutation seeded by the study seed and the reader name."""
    key = int.from_bytes(hashlib.sha256(reader.encode("utf-8")).digest()[:8], "big")
    rng = np.random.default_rng(np.random.SeedSequence([study.options.seed, key]))
    ids = study.case_ids
    return tuple(ids[i] for i in rng.permutation(len(ids)).tolist())


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ReadingSession:
    """See the module docstring. ``clock`` (seconds, monotonic) and ``utc_now`` are injectable for tests."""

    def __init__(
        self,
        study: Study,
        reader: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        utc_now: Callable[[], str] = _utc_now,
    ) -> None:
        self._study = study
        self._store = AnswerStore(study, reader)
        self._loader = CaseLoader(study)
        self._order = reader_order(study, reader)
        self._clock = clock
        self._utc_now = utc_now
        self._view: tuple[int, CaseView] | None = None
        self._shown_at = clock()
        self._position = self._next_unanswered(-1)

    @classmethod
    def open(
        cls,
        study_path: str | os.PathLike[str],
        reader: str,
        *,
        verify_hashes: bool = True,
        clock: Callable[[], float] = time.monotonic,
        utc_now: Callable[[], str] = _utc_now,
    ) -> ReadingSession:
        """Load the study, check its inputs (see :func:`~linop_core.study.inputs.check_inputs`), resume."""
        study = Study.load(study_path)
        check_inputs(study, verify_hashes=verify_hashes)
        return cls(study, reader, clock=clock, utc_now=utc_now)

    # --- state

    @property
    def reader(self) -> str:
        return self._store.reader

    @property
    def study_uid(self) -> str:
        return self._study.study_uid

    @property
    def progress(self) -> Progress:
        return Progress(len(self._store.answers()), len(self._order), self._position)

    @property
    def is_finished(self) -> bool:
        return len(self._store.answers()) == len(self._order)

    def current_case(self) -> CaseView | None:
        """The blinded view of the current case, or None when there is none (every case answered)."""
        if self._position >= len(self._order):
            return None
        if self._view is None or self._view[0] != self._position:
            case = self._study.case(self._order[self._position])
            self._view = (self._position, self._loader.view(case))
            self._shown_at = self._clock()  # loading a full-field mammogram is not reading time
        return self._view[1]

    def current_answer(self) -> Answer | None:
        if self._position >= len(self._order):
            return None
        return self._store.answers().get(self._order[self._position])

    # --- actions

    def answer(
        self, confidence: Confidence | int, label: Truth | str | None = None, mark: tuple[float, float] | None = None
    ) -> Answer:
        """Save the answer to the current case (atomically), then move to the next unanswered case."""
        if self._position >= len(self._order):
            raise LinopError("every case is answered; go back() to change an answer")
        confidence = Confidence(confidence)
        implied = confidence.implied_label()
        if label is None:
            if implied is None:
                raise LinopError("confidence 3 (unsure): also say real or synthetic (the forced choice)")
            label = implied
        case = self._study.case(self._order[self._position])
        if mark is not None:
            x, y = (float(v) for v in mark)
            height, width = case.image_size
            if not (0 <= x <= width and 0 <= y <= height):
                raise LinopError(f"mark ({x:g}, {y:g}) lies outside the {width}x{height} image")
            mark = (x, y)
        try:
            answer = Answer(
                case_id=case.case_id, label=Truth(label), confidence=confidence, mark=mark,
                seconds=max(self._clock() - self._shown_at, 0.0), answered_utc=self._utc_now(),
            )  # fmt: skip
        except ValueError as exc:
            raise LinopError(str(exc)) from None
        self._store.record(answer)
        self._go(self._next_unanswered(self._position))
        return answer

    def skip(self) -> bool:
        """Leave the current case as it is and go to the next unanswered one; False when there is no other."""
        if self._position >= len(self._order):
            return False
        target = self._next_unanswered(self._position)
        if target >= len(self._order) or target == self._position:
            return False
        self._go(target)
        return True

    def forward(self) -> bool:
        """Go to the next case in the reader's order, answered or not (to undo a back()); False at the end."""
        if self._position + 1 >= len(self._order):
            return False
        self._go(self._position + 1)
        return True

    def back(self) -> bool:
        """Go to the previous case in the reader's order (its earlier answer is in ``current_answer()``)."""
        if self._position == 0:
            return False
        self._go(self._position - 1)
        return True

    def close(self) -> None:
        self._loader.close()

    def __enter__(self) -> ReadingSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- helpers

    def _go(self, position: int) -> None:
        self._position = position
        self._shown_at = self._clock()

    def _next_unanswered(self, start: int) -> int:
        """The first unanswered position after ``start``, wrapping round (so ``start`` itself comes last);
        ``len(order)`` when every case is answered."""
        answered = self._store.answers()
        n = len(self._order)
        for step in range(1, n + 1):
            position = (start + step) % n
            if self._order[position] not in answered:
                return position
        return n
