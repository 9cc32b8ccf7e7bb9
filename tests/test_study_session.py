"""The Qt-free reading session: per-reader order, answering, back / forward / skip, resume after a crash or a
kill, and malformed answers files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from study_inputs import phantom_inputs

import linop_core
from linop_core.errors import DataError, LinopError
from linop_core.study import (
    AnswerStore,
    Confidence,
    DisplayMode,
    ReadingSession,
    Study,
    StudyOptions,
    Truth,
    create_study,
    load_all_answers,
    reader_order,
)
from linop_core.study.answers import answers_path


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def study_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root, set_path = phantom_inputs(tmp_path_factory, "mammo")
    options = StudyOptions(
        cases=8, synthetic_share=0.5, mode=DisplayMode.CROP, crop_size=128, seed=11,
        decisions=("approved", "pending"), size_tolerance=3.0, match_density=False,
    )  # fmt: skip
    return create_study([set_path], root, options).save(tmp_path_factory.mktemp("study") / "study.json").path


@pytest.fixture
def study(study_path: Path, tmp_path: Path) -> Study:
    """A copy of the study in this test's folder, so each test starts without answers."""
    copy = tmp_path / "study.json"
    copy.write_bytes(study_path.read_bytes())
    return Study.load(copy)


def test_each_reader_has_a_stable_order_of_their_own(study: Study) -> None:
    a, b = reader_order(study, "reader1"), reader_order(study, "reader2")
    assert sorted(a) == sorted(b) == sorted(study.case_ids)
    assert a == reader_order(study, "reader1")
    assert a != b


def test_answering_moves_on_and_times_the_case(study: Study) -> None:
    clock = FakeClock()
    session = ReadingSession(study, "reader1", clock=clock, utc_now=lambda: "2025-01-01T00:00:00Z")
    order = reader_order(study, "reader1")
    assert session.progress.done == 0 and session.progress.total == len(study.cases)
    view = session.current_case()
    assert view is not None
    clock.now += 7.5
    answer = session.answer(Confidence.PROBABLY_SYNTHETIC, mark=view.to_image(3, 4))
    assert answer.case_id == order[0] and answer.label is Truth.SYNTHETIC and answer.seconds == 7.5
    assert answer.mark == view.to_image(3, 4)
    assert session.progress.done == 1 and session.progress.position == 1
    with pytest.raises(LinopError, match="forced choice"):
        session.answer(Confidence.UNSURE)
    with pytest.raises(LinopError, match="contradicts"):
        session.answer(Confidence.CERTAINLY_REAL, label=Truth.SYNTHETIC)
    with pytest.raises(LinopError, match="outside"):
        session.answer(Confidence.CERTAINLY_REAL, mark=(-5.0, 1.0))
    session.answer(Confidence.UNSURE, label="real")
    assert session.back() and session.current_answer() is not None
    assert session.current_answer().confidence is Confidence.UNSURE
    session.answer(Confidence.CERTAINLY_REAL)  # a changed answer: the last one counts, the first is kept
    assert AnswerStore(study, "reader1").answers()[order[1]].confidence is Confidence.CERTAINLY_REAL
    assert len(AnswerStore(study, "reader1").log) == 3
    session.close()


def test_skip_back_forward_and_finish(study: Study) -> None:
    session = ReadingSession(study, "reader2")
    order = reader_order(study, "reader2")
    assert session.skip() and session.progress.position == 1
    for _ in range(len(order) - 1):
        session.answer(Confidence.CERTAINLY_REAL)
    assert session.progress.position == 0, "the skipped case comes round again after the last one"
    assert not session.skip(), "no other unanswered case"
    session.answer(Confidence.CERTAINLY_SYNTHETIC)
    assert session.is_finished and session.current_case() is None
    with pytest.raises(LinopError, match="every case is answered"):
        session.answer(Confidence.CERTAINLY_REAL)
    assert session.back() and session.progress.position == len(order) - 1
    assert not session.forward()
    assert session.back() and session.forward()
    session.close()


def test_resume_after_a_crash_keeps_every_answer(study: Study) -> None:
    first = ReadingSession(study, "reader3")
    given = [first.answer(c) for c in (Confidence.CERTAINLY_REAL, Confidence.PROBABLY_SYNTHETIC, 5)]
    del first  # a crash: no close, nothing flushed on purpose
    again = ReadingSession(study, "reader3")
    order = reader_order(study, "reader3")
    assert again.progress.done == 3 and again.progress.position == 3
    assert [again._store.answers()[case_id] for case_id in order[:3]] == given
    assert load_all_answers(study)["reader3"] == {a.case_id: a for a in given}
    again.close()


def test_readers_are_kept_apart(study: Study) -> None:
    with ReadingSession(study, "alice") as alice, ReadingSession(study, "bob") as bob:
        alice.answer(Confidence.CERTAINLY_REAL)
        bob.answer(Confidence.CERTAINLY_SYNTHETIC)
        bob.answer(Confidence.CERTAINLY_SYNTHETIC)
    assert answers_path(study.path, "alice") != answers_path(study.path, "bob")
    answers = load_all_answers(study)
    assert len(answers["alice"]) == 1 and len(answers["bob"]) == 2
    with pytest.raises(LinopError, match="reader name"):
        ReadingSession(study, "../evil")


# Answers (and, once every case is answered, re-answers the last case) until killed, so the kill lands at a
# random point, often in the middle of rewriting the answers file; each answer is acknowledged once saved.
_KILL_SCRIPT = """
import sys
from linop_core.study import ReadingSession
session = ReadingSession.open(sys.argv[1], "killed", verify_hashes=False)
saved = 0
while True:
    if session.is_finished:
        session.back()
    confidence = 1 + saved % 5
    session.answer(confidence, label="real" if confidence == 3 else None)
    saved += 1
    print("saved", saved, flush=True)
"""


def test_answers_survive_a_kill(study: Study) -> None:
    here = str(Path(linop_core.__file__).resolve().parents[1])  # this checkout, installed or not
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, str(study.path)], stdout=subprocess.PIPE, text=True, env=env
    )
    saved = 0
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while saved < 2 * len(study.cases) and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        saved = int(line.split()[1])
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert saved >= 2 * len(study.cases), "the reader process did not get through the study twice"
    store = AnswerStore(study, "killed")  # the file parses: the kill left the old or the new version
    assert len(store.log) >= saved, "an acknowledged answer was lost"
    assert len(store.answers()) == len(study.cases)
    resumed = ReadingSession(study, "killed")
    assert resumed.is_finished and resumed.progress.done == len(study.cases)
    resumed.close()


def test_malformed_answers_file_names_file_and_line(study: Study) -> None:
    session = ReadingSession(study, "reader4")
    session.answer(Confidence.CERTAINLY_REAL)
    session.answer(Confidence.CERTAINLY_REAL)
    session.close()
    path = answers_path(study.path, "reader4")
    lines = path.read_text().splitlines()
    bad = lines[2].replace('"confidence": 1', '"confidence": 9')
    path.write_text("\n".join([*lines[:2], bad]) + "\n")
    with pytest.raises(DataError) as info:
        ReadingSession(study, "reader4")
    assert str(info.value).startswith(f"{path}:3: not a valid answer") and "\n" not in str(info.value)
    path.write_text("\n".join([lines[0], lines[1][:-3]]) + "\n")
    with pytest.raises(DataError, match=r"reader4\.jsonl:2: not valid JSON"):
        load_all_answers(study)
    path.write_text(lines[0].replace(study.study_uid, "0" * 16) + "\n")
    with pytest.raises(DataError, match="another study file"):
        AnswerStore(study, "reader4")
