"""The candidate gallery: thumbnails of every candidate of the current image, a side-by-side compare view with
linked zoom, a |synthetic - source| difference map, and the review controls.

Keys while the gallery has focus (they take precedence over the main window's single-letter shortcuts):

- hold Tab or Space: show the original instead of the candidate (here and in the main viewer);
- Y, Enter: approve; N: reject (a menu asks for the reason); 1-5: realism score, 0: clear it;
- X: difference map on/off; Left/Right (or the list's arrows): previous / next candidate.

Pixels for the gallery are prepared off the GUI thread (:func:`make_gallery_item`, run by the worker): each
item carries only its review crop (the generated region plus a margin), never the full image.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QSize, Qt, Signal
from PySide6.QtGui import QAction, QIcon, QImage, QKeyEvent, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from linop_core.dicom import VoiWindow
from linop_core.review.session import REJECT_REASONS, CandidateEntry, ReviewSession
from linop_core.vocab import Decision
from linop_gui.display import display_transform
from linop_gui.gallery_items import THUMBNAIL_SIDE, GalleryItem, blank_entry, crop_range_window, entry_window
from linop_gui.theme import IMAGE_BACKGROUND

DECISION_MARK = {Decision.APPROVED: "✓ approved", Decision.REJECTED: "✗ rejected", Decision.PENDING: "• pending"}
REASON_TEXT = {
    "seam": "&Seam / visible edge",
    "texture": "&Texture mismatch",
    "implausible shape": "&Implausible shape",
    "wrong density": "Wrong &density",
    "artefact": "&Artefact",
    "other": "&Other",
}
COMPARE_KEYS = (Qt.Key.Key_Tab, Qt.Key.Key_Space)
APPROVE_KEYS = (Qt.Key.Key_Y, Qt.Key.Key_Return, Qt.Key.Key_Enter)
SCORE_KEYS = {
    Qt.Key.Key_0: None, Qt.Key.Key_1: 1, Qt.Key.Key_2: 2, Qt.Key.Key_3: 3, Qt.Key.Key_4: 4, Qt.Key.Key_5: 5,
}


def _qimage(gray: np.ndarray) -> QImage:
    gray = np.ascontiguousarray(gray)
    h, w = gray.shape
    return QImage(gray.data, w, h, w, QImage.Format.Format_Grayscale8).copy()


# ----------------------------------------------------------------------------------------------- widgets


class _CompareView(pg.GraphicsLayoutWidget):
    """Two linked image panes: original | candidate (or difference map)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setBackground(IMAGE_BACKGROUND)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.left_box = self.addViewBox(row=0, col=0)
        self.right_box = self.addViewBox(row=0, col=1)
        for box in (self.left_box, self.right_box):
            box.setAspectLocked(True)
            box.invertY(True)
            box.setMenuEnabled(False)
        self.right_box.setXLink(self.left_box)
        self.right_box.setYLink(self.left_box)
        self.left_item = pg.ImageItem(axisOrder="row-major")
        self.right_item = pg.ImageItem(axisOrder="row-major")
        self.left_box.addItem(self.left_item)
        self.right_box.addItem(self.right_item)
        self.left_label = pg.TextItem("Original", color=(230, 230, 230), anchor=(0, 0))
        self.right_label = pg.TextItem("Candidate", color=(230, 230, 230), anchor=(0, 0))
        for box, label in ((self.left_box, self.left_label), (self.right_box, self.right_label)):
            label.setParentItem(box)
            label.setPos(4, 2)
        self._diff_lut = pg.colormap.get("inferno").getLookupTable(nPts=256)

    def show_pair(self, left: np.ndarray, right: np.ndarray, levels: tuple[float, float], lut: np.ndarray | None,
                  right_text: str, *, right_is_difference: bool, fit: bool) -> None:
        self.left_item.setLookupTable(lut, update=False)
        self.left_item.setImage(left, autoLevels=False, levels=levels)
        if right_is_difference:
            top = float(right.max()) if right.size else 1.0
            self.right_item.setLookupTable(self._diff_lut, update=False)
            self.right_item.setImage(right, autoLevels=False, levels=(0.0, max(top, 1e-6)))
        else:
            self.right_item.setLookupTable(lut, update=False)
            self.right_item.setImage(right, autoLevels=False, levels=levels)
        self.right_label.setText(right_text)
        for item in (self.left_item, self.right_item, self.left_label, self.right_label):
            item.setVisible(True)
        if fit:
            self.left_box.autoRange(padding=0.02)

    def blank(self) -> None:
        # Not named clear(): GraphicsLayoutWidget binds clear() to its layout's clear(), which drops the views.
        for item in (self.left_item, self.right_item, self.left_label, self.right_label):
            item.setVisible(False)


