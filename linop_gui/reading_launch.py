"""Starting a reader study in the desktop app: who is reading (asked once, remembered), opening the study (moved
inputs said in one clear message with the fix), and the reading window."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QInputDialog, QLineEdit, QMessageBox, QWidget

from linop_core.errors import LinopError
from linop_core.study.answers import check_reader_name
from linop_gui.reading_state import ReadingState
from linop_gui.reading_window import ReadingWindow
from linop_gui.settings import Settings

READER_PROMPT = ("Your reader name (a pseudonym such as reader1; letters, digits, '.', '_' or '-').\n"
                 "Your answers are kept under it, apart from every other reader's; the same name resumes.")


def ask_reader(settings: Settings, parent: QWidget | None = None) -> str | None:
    """The reader's name from a small dialog (the last one offered), checked; None when cancelled."""
    name = settings.study_reader
    prompt = READER_PROMPT
    while True:
        name, ok = QInputDialog.getText(parent, "Reader study", prompt, QLineEdit.EchoMode.Normal, name)
        if not ok:
            return None
        name = name.strip()
        try:
            return check_reader_name(name)
        except LinopError as exc:
            prompt = f"{exc}\n\n{READER_PROMPT}"


def problem_box(study: str | Path, error: LinopError, parent: QWidget | None = None) -> QMessageBox:
    """The message for a study that cannot be opened (moved inputs name every missing file and the fix)."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Critical)
    box.setWindowTitle("Reader study")
    box.setText(f"The reader study {Path(study).name} cannot be opened.")
    box.setInformativeText(str(error))
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    box.setStandardButtons(QMessageBox.StandardButton.Close)
    return box


def open_study(settings: Settings, study: str | Path, reader: str, *, parent: QWidget | None = None,
               show_problem: Callable[[QMessageBox], object] = QMessageBox.exec) -> ReadingWindow | None:
    """The reading window of ``study`` for ``reader``, shown (and the name remembered); None when the study cannot
    be opened, which is said on stderr and in the box ``show_problem`` gets."""
    QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)  # the sets' checksums take a moment
    try:
        state = ReadingState.open(study, reader)
    except LinopError as exc:
        QGuiApplication.restoreOverrideCursor()
        print(f"linop-gui: {exc}", file=sys.stderr)
        show_problem(problem_box(study, exc, parent))
        return None
    QGuiApplication.restoreOverrideCursor()
    settings.study_reader = reader
    window = ReadingWindow(state, theme=settings.theme)
    window.showMaximized()  # reading is the one job on screen: the image gets all of it
    return window
