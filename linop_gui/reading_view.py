"""The widgets of the reading view: the case viewer (the usual image view, blinded, with a movable lesion mark),
the answer bar (1-5, the forced choice after 3, back / skip / forward, progress) and the finished page.

They show a :class:`~linop_gui.reading_state.ReadingState` and hand clicks to it; they keep no state of their own.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPen
from PySide6.QtWidgets import (
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from linop_core.study import Confidence
from linop_gui.reading_state import ReadingSummary
from linop_gui.viewer import ImageViewer

MARK_COLOR = QColor(255, 64, 160)  # magenta: stands out on grey tissue, unlike the cyan / amber of boxes
MARK_SIZE = 28  # screen pixels, whatever the zoom


class CaseViewer(ImageViewer):
    """The image view of the reading mode: window/level, presets, invert, zoom and pan as everywhere, but no corner
    texts, findings or boxes; a left click emits ``image_clicked(x, y)`` (pixels of the shown region) and the mark
    is a target the reader can drag (``mark_moved(x, y)``)."""

    image_clicked = Signal(float, float)
    mark_moved = Signal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.show_findings = False
        self.set_show_overlays(False)
        self.set_placeholder("")
        pen = QPen(MARK_COLOR, 2.5)
        pen.setCosmetic(True)
        hover = QPen(QColor(255, 255, 255), 2.5)
        hover.setCosmetic(True)
        self.marker = pg.TargetItem(pos=(0, 0), size=MARK_SIZE, symbol="crosshair", pen=pen, hoverPen=hover,
                                    brush=QColor(255, 64, 160, 50), hoverBrush=QColor(255, 255, 255, 60),
                                    movable=True)
        self.marker.setZValue(40)
        self.marker.setToolTip("Your lesion mark: drag to move it, Del clears it")
        self.marker.hide()
        self.viewbox.addItem(self.marker, ignoreBounds=True)
        self.marker.sigPositionChangeFinished.connect(self._on_marker_dragged)

    def _handle_click(self, ev: object) -> bool:
        if self.image is not None and ev.button() == Qt.MouseButton.LeftButton:  # type: ignore[attr-defined]
            point = self._view_point(ev)
            ev.accept()  # type: ignore[attr-defined]
            self.image_clicked.emit(point.x(), point.y())
            return True
        return super()._handle_click(ev)

    def show_mark(self, mark: tuple[float, float] | None) -> None:
        if mark is None:
            self.marker.hide()
            return
        self.marker.setPos(QPointF(*mark))
        self.marker.show()

    def mark_position(self) -> tuple[float, float] | None:
        if not self.marker.isVisible():
            return None
        pos = self.marker.pos()
        return pos.x(), pos.y()

    def _on_marker_dragged(self, *args: object) -> None:
        pos = self.marker.pos()
        self.mark_moved.emit(pos.x(), pos.y())


def _big(label: QLabel, points: float, bold: bool = True) -> QLabel:
    font = QFont(label.font())
    font.setPointSizeF(points)
    font.setBold(bold)
    label.setFont(font)
    return label


class AnswerBar(QFrame):
    """1-5 buttons with the confidence texts, the forced choice after 3, back / skip / forward and the progress.

    Buttons are clicked, never focused, so the keys of the reading view always reach the window."""

    answered = Signal(int)  # a confidence 1-5
    chose = Signal(str)  # "real" | "synthetic" (after 3)
    cancelled = Signal()
    back = Signal()
    skip = Signal()
    forward = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("answerBar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.group = QButtonGroup(self)
        self.group.setExclusive(False)
        answers = QHBoxLayout()
        answers.setSpacing(6)
        for confidence in Confidence:
            button = QPushButton(f"{int(confidence)}  {confidence.text}", self)
            button.setCheckable(True)  # checked: the earlier answer of a case seen again
            button.setMinimumHeight(40)
            button.setToolTip(f"Key {int(confidence)}" + (": then R or S" if confidence is Confidence.UNSURE else ""))
            button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            self.group.addButton(button, int(confidence))
            answers.addWidget(button)
        self.group.idClicked.connect(self._on_clicked)

        self.back_button = QPushButton("◀ Back", self)
        self.skip_button = QPushButton("Skip (K)", self)
        self.forward_button = QPushButton("Forward ▶", self)
        self.back_button.setToolTip("The previous case (← or PgUp)")
        self.skip_button.setToolTip("Leave this case for later (K): it comes round again after the last one")
        self.forward_button.setToolTip("The next case in your order, answered or not (→ or PgDown)")
        self.back_button.clicked.connect(self.back)
        self.skip_button.clicked.connect(self.skip)
        self.forward_button.clicked.connect(self.forward)
        self.progress_label = _big(QLabel("", self), 16)
        self.progress_label.setToolTip("The place of this case in your order")
        self.answered_label = QLabel("", self)

        self.choice = QWidget(self)
        self.real_button = QPushButton("Real (R)", self.choice)
        self.synthetic_button = QPushButton("Synthetic (S)", self.choice)
        self.cancel_button = QPushButton("Cancel (Esc)", self.choice)
        self.real_button.clicked.connect(lambda: self.chose.emit("real"))
        self.synthetic_button.clicked.connect(lambda: self.chose.emit("synthetic"))
        self.cancel_button.clicked.connect(self.cancelled)
        choice_row = QHBoxLayout(self.choice)
        choice_row.setContentsMargins(0, 0, 0, 0)
        choice_row.addWidget(_big(QLabel("3 unsure: which way do you lean?", self.choice), 11))
        for button in (self.real_button, self.synthetic_button, self.cancel_button):
            button.setMinimumHeight(32)
            choice_row.addWidget(button)
        choice_row.addStretch(1)
        self.choice.hide()
        self.mark_label = QLabel("", self)

        for button in (*self.group.buttons(), self.back_button, self.skip_button, self.forward_button,
                       self.real_button, self.synthetic_button, self.cancel_button):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)

        top = QHBoxLayout()
        top.addWidget(self.back_button)
        top.addSpacing(8)
        top.addLayout(answers, 1)
        top.addSpacing(8)
        top.addWidget(self.skip_button)
        top.addWidget(self.forward_button)
        top.addSpacing(12)
        top.addWidget(self.progress_label)
        bottom = QHBoxLayout()
        bottom.addWidget(self.choice, 1)
        bottom.addWidget(self.mark_label, 1)
        bottom.addWidget(self.answered_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addLayout(bottom)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Maximum)

    def _on_clicked(self, value: int) -> None:
        self.answered.emit(value)

    def show_state(self, *, progress: str, answered: str, earlier: Confidence | None, awaiting: bool,
                   marked: bool, can_back: bool, can_forward: bool, can_skip: bool, enabled: bool = True,
                   earlier_text: str = "") -> None:
        """What the bar shows for the current case (see :class:`~linop_gui.reading_state.ReadingState`)."""
        for button in self.group.buttons():
            value = self.group.id(button)
            button.setChecked(value == (3 if awaiting else (int(earlier) if earlier is not None else -1)))
            button.setEnabled(enabled)
        self.choice.setVisible(awaiting)
        self.mark_label.setVisible(not awaiting)
        mark = ("Lesion marked · drag to move, Del clears" if marked else
                "Optional: click the image where you think the lesion is")
        self.mark_label.setText(f"{earlier_text} · {mark}" if earlier_text else mark)
        self.progress_label.setText(progress)
        self.answered_label.setText(answered)
        self.back_button.setEnabled(can_back)
        self.forward_button.setEnabled(can_forward)
        self.skip_button.setEnabled(can_skip and enabled)


class FinishedPage(QWidget):
    """The end of a study for this reader: a short summary of their own answers (no truth), back or close."""

    review = Signal()
    close_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = _big(QLabel("", self), 20)
        self.summary_label = _big(QLabel("", self), 12, bold=False)
        self.summary_label.setWordWrap(True)
        note = QLabel("Your answers are saved. Thank you.", self)
        self.back_button = QPushButton("◀ Back to the last case", self)
        self.close_button = QPushButton("Close", self)
        self.back_button.clicked.connect(self.review)
        self.close_button.clicked.connect(self.close_requested)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.back_button)
        buttons.addWidget(self.close_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        for widget in (self.title, self.summary_label, note):
            widget.setAlignment(Qt.AlignmentFlag.AlignCenter)
            layout.addWidget(widget)
        layout.addSpacing(16)
        layout.addLayout(buttons)
        layout.addStretch(2)

    def show_summary(self, reader: str, summary: ReadingSummary) -> None:
        self.title.setText(f"Study finished, {reader}")
        self.summary_label.setText("<br>".join(summary.lines()))
