"""The reading view's state without Qt: one reader working through a study, plus what the view holds between
answers (the lesion mark being placed, the forced choice awaited after "3 unsure").

The study's own rules are the core's :class:`~linop_core.study.ReadingSession` (per-reader order, atomic answers,
resume at the first unanswered case, moved inputs named on open); :class:`ReadingState` adds only the view's
rules, so the reading window stays a thin widget and a test reads everything here without a screen:

- a mark is placed in the shown pixels (the case's display region) and handed to the core in native image pixels;
  a case seen again after ``back`` shows the mark and the confidence of its earlier answer;
- 1, 2, 4 and 5 answer at once; 3 waits for the forced choice (real or synthetic) before anything is saved;
- moving to another case drops a mark and a choice that were not answered.

Nothing here shows what gives the answer away: :func:`case_image` makes the viewer's image from the blinded
:class:`~linop_core.study.CaseView` with an empty header (no path, ids, device or explanation text).
"""

from __future__ import annotations

import os
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from linop_core.dicom import DicomImage, DicomMeta, VoiWindow
from linop_core.errors import LinopError
from linop_core.study import Answer, AnswerStore, CaseView, Confidence, ReadingSession, Study, Truth
from linop_gui.workspace import Observers


def case_image(view: CaseView) -> DicomImage:
    """The viewer's image of a case: the shown pixels and the case's window, under a header that says nothing."""
    pixels = view.pixels
    h, w = pixels.shape
    lo, hi = (float(pixels.min()), float(pixels.max())) if pixels.size else (0.0, 0.0)
    meta = DicomMeta(
        path="", sop_instance_uid=None, study_instance_uid=None, laterality=None, view_position=None,
        manufacturer=None, manufacturer_model=None, modality=None, photometric_interpretation="MONOCHROME2",
        presentation_lut_shape=None, bits_stored=16, pixel_spacing_mm=None,
        windows=(VoiWindow(view.window.center, view.window.width, "case window"),),
        voi_lut_function=view.window_function, has_voi_lut_sequence=False, padding_value=None,
        presentation_intent_type=None, transfer_syntax_uid="", rows=h, columns=w,
    )  # fmt: skip
    return DicomImage(pixels=pixels, meta=meta, inverted=False, padding_mask=np.zeros((h, w), dtype=bool),
                      value_range=(lo, hi))


@dataclass(frozen=True)
class ReadingSummary:
    """What the finished screen says: the reader's own effort, never the truth."""

    answered: int
    total: int
    marked: int
    median_seconds: float
    by_confidence: dict[Confidence, int]

    def lines(self) -> list[str]:
        spread = ", ".join(f"{c.text} ×{self.by_confidence.get(c, 0)}" for c in Confidence)
        return [
            f"{self.answered} of {self.total} cases answered.",
            f"Lesion marked on {self.marked} case(s); median time per case {self.median_seconds:.1f} s.",
            f"Your answers: {spread}.",
        ]


