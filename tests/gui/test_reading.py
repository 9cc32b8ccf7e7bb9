"""The reading view of a reader study (``linop-gui --study``): keys 1-5 and the forced choice at 3, the lesion mark,
back / forward / skip, progress, the finished page, blinding, resume after a kill, moved inputs and the reader name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QAction, QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractButton, QApplication, QLabel, QMessageBox
from shortcut_checks import listed_and_bound_keys
from study_inputs import phantom_inputs

import linop_gui
from linop_core.study import AnswerStore, Confidence, DisplayMode, Study, StudyOptions, Truth, create_study
from linop_gui.reading_state import ReadingState
from linop_gui.reading_window import ReadingWindow

N_CASES = 6


@pytest.fixture(scope="module")
def study_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """``(study, root, set)``: a small crop study of the phantom inputs, made once."""
    root, set_path = phantom_inputs(tmp_path_factory, "mammo")
    options = StudyOptions(
        cases=N_CASES, synthetic_share=0.5, mode=DisplayMode.CROP, crop_size=128, seed=5,
        decisions=("approved", "pending"), size_tolerance=3.0, match_density=False,
    )  # fmt: skip
    study = create_study([set_path], root, options).save(tmp_path_factory.mktemp("reading") / "study.json")
    return study.path, root, set_path


@pytest.fixture
def study_path(study_source, tmp_path: Path) -> Path:
    """A copy of the study in this test's folder: no answers yet."""
    copy = tmp_path / "study.json"
    copy.write_bytes(study_source[0].read_bytes())
    return copy


def open_window(qtbot, study_path: Path, reader: str = "alice") -> ReadingWindow:
    window = ReadingWindow(ReadingState.open(study_path, reader, verify_hashes=False))
    qtbot.addWidget(window)
    window.resize(1200, 800)
    with qtbot.waitActive(window):  # the reading keys are the window's shortcuts
        window.show()
        window.activateWindow()
    return window


def key(qtbot, window: ReadingWindow, k: Qt.Key) -> None:
    """A key press delivered like a real one: to the focus widget (the window's shortcuts take it)."""
    QTest.keyClick(QApplication.focusWidget() or window, k)
    qtbot.wait(5)


def click_case(qtbot, window: ReadingWindow, fx: float, fy: float) -> None:
    h, w = window.viewer.image.pixels.shape
    QTest.mouseClick(window.viewer.graphics.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     QPoint(*window.viewer.map_image_to_widget(w * fx, h * fy)))
    qtbot.wait(5)


def saved(study_path: Path, reader: str = "alice") -> dict:
    return AnswerStore(Study.load(study_path), reader).answers()


def test_keys_answer_and_the_forced_choice_waits_at_3(qtbot, study_path: Path) -> None:
    window = open_window(qtbot, study_path)
    state, bar = window.state, window.bar
    assert bar.progress_label.text() == f"1 / {N_CASES}" and bar.answered_label.text() == f"0 of {N_CASES} answered"
    first = state.case
    click_case(qtbot, window, 0.25, 0.75)  # the optional mark
    assert state.mark is not None and window.viewer.mark_position() == pytest.approx(state.mark)
    assert "Lesion marked" in bar.mark_label.text()
    expected_mark = first.to_image(*state.mark)
    key(qtbot, window, Qt.Key.Key_4)
    answers = saved(study_path)
    assert len(answers) == 1
    (answer,) = answers.values()
    assert answer.confidence is Confidence.PROBABLY_SYNTHETIC and answer.label is Truth.SYNTHETIC
    assert answer.mark == pytest.approx(expected_mark)
    assert bar.progress_label.text() == f"2 / {N_CASES}" and state.mark is None and not window.viewer.marker.isVisible()

    key(qtbot, window, Qt.Key.Key_3)  # unsure: nothing saved until real or synthetic is chosen
    assert state.awaiting_choice and bar.choice.isVisible() and len(saved(study_path)) == 1
    key(qtbot, window, Qt.Key.Key_Escape)
    assert not state.awaiting_choice and not bar.choice.isVisible()
    key(qtbot, window, Qt.Key.Key_S)  # S without a 3 first answers nothing
    assert len(saved(study_path)) == 1 and bar.progress_label.text() == f"2 / {N_CASES}"
    key(qtbot, window, Qt.Key.Key_3)
    key(qtbot, window, Qt.Key.Key_R)
    answers = saved(study_path)
    assert len(answers) == 2 and bar.progress_label.text() == f"3 / {N_CASES}"
    unsure = [a for a in answers.values() if a.confidence is Confidence.UNSURE]
    assert len(unsure) == 1 and unsure[0].label is Truth.REAL and unsure[0].mark is None

    # Back: the earlier answer is shown (button checked); forward returns; K skips to the next unanswered.
    key(qtbot, window, Qt.Key.Key_Left)
    assert bar.progress_label.text() == f"2 / {N_CASES}" and bar.group.button(3).isChecked()
    key(qtbot, window, Qt.Key.Key_Left)
    assert state.mark == pytest.approx((expected_mark[0] - first.crop_box[0], expected_mark[1] - first.crop_box[1]))
    assert window.viewer.marker.isVisible() and bar.group.button(4).isChecked()
    key(qtbot, window, Qt.Key.Key_Delete)
    assert state.mark is None and not window.viewer.marker.isVisible()
    key(qtbot, window, Qt.Key.Key_Right)
    key(qtbot, window, Qt.Key.Key_Right)
    assert bar.progress_label.text() == f"3 / {N_CASES}" and not any(b.isChecked() for b in bar.group.buttons())
    key(qtbot, window, Qt.Key.Key_K)
    assert bar.progress_label.text() == f"4 / {N_CASES}"

    # Answer the rest (the skipped case comes round again after the last one), then the finished page.
    for _ in range(N_CASES - 2):
        key(qtbot, window, Qt.Key.Key_1)
    assert window.stack.currentWidget() is window.finished_page
    assert len(saved(study_path)) == N_CASES
    summary = window.finished_page.summary_label.text()
    assert f"{N_CASES} of {N_CASES} cases answered" in summary and "certainly real ×4" in summary
    window.finished_page.back_button.click()
    assert window.stack.currentIndex() == 0 and bar.progress_label.text() == f"{N_CASES} / {N_CASES}"


