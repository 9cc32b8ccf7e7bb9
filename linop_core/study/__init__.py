"""Reader studies: a blinded visual Turing test of synthetic lesions against real ones, and its report.

Jobs, one module each:

* :mod:`~linop_core.study.model`: the study file (cases with their truth, source, lesion boxes and crop);
* :mod:`~linop_core.study.create`: drawing a study from synthetic sets and a VinDr root, with
  :mod:`~linop_core.study.matching` for the real lesions matched to the synthetic ones;
* :mod:`~linop_core.study.inputs`: moved, missing or changed inputs, and relocating a study;
* :mod:`~linop_core.study.views`: :class:`CaseView`, the blinded pixels a reader sees;
* :mod:`~linop_core.study.answers`: the 1-5 confidence scale and the per-reader answers files;
* :mod:`~linop_core.study.session`: :class:`ReadingSession`, one reader working through a study (Qt-free);
* :mod:`~linop_core.study.stats`, :mod:`~linop_core.study.report`, :mod:`~linop_core.study.plot`: AUC with a
  bootstrap interval, operating point, agreement, localisation; report.md / report.json / roc.png.

The command line is ``linop-study`` (:mod:`linop_core.cli.study`).
"""

from typing import Any

from linop_core.study.answers import SYNTHETIC_AT, Answer, AnswerStore, Confidence, answers_dir, load_all_answers
from linop_core.study.create import create_study
from linop_core.study.inputs import check_inputs, missing_inputs, relocate
from linop_core.study.model import DisplayMode, Study, StudyCase, StudyOptions, Truth
from linop_core.study.session import Progress, ReadingSession, reader_order
from linop_core.study.views import CaseView

__all__ = [
    "SYNTHETIC_AT",
    "Answer",
    "AnswerStore",
    "CaseView",
    "Confidence",
    "DisplayMode",
    "Progress",
    "ReadingSession",
    "Study",
    "StudyCase",
    "StudyOptions",
    "Truth",
    "answers_dir",
    "build_report",
    "check_inputs",
    "create_study",
    "load_all_answers",
    "missing_inputs",
    "reader_order",
    "relocate",
    "write_report",
]


def __getattr__(name: str) -> Any:
    # the report needs scikit-learn, SciPy, statsmodels and matplotlib: loaded on first use, not by a reading view
    if name in ("build_report", "write_report"):
        from linop_core.study import report

        return getattr(report, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