class ReadingState:
    """See the module docstring. Observers: ``case_changed(view | None)`` (another case, or finished) and
    ``changed()`` (mark, awaited choice or progress)."""

    def __init__(self, session: ReadingSession, study_path: str | os.PathLike[str]) -> None:
        self.session = session
        self.study_path = Path(study_path)
        self.mark: tuple[float, float] | None = None  # (x, y) in the shown pixels
        self.awaiting_choice = False
        self.case_changed: Observers[[CaseView | None]] = Observers()
        self.changed: Observers[[]] = Observers()
        self._show_earlier()

    @classmethod
    def open(cls, study_path: str | os.PathLike[str], reader: str, *, verify_hashes: bool = True) -> ReadingState:
        """The core session (moved inputs raise a one-line :class:`~linop_core.errors.DataError`), resumed."""
        return cls(ReadingSession.open(study_path, reader, verify_hashes=verify_hashes), study_path)

    # -- what is shown ---------------------------------------------------------------------------------------
    @property
    def reader(self) -> str:
        return self.session.reader

    @property
    def case(self) -> CaseView | None:
        """The current case (loaded on first use; a case whose file went missing raises DataError)."""
        return self.session.current_case()

    @property
    def finished(self) -> bool:
        return self.session.progress.position >= self.session.progress.total

    @property
    def earlier(self) -> Answer | None:
        """This reader's earlier answer to the current case (after ``back``), or None."""
        return self.session.current_answer()

    def progress_text(self) -> str:
        """``"12 / 100"``: the place of the current case in the reader's order."""
        progress = self.session.progress
        return f"{min(progress.position + 1, progress.total)} / {progress.total}"

    def answered_text(self) -> str:
        progress = self.session.progress
        return f"{progress.done} of {progress.total} answered"

    # -- the mark --------------------------------------------------------------------------------------------
    def place_mark(self, x: float, y: float) -> bool:
        """Mark (x, y) of the shown pixels; False (nothing changes) outside the case's pixels."""
        view = self.case
        if view is None:
            return False
        h, w = view.pixels.shape
        if not (0 <= x <= w and 0 <= y <= h):
            return False
        self.mark = (float(x), float(y))
        self.changed.notify()
        return True

    def clear_mark(self) -> None:
        if self.mark is not None:
            self.mark = None
            self.changed.notify()

    # -- answering -------------------------------------------------------------------------------------------
    def press(self, confidence: Confidence | int) -> Answer | None:
        """A confidence key: saved at once (the next case follows), except 3, which awaits the forced choice."""
        confidence = Confidence(confidence)
        if self.case is None:
            return None
        if confidence.implied_label() is None:
            self.awaiting_choice = True
            self.changed.notify()
            return None
        return self._answer(confidence, None)

    def choose(self, label: Truth | str) -> Answer | None:
        """The forced choice after 3; None when no 3 is awaiting it."""
        if not self.awaiting_choice:
            return None
        return self._answer(Confidence.UNSURE, Truth(label))

    def cancel_choice(self) -> bool:
        if not self.awaiting_choice:
            return False
        self.awaiting_choice = False
        self.changed.notify()
        return True

    def _answer(self, confidence: Confidence, label: Truth | None) -> Answer:
        view = self.case
        assert view is not None
        mark = view.to_image(*self.mark) if self.mark is not None else None
        answer = self.session.answer(confidence, label=label, mark=mark)  # saved atomically before it returns
        self._moved()
        return answer

    # -- moving ----------------------------------------------------------------------------------------------
    def back(self) -> bool:
        return self._move(self.session.back())

    def forward(self) -> bool:
        return self._move(self.session.forward())

    def skip(self) -> bool:
        return self._move(self.session.skip())

    def _move(self, moved: bool) -> bool:
        if moved:
            self._moved()
        return moved

    def _moved(self) -> None:
        self.awaiting_choice = False
        self._show_earlier()
        self.case_changed.notify(None if self.finished else self.case)
        self.changed.notify()

    def _show_earlier(self) -> None:
        """The mark of the earlier answer to the current case, in the shown pixels (else none)."""
        self.mark = None
        earlier = self.earlier
        if earlier is None or earlier.mark is None or self.finished:
            return
        try:
            view = self.case
        except LinopError:
            return  # the window says why the case cannot be shown
        if view is not None:
            self.mark = (earlier.mark[0] - view.crop_box[0], earlier.mark[1] - view.crop_box[1])

    # -- the end ---------------------------------------------------------------------------------------------
    def summary(self) -> ReadingSummary:
        """The reader's answers so far (read back from their answers file), without the truth."""
        answers = AnswerStore(Study.load(self.study_path), self.reader).answers()
        seconds = [a.seconds for a in answers.values()]
        return ReadingSummary(
            answered=len(answers), total=self.session.progress.total,
            marked=sum(a.mark is not None for a in answers.values()),
            median_seconds=statistics.median(seconds) if seconds else 0.0,
            by_confidence=dict(Counter(a.confidence for a in answers.values())),
        )  # fmt: skip

    def close(self) -> None:
        self.session.close()