class CandidateGallery(QWidget):
    """Thumbnails + compare + review. Works on a :class:`ReviewSession` it is given (GUI thread only)."""

    candidate_selected = Signal(object)  # GalleryItem or None
    compare_original = Signal(bool)  # True while the compare key is held
    reviewed = Signal(object)  # CandidateEntry after a decision or score change
    message = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session: ReviewSession | None = None
        self.reviewer = ""
        self.items: list[GalleryItem] = []
        self.image_id: str | None = None
        self.window: VoiWindow | None = None
        self.function = "LINEAR"
        self.inverted = False
        self.showing_original = False
        self.show_difference = False
        self._last_shown: str | None = None

        self.list = QListWidget(self)
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setFlow(QListView.Flow.LeftToRight)
        self.list.setWrapping(True)
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setMovement(QListView.Movement.Static)
        self.list.setIconSize(QSize(THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        self.list.setSpacing(4)
        self.list.setUniformItemSizes(True)
        self.list.setMinimumWidth(THUMBNAIL_SIDE * 2 + 40)
        self.list.currentRowChanged.connect(self._on_row_changed)
        self.compare = _CompareView(self)
        self.compare.setMinimumHeight(160)

        self.approve_button = QPushButton("Approve (Y)", self)
        self.reject_button = QPushButton("Reject (N)…", self)
        self.reason_menu = QMenu(self)
        for reason in REJECT_REASONS:
            action = QAction(REASON_TEXT[reason], self.reason_menu)
            action.setData(reason)
            action.triggered.connect(lambda _=False, r=reason: self.reject(r))
            self.reason_menu.addAction(action)
        self.reject_button.setMenu(self.reason_menu)
        self.approve_button.clicked.connect(self.approve)
        self.score_group = QButtonGroup(self)
        self.score_group.setExclusive(False)
        score_row = QHBoxLayout()
        score_row.setSpacing(2)
        score_row.addWidget(QLabel("Realism:", self))
        for score in range(1, 6):
            button = QToolButton(self)
            button.setText(str(score))
            button.setCheckable(True)
            button.setToolTip(f"Realism score {score} (key {score}; 0 clears)")
            self.score_group.addButton(button, score)
            score_row.addWidget(button)
        self.score_group.idClicked.connect(self._on_score_clicked)
        self.diff_button = QToolButton(self)
        self.diff_button.setText("Difference (X)")
        self.diff_button.setCheckable(True)
        self.diff_button.toggled.connect(self.set_difference)
        self.reviewer_edit = QLineEdit(self)
        self.reviewer_edit.setPlaceholderText("reviewer pseudonym")
        self.reviewer_edit.setMaximumWidth(140)
        self.reviewer_edit.textChanged.connect(self._set_reviewer)
        self.status = QLabel("No candidates yet: draw a box and press G.", self)
        self.status.setWordWrap(True)
        for widget in (self.approve_button, self.reject_button, self.diff_button):
            widget.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        for button in self.score_group.buttons():
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)

        controls = QHBoxLayout()
        controls.addWidget(self.approve_button)
        controls.addWidget(self.reject_button)
        controls.addSpacing(8)
        controls.addLayout(score_row)
        controls.addSpacing(8)
        controls.addWidget(self.diff_button)
        controls.addStretch(1)
        controls.addWidget(QLabel("Reviewer:", self))
        controls.addWidget(self.reviewer_edit)

        right = QWidget(self)
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.compare, 1)
        right_layout.addLayout(controls)
        hint = QLabel("Hold Tab or Space: original · Y/Enter approve · N reject · 1-5 realism · X difference", self)
        hint.setEnabled(False)
        right_layout.addWidget(hint)
        right_layout.addWidget(self.status)
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(self.list)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setFocusProxy(self.list)
        self.list.installEventFilter(self)
        self.installEventFilter(self)
        self._update_controls()

    # -- content -------------------------------------------------------------------------------------------
    def set_session(self, session: ReviewSession | None) -> None:
        self.session = session
        self.clear()

    def set_display(self, window: VoiWindow | None, function: str = "LINEAR", inverted: bool = False) -> None:
        """The grey-level mapping of the compare panes (follows the main viewer's window)."""
        self.window, self.function, self.inverted = window, function, inverted
        self._show_current(fit=False)

    def clear(self, image_id: str | None = None) -> None:
        self.items = []
        self.image_id = image_id
        self.list.clear()
        self.compare.blank()
        self._last_shown = None
        self.status.setText("No candidates yet: draw a box and press G.")
        self._update_controls()
        self.candidate_selected.emit(None)

    def set_items(self, image_id: str, items: list[GalleryItem]) -> None:
        """Shows ``items`` (the candidates of ``image_id``), replacing what was shown."""
        self.clear(image_id)
        self.add_items(items, select_first=True)

    def add_items(self, items: list[GalleryItem], *, select_first: bool = True) -> None:
        """Appends candidates of the shown image; selects the first new one."""
        first_new = len(self.items)
        for item in items:
            if self.image_id is None:
                self.image_id = item.image_id
            if item.image_id != self.image_id:
                continue
            self.items.append(item)
            row = QListWidgetItem(QIcon(QPixmap.fromImage(_qimage(item.thumbnail))), "")
            row.setData(Qt.ItemDataRole.UserRole, item.candidate_id)
            row.setSizeHint(QSize(THUMBNAIL_SIDE + 24, THUMBNAIL_SIDE + 36))
            self.list.addItem(row)
            self._refresh_row(len(self.items) - 1)
        if select_first and len(self.items) > first_new:
            self.list.setCurrentRow(first_new)
        self._update_controls()

    def entry(self, candidate_id: str) -> CandidateEntry | None:
        return None if self.session is None else self.session.candidates.get(candidate_id)

    def current_item(self) -> GalleryItem | None:
        row = self.list.currentRow()
        return self.items[row] if 0 <= row < len(self.items) else None

    def select(self, candidate_id: str) -> bool:
        for row, item in enumerate(self.items):
            if item.candidate_id == candidate_id:
                self.list.setCurrentRow(row)
                return True
        return False

    def step(self, delta: int) -> None:
        if self.items:
            self.list.setCurrentRow(min(max(self.list.currentRow() + delta, 0), len(self.items) - 1))

    # -- review --------------------------------------------------------------------------------------------
    def approve(self) -> CandidateEntry | None:
        return self._review(Decision.APPROVED, None)

    def reject(self, reason: str) -> CandidateEntry | None:
        if reason not in REJECT_REASONS:
            raise ValueError(f"reason must be one of {REJECT_REASONS}, got {reason!r}")
        return self._review(Decision.REJECTED, reason)

    def set_score(self, score: int | None) -> CandidateEntry | None:
        """Realism score 1-5 (None clears) of the current candidate; its decision is kept."""
        item = self.current_item()
        entry = self.entry(item.candidate_id) if item is not None else None
        if entry is None or self.session is None:
            return None
        updated = self.session.review(entry.candidate_id, entry.decision, reviewer=self._reviewer_or_none(),
                                      reason=entry.reject_reason, realism_score=score)
        self._after_review(updated, advance=False)
        return updated

    def ask_reject_reason(self) -> None:
        """Pops the reason menu under the reject button (non-blocking); choosing a reason rejects."""
        if self.current_item() is None:
            return
        self.reason_menu.popup(self.reject_button.mapToGlobal(self.reject_button.rect().bottomLeft()))

    def _review(self, decision: Decision, reason: str | None) -> CandidateEntry | None:
        item = self.current_item()
        entry = self.entry(item.candidate_id) if item is not None else None
        if entry is None or self.session is None:
            return None
        updated = self.session.review(entry.candidate_id, decision,
                                      reviewer=self._reviewer_or_none(), reason=reason,
                                      realism_score=entry.realism_score)
        self._after_review(updated, advance=True)
        return updated

    def _after_review(self, entry: CandidateEntry, *, advance: bool) -> None:
        row = next((i for i, it in enumerate(self.items) if it.candidate_id == entry.candidate_id), -1)
        if row >= 0:
            self._refresh_row(row)
        self._update_controls()
        self.reviewed.emit(entry)
        if advance:
            self._advance_to_pending(row)

    def _advance_to_pending(self, row: int) -> None:
        n = len(self.items)
        for offset in range(1, n):
            candidate = self.entry(self.items[(row + offset) % n].candidate_id)
            if candidate is not None and candidate.decision is Decision.PENDING:
                self.list.setCurrentRow((row + offset) % n)
                return

    def _reviewer_or_none(self) -> str | None:
        return self.reviewer.strip() or None

    def _set_reviewer(self, text: str) -> None:
        self.reviewer = text

    def _on_score_clicked(self, score: int) -> None:
        entry = self.entry(self.current_item().candidate_id) if self.current_item() else None
        self.set_score(None if entry is not None and entry.realism_score == score else score)

    # -- compare -------------------------------------------------------------------------------------------
    def set_compare_original(self, on: bool) -> None:
        if on == self.showing_original:
            return
        self.showing_original = on
        self._show_current(fit=False)
        self.compare_original.emit(on)

    def set_difference(self, on: bool) -> None:
        self.show_difference = bool(on)
        if self.diff_button.isChecked() != self.show_difference:
            self.diff_button.setChecked(self.show_difference)
        self._show_current(fit=False)

    def _on_row_changed(self, row: int) -> None:
        self._show_current(fit=True)
        self._update_controls()
        self.candidate_selected.emit(self.current_item())

    def _show_current(self, *, fit: bool) -> None:
        item = self.current_item()
        if item is None:
            self.compare.blank()
            return
        stored = self.entry(item.candidate_id) or blank_entry(item)
        window = self.window or entry_window(stored, crop_range_window(item))[0]
        lo = float(min(item.source.min(), item.candidate.min()))
        hi = float(max(item.source.max(), item.candidate.max()))
        integral = bool(np.issubdtype(item.source.dtype, np.integer)) and lo >= 0 and hi <= 65535
        transform = display_transform(window, self.function, self.inverted, (lo, hi), integral)
        if self.showing_original:
            right, text, diff = item.source, "Original (released: candidate)", False
        elif self.show_difference:
            right, text, diff = item.difference, "|candidate − original|", True
        else:
            right, text, diff = item.candidate, f"Candidate · seed {item.seed}", False
        fit = fit or self._last_shown is None
        self.compare.show_pair(item.source, right, transform.levels, transform.lut, text,
                               right_is_difference=diff, fit=fit)
        self._last_shown = item.candidate_id

    # -- presentation ----------------------------------------------------------------------------------------
    def _refresh_row(self, row: int) -> None:
        item = self.items[row]
        entry = self.entry(item.candidate_id)
        decision = entry.decision if entry is not None else Decision.PENDING
        score = f" · {entry.realism_score}/5" if entry is not None and entry.realism_score else ""
        reason = f" ({entry.reject_reason})" if entry is not None and entry.reject_reason else ""
        box = "all" if item.box_index is None else str(item.box_index + 1)
        text = f"box {box} · seed {item.seed}\n{DECISION_MARK[decision]}{score}"
        widget_item = self.list.item(row)
        widget_item.setText(text)
        widget_item.setToolTip(f"{item.engine} · seed {item.seed} · {decision}{reason}{score}")

    def _update_controls(self) -> None:
        item = self.current_item()
        entry = self.entry(item.candidate_id) if item is not None else None
        enabled = entry is not None
        for widget in (self.approve_button, self.reject_button):
            widget.setEnabled(enabled)
        for button in self.score_group.buttons():
            button.setEnabled(enabled)
            button.setChecked(entry is not None and entry.realism_score == self.score_group.id(button))
        if not self.items:
            return
        counts = {d: 0 for d in DECISION_MARK}
        for it in self.items:
            e = self.entry(it.candidate_id)
            counts[e.decision if e is not None else Decision.PENDING] += 1
        self.status.setText(f"{len(self.items)} candidate(s): {counts[Decision.APPROVED]} approved, "
                            f"{counts[Decision.REJECTED]} rejected, {counts[Decision.PENDING]} pending")

    # -- keys ------------------------------------------------------------------------------------------------
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent) and self._handles(event):
            event.accept()  # deliver as a key press here instead of triggering the window's shortcut
            return True
        if kind == QEvent.Type.KeyPress and isinstance(event, QKeyEvent) and self._handles(event):
            self._key_press(event)
            return True
        if kind == QEvent.Type.KeyRelease and isinstance(event, QKeyEvent) and event.key() in COMPARE_KEYS:
            if not event.isAutoRepeat():
                self.set_compare_original(False)
            return True
        return super().eventFilter(watched, event)

    def event(self, event: QEvent) -> bool:
        # Tab would move the focus before any key handler sees it.
        if event.type() == QEvent.Type.KeyPress and isinstance(event, QKeyEvent) and event.key() in COMPARE_KEYS:
            self._key_press(event)
            return True
        return super().event(event)

    @staticmethod
    def _handles(event: QKeyEvent) -> bool:
        if event.modifiers() & ~(Qt.KeyboardModifier.KeypadModifier | Qt.KeyboardModifier.NoModifier):
            return False
        key = event.key()
        return (key in COMPARE_KEYS or key in APPROVE_KEYS or key in SCORE_KEYS
                or key in (Qt.Key.Key_N, Qt.Key.Key_X, Qt.Key.Key_Left, Qt.Key.Key_Right))

    def _key_press(self, event: QKeyEvent) -> None:
        key = event.key()
        if key in COMPARE_KEYS:
            if not event.isAutoRepeat():
                self.set_compare_original(True)
        elif event.isAutoRepeat():
            return
        elif key in APPROVE_KEYS:
            self.approve()
        elif key == Qt.Key.Key_N:
            self.ask_reject_reason()
        elif key in SCORE_KEYS:
            self.set_score(SCORE_KEYS[key])
        elif key == Qt.Key.Key_X:
            self.set_difference(not self.show_difference)
        elif key == Qt.Key.Key_Left:
            self.step(-1)
        elif key == Qt.Key.Key_Right:
            self.step(+1)