def test_a_click_outside_the_case_marks_nothing_and_a_bar_click_answers(qtbot, study_path: Path) -> None:
    window = open_window(qtbot, study_path)
    click_case(qtbot, window, 1.5, 0.5)
    assert window.state.mark is None
    window.bar.group.button(5).click()
    assert [a.confidence for a in saved(study_path).values()] == [Confidence.CERTAINLY_SYNTHETIC]
    window.bar.group.button(3).click()
    window.bar.synthetic_button.click()
    assert len(saved(study_path)) == 2


def _mouse(viewport, kind: QEvent.Type, pos: QPoint, buttons: Qt.MouseButton) -> None:
    button = Qt.MouseButton.LeftButton if kind != QEvent.Type.MouseMove else Qt.MouseButton.NoButton
    event = QMouseEvent(kind, QPointF(pos), QPointF(viewport.mapToGlobal(pos)), button, buttons,
                        Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(viewport, event)


def test_the_mark_is_dragged_to_where_the_reader_means(qtbot, study_path: Path) -> None:
    window = open_window(qtbot, study_path)
    viewer, state = window.viewer, window.state
    h, w = viewer.image.pixels.shape
    click_case(qtbot, window, 0.3, 0.3)
    start = QPoint(*viewer.map_image_to_widget(*state.mark))
    end = QPoint(*viewer.map_image_to_widget(w * 0.7, h * 0.6))
    port = viewer.graphics.viewport()
    held = Qt.MouseButton.LeftButton
    _mouse(port, QEvent.Type.MouseMove, start, Qt.MouseButton.NoButton)
    _mouse(port, QEvent.Type.MouseButtonPress, start, held)
    for t in (0.2, 0.4, 0.6, 0.8, 1.0):
        _mouse(port, QEvent.Type.MouseMove, start + (end - start) * t, held)
        qtbot.wait(5)
    _mouse(port, QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton)
    qtbot.wait(10)
    assert state.mark == pytest.approx((w * 0.7, h * 0.6), abs=2.0)
    view = state.case
    key(qtbot, window, Qt.Key.Key_5)
    (answer,) = saved(study_path).values()
    assert answer.mark == pytest.approx(view.to_image(w * 0.7, h * 0.6), abs=2.0)


def _visible_texts(window: ReadingWindow) -> list[str]:
    texts = [window.windowTitle(), window.statusBar().currentMessage()]
    for widget in window.findChildren(QLabel) + window.findChildren(QAbstractButton):
        if widget.isVisible():
            texts += [widget.text(), widget.toolTip()]
    texts += [a.text() + a.toolTip() for a in window.findChildren(QAction)]
    texts += [*window.viewer.overlay_text().values(), window.viewer.placeholder_text()]
    return texts


def test_nothing_on_screen_gives_the_answer_away(qtbot, study_path: Path, study_source) -> None:
    _, root, set_path = study_source
    study = Study.load(study_path)
    secrets = {study.study_uid, set_path.name, str(set_path), str(root), "study.json", "truth"}
    secrets |= {case.case_id for case in study.cases}
    secrets |= {p.name for p in root.rglob("*.dicom")} | {p.stem for p in root.rglob("*.dicom")}
    secrets |= {p.parent.name for p in root.rglob("*.dicom")}  # VinDr study ids
    window = open_window(qtbot, study_path)
    for position in range(N_CASES):
        image = window.viewer.image
        assert image.meta.path == "" and image.meta.sop_instance_uid is None and image.meta.manufacturer is None
        shown = "\n".join(_visible_texts(window)).lower()
        leaked = sorted(s for s in secrets if s.lower() in shown)
        assert not leaked, f"case {position + 1}: {leaked}"
        assert not any(window.viewer.overlay_text().values())
        assert window.viewer.layer.rois == [] and window.viewer.entry is None
        key(qtbot, window, Qt.Key.Key_2)
    shown = "\n".join(_visible_texts(window)).lower()
    assert not sorted(s for s in secrets if s.lower() in shown)


# Answers with keys in a real reading window (2, or 3 then S, in turn), reports each answer, then sits on the next
# case as a reader thinking would, until killed.
_READER_SCRIPT = textwrap.dedent("""
    import sys, time
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication
    app = QApplication([])
    from linop_gui.reading_state import ReadingState
    from linop_gui.reading_window import ReadingWindow
    window = ReadingWindow(ReadingState.open(sys.argv[1], "killed", verify_hashes=False))
    window.show()
    window.activateWindow()
    QTest.qWaitForWindowExposed(window)
    for n in range(int(sys.argv[2])):
        for k in [Qt.Key.Key_2] if n % 2 == 0 else [Qt.Key.Key_3, Qt.Key.Key_S]:
            QTest.keyClick(window, k)
        app.processEvents()
        print("answered", window.state.session.progress.done, flush=True)
    print("thinking", flush=True)
    time.sleep(600)
""")


def test_resume_after_a_kill_continues_at_the_first_unanswered_case(qtbot, study_path: Path) -> None:
    here = str(Path(linop_gui.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]),
           "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.Popen([sys.executable, "-c", _READER_SCRIPT, str(study_path), "3"], stdout=subprocess.PIPE,
                            text=True, env=env)
    watchdog = threading.Timer(120, proc.kill)  # never hang the suite on a stuck child
    watchdog.start()
    acknowledged = 0
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("thinking"):
            break
        acknowledged = int(line.split()[1])
    proc.send_signal(signal.SIGKILL)  # no close, no flush: the reader's machine died
    proc.wait()
    watchdog.cancel()
    assert acknowledged >= 3, "the reader process did not answer three cases"
    answers = saved(study_path, "killed")
    assert len(answers) == acknowledged == 3
    assert {a.confidence for a in answers.values()} <= {Confidence.PROBABLY_REAL, Confidence.UNSURE}

    window = open_window(qtbot, study_path, "killed")
    done = len(answers)
    assert window.state.session.progress.done == done
    assert window.bar.progress_label.text() == f"{done + 1} / {N_CASES}"  # answered in order: the next one
    assert window.state.earlier is None and window.bar.answered_label.text() == f"{done} of {N_CASES} answered"
    key(qtbot, window, Qt.Key.Key_Left)
    assert window.state.earlier is not None  # the answers before the kill are there


