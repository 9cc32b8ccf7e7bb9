"""The reading view of a reader study (``linop-gui --study STUDY``): one case at a time at full resolution in the
usual image view, an answer bar, and nothing that gives the answer away.

No corner texts, ids, file names, boxes, findings, thumbnails, browser or tag browser: the window shows the
blinded pixels of :class:`~linop_core.study.CaseView` and the reader's own progress. Keys come from the "Reader
study" context of the one shortcut table (H lists them): 1-5 answer, R / S give the forced choice after 3, a click
marks the lesion (Del clears it), ←/→ go back and forward, K skips. Every answer is saved atomically by the core
before the next case shows, so closing the window is pausing; opening the study again with the same reader
resumes at the first unanswered case.

State is :class:`~linop_gui.reading_state.ReadingState` (Qt-free); this window only shows it and forwards input.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QCloseEvent, QShowEvent
from PySide6.QtWidgets import QLabel, QMainWindow, QStackedWidget, QVBoxLayout, QWidget

from linop_core.errors import LinopError
from linop_core.study import Answer, CaseView, Confidence, Truth
from linop_gui.reading_state import ReadingState, case_image
from linop_gui.reading_view import AnswerBar, CaseViewer, FinishedPage
from linop_gui.shortcuts import READER_MOUSE_BINDINGS, ShortcutContext, ShortcutDialog, for_context
from linop_gui.theme import app_icon
from linop_gui.window_actions import ActionSet
from linop_gui.window_layout import default_geometry
from linop_gui.window_status import APP_NAME
from linop_gui.workspace import MessageLevel

ZOOM_STEP = 1.25


def earlier_text(answer: Answer | None) -> str:
    """What the bar says of an earlier answer to the case on screen (the reader's own, after Back)."""
    if answer is None:
        return ""
    lean = f", leaning {answer.label}" if answer.confidence is Confidence.UNSURE else ""
    return f"Your answer: {int(answer.confidence)} {answer.confidence.text}{lean} (answering again replaces it)"


class ReadingWindow(QMainWindow):
    """See the module docstring. ``case_shown`` fires when a case is on screen, ``finished_shown`` at the end."""

    case_shown = Signal()
    finished_shown = Signal()

    def __init__(self, state: ReadingState, *, theme: str = "dark") -> None:
        super().__init__()
        self.state = state
        self.setWindowTitle(f"Reader study · {state.reader} — {APP_NAME}")
        self.setWindowIcon(app_icon())
        self.commands = ActionSet(self, for_context(ShortcutContext.READER), theme)
        self.viewer = CaseViewer(self)
        self.bar = AnswerBar(self)
        self.finished_page = FinishedPage(self)
        reading = QWidget(self)
        column = QVBoxLayout(reading)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.viewer, 1)
        column.addWidget(self.bar)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(reading)
        self.stack.addWidget(self.finished_page)
        self.setCentralWidget(self.stack)
        self.reader_label = QLabel(f"Reader: {state.reader}", self)
        self.reader_label.setToolTip("Your answers are kept apart from every other reader's")
        self.statusBar().addPermanentWidget(self.reader_label)
        self._build_menus()
        self._connect()
        default_geometry(self)
        self.show_case()

    # -- construction ----------------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        a = self.commands
        study = self.menuBar().addMenu("&Study")
        for action_id in ("case_back", "case_forward", "case_skip"):
            study.addAction(a[action_id])
        study.addSeparator()
        study.addAction(a["pause"])
        view = self.menuBar().addMenu("&View")
        presets = view.addMenu("Window &presets")
        for n in range(1, 5):
            presets.addAction(a[f"read_preset_{n}"])
        for action_id in ("read_invert", "read_reset_view", None, "read_fit", "read_one_to_one", "read_zoom_in",
                          "read_zoom_out", None, "read_full_screen"):
            if action_id is None:
                view.addSeparator()
            else:
                view.addAction(a[action_id])
        self.menuBar().addMenu("&Help").addAction(a["read_shortcuts"])

    def _connect(self) -> None:
        a, viewer, bar, state = self.commands, self.viewer, self.bar, self.state
        handlers: dict[str, Callable[[], object]] = {
            "choose_real": lambda: self.choose(Truth.REAL), "choose_synthetic": lambda: self.choose(Truth.SYNTHETIC),
            "cancel_choice": state.cancel_choice, "clear_mark": state.clear_mark,
            "case_back": state.back, "case_forward": state.forward, "case_skip": self.skip, "pause": self.close,
            "read_fit": viewer.fit, "read_one_to_one": viewer.one_to_one,
            "read_zoom_in": lambda: viewer.zoom_by(ZOOM_STEP), "read_zoom_out": lambda: viewer.zoom_by(1 / ZOOM_STEP),
            "read_reset_view": self.reset_view, "read_shortcuts": self.show_shortcuts,
        }
        for n in range(1, 6):
            handlers[f"answer_{n}"] = lambda n=n: self.answer(n)
        for n in range(1, 5):
            handlers[f"read_preset_{n}"] = lambda n=n: self._preset(n - 1)
        for action_id, handler in handlers.items():
            a[action_id].triggered.connect(lambda _=False, h=handler: h())
        a["read_invert"].toggled.connect(viewer.set_inverted)
        a["read_full_screen"].toggled.connect(lambda on: self.showFullScreen() if on else self.showNormal())
        bar.answered.connect(self.answer)
        bar.chose.connect(self.choose)
        bar.cancelled.connect(state.cancel_choice)
        bar.back.connect(state.back)
        bar.forward.connect(state.forward)
        bar.skip.connect(self.skip)
        viewer.image_clicked.connect(self._on_image_clicked)
        viewer.mark_moved.connect(self._on_image_clicked)
        viewer.message.connect(lambda text: self.statusBar().showMessage(text, 3000))
        self.finished_page.review.connect(state.back)
        self.finished_page.close_requested.connect(self.close)
        state.case_changed.connect(lambda view: self.show_case())
        state.changed.connect(self.refresh)

    # -- input -----------------------------------------------------------------------------------------------
    def answer(self, value: int) -> None:
        """A confidence key or button: saved at once, except 3 (the forced choice comes first)."""
        self._act(lambda: self.state.press(Confidence(value)))

    def choose(self, label: Truth | str) -> None:
        if not self.state.awaiting_choice:
            self.statusBar().showMessage("R and S answer after 3 (unsure): press 3 first", 4000)
            return
        self._act(lambda: self.state.choose(label))

    def skip(self) -> None:
        if not self.state.skip():
            self.statusBar().showMessage("No other unanswered case to go to", 4000)

    def _act(self, action: Callable[[], object]) -> None:
        try:
            answer = action()
        except LinopError as exc:
            self.viewer.show_message(str(exc), MessageLevel.ERROR)
            return
        if answer is not None:
            self.statusBar().showMessage(f"Saved: {int(answer.confidence)} {answer.confidence.text}"
                                         f"{' (' + answer.label + ')' if answer.confidence == 3 else ''}", 3000)

    def _on_image_clicked(self, x: float, y: float) -> None:
        if not self.state.place_mark(x, y):
            self.refresh()  # a mark dragged off the image goes back where it was

    def _preset(self, index: int) -> None:
        if not self.viewer.apply_preset(index):
            self.statusBar().showMessage(f"This case has no window preset {index + 1}", 3000)

    def reset_view(self) -> None:
        with QSignalBlocker(self.commands["read_invert"]):
            self.commands["read_invert"].setChecked(False)
        self.viewer.reset()

    def show_shortcuts(self) -> None:
        dialog = ShortcutDialog(self.commands.specs, self, mouse_bindings=READER_MOUSE_BINDINGS)
        dialog.setWindowTitle("Keyboard shortcuts: reader study")
        dialog.show()
        self._shortcut_dialog = dialog

    # -- what is shown ---------------------------------------------------------------------------------------
    def show_case(self) -> None:
        """The current case in the viewer, or the finished page."""
        if self.state.finished:
            self.finished_page.show_summary(self.state.reader, self.state.summary())
            self.stack.setCurrentWidget(self.finished_page)
            self.refresh()
            self.finished_shown.emit()
            return
        self.stack.setCurrentIndex(0)
        try:
            view: CaseView | None = self.state.case
        except LinopError as exc:
            self.viewer.clear(str(exc))
            self.viewer.show_message(f"{exc} (K skips this case)", MessageLevel.ERROR)
            self.refresh(enabled=False)
            return
        assert view is not None
        self.viewer.inverted = self.commands["read_invert"].isChecked()
        self.viewer.set_image(case_image(view))
        self.viewer.message_bar.hide()
        self.refresh()
        self.case_shown.emit()

    def refresh(self, *, enabled: bool = True) -> None:
        state = self.state
        progress = state.session.progress
        earlier = state.earlier
        self.viewer.show_mark(state.mark if not state.finished else None)
        self.bar.show_state(
            progress=state.progress_text(), answered=state.answered_text(),
            earlier=earlier.confidence if earlier is not None else None, awaiting=state.awaiting_choice,
            marked=state.mark is not None, can_back=progress.position > 0,
            can_forward=progress.position + 1 < progress.total, can_skip=not state.finished, enabled=enabled,
            earlier_text=earlier_text(earlier),
        )  # fmt: skip

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not event.spontaneous():
            self.viewer.setFocus(Qt.FocusReason.ActiveWindowFocusReason)  # the answer keys act at once

    def closeEvent(self, event: QCloseEvent) -> None:
        self.state.close()  # nothing to flush: every answer was saved when it was given
        super().closeEvent(event)
