"""The annotation side panel: mode, hole shape, brush size, outpainting margin and the list of boxes.

It only displays an ``ImageAnnotation`` and emits requests; the main window turns them into session edits.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QButtonGroup,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from linop_core.review.session import ImageAnnotation, LesionBox
from linop_core.vocab import Task
from linop_gui.window_actions import ActionSet


def box_text(index: int, lesion: LesionBox, mode: Task) -> str:
    x0, y0, x1, y1 = lesion.box
    size = f"{x1 - x0:.0f} × {y1 - y0:.0f} px"
    what = ("finding" if lesion.source == "finding" else "region") if mode is Task.OUTPAINT else str(lesion.hole)
    return f"{index + 1}. {what}  {size}  at ({x0:.0f}, {y0:.0f})"


class AnnotatePanel(QWidget):
    box_selected = Signal(int)  # -1: none
    margin_changed = Signal(float)
    brush_radius_changed = Signal(int)

    def __init__(self, actions: ActionSet, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(8)

        mode_box = QGroupBox("Task", self)
        row = QHBoxLayout(mode_box)
        self._mode_group = QButtonGroup(self)
        for action_id in ("mode_inpaint", "mode_outpaint"):
            button = self._button(actions[action_id])
            row.addWidget(button)
        row.addStretch(1)
        layout.addWidget(mode_box)

        tools_box = QGroupBox("Tools", self)
        tools_row = QHBoxLayout(tools_box)
        for action_id in ("tool_pan", "tool_wl", "tool_box", "tool_brush", "tool_eraser"):
            tools_row.addWidget(self._button(actions[action_id], text=False))
        tools_row.addStretch(1)
        layout.addWidget(tools_box)

        self.hole_box = QGroupBox("Hole shape (inpainting)", self)
        hole_row = QHBoxLayout(self.hole_box)
        for action_id in ("hole_ellipse", "hole_rectangle", "hole_brush"):
            hole_row.addWidget(self._button(actions[action_id], text=False))
        hole_row.addStretch(1)
        layout.addWidget(self.hole_box)

        form = QFormLayout()
        self.brush = QSpinBox(self)
        self.brush.setRange(1, 512)
        self.brush.setSuffix(" px")
        self.brush.setToolTip("Brush radius in image pixels ([ and ])")
        self.brush.valueChanged.connect(self.brush_radius_changed)
        form.addRow("Brush radius", self.brush)
        self.margin = QDoubleSpinBox(self)
        self.margin.setRange(0.0, 4096.0)
        self.margin.setDecimals(0)
        self.margin.setSingleStep(4.0)
        self.margin.setSuffix(" px")
        self.margin.setToolTip("Outpainting: pixels kept around each selected region")
        self.margin.editingFinished.connect(lambda: self.margin_changed.emit(self.margin.value()))
        form.addRow("Kept margin", self.margin)
        layout.addLayout(form)

        title = QLabel("Boxes", self)
        title.setObjectName("sectionTitle")
        layout.addWidget(title)
        self.list = QListWidget(self)
        self.list.currentRowChanged.connect(self._on_row)
        layout.addWidget(self.list, 1)
        buttons = QHBoxLayout()
        for action_id in ("delete_box", "undo", "redo"):
            buttons.addWidget(self._button(actions[action_id], text=False))
        buttons.addStretch(1)
        for action_id in ("save_annotations", "load_annotations"):
            buttons.addWidget(self._button(actions[action_id], text=False))
        layout.addLayout(buttons)
        self.hint = QLabel("", self)
        self.hint.setObjectName("hint")
        self.hint.setWordWrap(True)
        layout.addWidget(self.hint)

    def _button(self, action: QAction, *, text: bool = True) -> QToolButton:
        button = QToolButton(self)
        button.setDefaultAction(action)
        button.setToolButtonStyle(
            Qt.ToolButtonStyle.ToolButtonTextBesideIcon if text else Qt.ToolButtonStyle.ToolButtonIconOnly
        )
        button.setAutoRaise(True)
        return button

    def show_annotation(self, annotation: ImageAnnotation, selected: int | None) -> None:
        with QSignalBlocker(self.list):
            self.list.clear()
            for i, lesion in enumerate(annotation.boxes):
                QListWidgetItem(box_text(i, lesion, annotation.mode), self.list)
            self.list.setCurrentRow(-1 if selected is None else selected)
        with QSignalBlocker(self.margin):
            self.margin.setValue(annotation.margin)
        outpaint = annotation.mode is Task.OUTPAINT
        self.margin.setEnabled(outpaint)
        self.hole_box.setEnabled(not outpaint)
        if outpaint:
            self.hint.setText("Click findings to keep them, or draw boxes (N); new anatomy is generated around them.")
        else:
            self.hint.setText("Draw mass boxes (N) or paint holes (B); a lesion is generated inside each hole.")

    def select_row(self, index: int) -> None:
        with QSignalBlocker(self.list):
            self.list.setCurrentRow(index)

    def set_brush_radius(self, radius: int) -> None:
        with QSignalBlocker(self.brush):
            self.brush.setValue(radius)

    def _on_row(self, row: int) -> None:
        self.box_selected.emit(row)