def test_moved_inputs_are_named_with_the_fix(qtbot, study_path: Path, settings, tmp_path: Path) -> None:
    from linop_gui.app import main
    from linop_gui.reading_launch import open_study

    data = json.loads(study_path.read_text())
    data["sets"][0]["path"] = str(tmp_path / "moved" / "set.h5")
    data["root"] = str(tmp_path / "moved" / "root")
    study_path.write_text(json.dumps(data))
    boxes: list[QMessageBox] = []
    assert open_study(settings, study_path, "alice", show_problem=boxes.append) is None
    (box,) = boxes
    qtbot.addWidget(box)
    text = box.informativeText()
    assert str(tmp_path / "moved" / "set.h5") in text and str(tmp_path / "moved" / "root") in text
    assert "linop-study relocate" in text and "\n" not in text
    assert main(["--study", str(tmp_path / "nowhere.json"), "--reader", "alice"]) == 2
    assert main(["--study", str(study_path), "--reader", "../evil"]) == 2


def test_the_reader_is_asked_once_and_remembered(monkeypatch, settings) -> None:
    from PySide6.QtWidgets import QInputDialog

    from linop_gui.reading_launch import ask_reader

    asked: list[tuple[str, str]] = []
    replies = iter([("no spaces please", True), ("  bob  ", True)])

    def fake_get_text(parent, title, prompt, echo, text):
        asked.append((prompt, text))
        return next(replies)

    monkeypatch.setattr(QInputDialog, "getText", staticmethod(fake_get_text))
    settings.study_reader = "ann"
    assert ask_reader(settings) == "bob"
    assert asked[0][1] == "ann" and "must be 1-64 letters" in asked[1][0]
    monkeypatch.setattr(QInputDialog, "getText", staticmethod(lambda *a: ("", False)))
    assert ask_reader(settings) is None


def test_h_lists_every_key_of_the_reading_view(qtbot, study_path: Path) -> None:
    from linop_gui.shortcuts import duplicate_keys

    window = open_window(qtbot, study_path)
    assert duplicate_keys() == {} and duplicate_keys(window.commands.specs) == {}
    key(qtbot, window, Qt.Key.Key_H)
    dialog = window._shortcut_dialog
    qtbot.addWidget(dialog)
    listed, bound = listed_and_bound_keys(dialog, window)
    assert bound and bound <= listed, bound - listed
    assert {"1", "2", "3", "4", "5", "R", "S", "K", "Ctrl+1"} <= listed
    dialog.search.setText("synthetic")
    assert "Answer 5: certainly synthetic" in dialog.visible_actions()
