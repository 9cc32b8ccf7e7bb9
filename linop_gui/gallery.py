"""The candidate gallery: a strip of thumbnails to move between the current image's candidates, and the review
controls (approve, reject with a reason, realism score, difference map, the reader).

A candidate is judged in the main viewer at full resolution, not here: selecting a thumbnail shows that candidate
in the viewer (``candidate_selected``), with the difference map on top when it is on (``difference_toggled``).
The review keys are the main window's (the shortcut table's "Review" group), so they mean the same in the viewer
and here; this widget has no keys of its own beyond the list's arrow keys. Decisions go straight into the
:class:`ReviewSession`, which saves after each, under the reader's name (the "Reader" field): every reader's
decision is kept apart, and the gallery shows only the current reader's own (:func:`own_review`), so readers
review independently.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QSize, Qt, Signal
from PySide6.QtGui import QAction, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
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
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from linop_core.review.session import REJECT_REASONS, CandidateEntry, ReviewSession
from linop_core.vocab import Decision
from linop_gui.gallery_items import GalleryItem, OwnReview, own_review

DECISION_MARK = {Decision.APPROVED: "✓ approved", Decision.REJECTED: "✗ rejected", Decision.PENDING: "• pending"}
REASON_TEXT = {
    "seam": "&Seam / visible edge",
    "texture": "&Texture mismatch",
    "implausible shape": "&Implausible shape",
    "wrong density": "Wrong &density",
    "artefact": "&Artefact",
    "other": "&Other",
}
HINT = ("The selected candidate is in the viewer at full size · hold Tab or Space: the original · Y approve · "
        "X reject · Alt+1-5 realism · M difference · ←/→ candidates")
EMPTY = "No candidates yet: draw a box (N) and press G."
ICON_SIDE = 72  # the thumbnails only navigate: small, so the image keeps the screen


def _qimage(gray: np.ndarray) -> QImage:
    gray = np.ascontiguousarray(gray)
    h, w = gray.shape
    return QImage(gray.data, w, h, w, QImage.Format.Format_Grayscale8).copy()


class CandidateGallery(QWidget):
    """Thumbnails + review controls over a :class:`ReviewSession` it is given (GUI thread only)."""

    candidate_selected = Signal(object)  # GalleryItem or None
    difference_toggled = Signal(bool)
    reviewed = Signal(object)  # CandidateEntry after a decision or score change
    reader_changed = Signal(str)  # the reader whose decisions are shown and recorded ("" : unnamed)
    message = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session: ReviewSession | None = None
        self.reviewer = ""
        self.items: list[GalleryItem] = []
        self.image_id: str | None = None
        self.show_difference = False

        self.list = QListWidget(self)
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setFlow(QListView.Flow.LeftToRight)
        self.list.setWrapping(False)
        self.list.setMovement(QListView.Movement.Static)
        self.list.setIconSize(QSize(ICON_SIDE, ICON_SIDE))
        self.list.setSpacing(4)
        self.list.setUniformItemSizes(True)
        self.list.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.list.setFixedHeight(ICON_SIDE + 68)
        self.list.setToolTip("Click a candidate to show it in the viewer (←/→ move between them)")
        self.list.currentRowChanged.connect(self._on_row_changed)

        self.approve_button = QPushButton("Approve (Y)", self)
        self.reject_button = QPushButton("Reject (X)…", self)
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
            button.setToolTip(f"Realism score {score} (Alt+{score}; Alt+0 clears)")
            self.score_group.addButton(button, score)
            score_row.addWidget(button)
        self.score_group.idClicked.connect(self._on_score_clicked)
        self.diff_button = QToolButton(self)
        self.diff_button.setText("Difference (M)")
        self.diff_button.setCheckable(True)
        self.diff_button.toggled.connect(self.set_difference)
        self.reviewer_edit = QLineEdit(self)
        self.reviewer_edit.setPlaceholderText("your pseudonym")
        self.reviewer_edit.setToolTip("Who is reviewing: decisions are kept per reader, and you see only your own "
                                      "(Generate > Adjudicate shows where readers disagree)")
        self.reviewer_edit.setMaximumWidth(150)
        self.reviewer_edit.setMinimumWidth(60)
        self.reviewer_edit.textChanged.connect(self._set_reviewer)
        self.status = QLabel(EMPTY, self)
        # Buttons are clicked, never focused: the keyboard stays with the image.
        for widget in (self.approve_button, self.reject_button, self.diff_button, *self.score_group.buttons()):
            widget.setFocusPolicy(Qt.FocusPolicy.NoFocus)

        controls = QHBoxLayout()
        controls.addWidget(self.approve_button)
        controls.addWidget(self.reject_button)
        controls.addSpacing(8)
        controls.addLayout(score_row)
        controls.addSpacing(8)
        controls.addWidget(self.diff_button)
        controls.addSpacing(8)
        self.status.setMinimumWidth(60)
        self.status.setToolTip(HINT)
        controls.addWidget(self.status, 1)
        controls.addWidget(QLabel("Reader:", self))
        controls.addWidget(self.reviewer_edit)
        self.setToolTip(HINT)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setSpacing(2)
        layout.addWidget(self.list)
        layout.addLayout(controls)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Maximum)
        self._update_controls()

    # -- content -------------------------------------------------------------------------------------------
    def set_session(self, session: ReviewSession | None) -> None:
        self.session = session
        self.clear()

    def clear(self, image_id: str | None = None) -> None:
        self.items = []
        self.image_id = image_id
        self.list.clear()
        self.status.setText(EMPTY)
        self._update_controls()
        self.candidate_selected.emit(None)

    def set_items(self, image_id: str, items: list[GalleryItem]) -> None:
        """Shows ``items`` (the candidates of ``image_id``), replacing what was shown."""
        self.clear(image_id)
        self.add_items(items, select_first=True)

    def add_items(self, items: list[GalleryItem], *, select_first: bool = True) -> None:
        """Appends candidates of the shown image; with ``select_first`` the first new one is selected."""
        first_new = len(self.items)
        for item in items:
            if self.image_id is None:
                self.image_id = item.image_id
            if item.image_id != self.image_id:
                continue
            self.items.append(item)
            row = QListWidgetItem(QIcon(QPixmap.fromImage(_qimage(item.thumbnail))), "")
            row.setData(Qt.ItemDataRole.UserRole, item.candidate_id)
            row.setSizeHint(QSize(ICON_SIDE + 64, ICON_SIDE + 44))
            self.list.addItem(row)
            self._refresh_row(len(self.items) - 1)
        if len(self.items) > first_new and (select_first or self.list.currentRow() < 0):
            self.list.setCurrentRow(first_new)
        self._update_controls()

    def entry(self, candidate_id: str) -> CandidateEntry | None:
        return None if self.session is None else self.session.candidates.get(candidate_id)

    def own(self, candidate_id: str) -> OwnReview:
        """The current reader's own decision on a candidate (pending when they have not decided)."""
        entry = self.entry(candidate_id)
        return own_review(entry, self._reviewer_or_none()) if entry is not None else OwnReview()

    def current_item(self) -> GalleryItem | None:
        row = self.list.currentRow()
        return self.items[row] if 0 <= row < len(self.items) else None

    def current_entry(self) -> CandidateEntry | None:
        item = self.current_item()
        return self.entry(item.candidate_id) if item is not None else None

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
        entry = self.current_entry()
        if entry is None or self.session is None:
            return None
        own = self.own(entry.candidate_id)
        updated = self.session.review(entry.candidate_id, own.decision, reviewer=self._reviewer_or_none(),
                                      reason=own.reject_reason, realism_score=score)
        self._after_review(updated, advance=False)
        return updated

    def ask_reject_reason(self, at: QPoint | None = None) -> None:
        """Pops the reason menu (non-blocking) under the reject button, or at ``at`` (global) when the gallery is
        hidden; choosing a reason rejects."""
        if self.current_item() is None:
            return
        if at is None or self.reject_button.isVisible():
            at = self.reject_button.mapToGlobal(self.reject_button.rect().bottomLeft())
        self.reason_menu.popup(at)

    def _review(self, decision: Decision, reason: str | None) -> CandidateEntry | None:
        entry = self.current_entry()
        if entry is None or self.session is None:
            return None
        updated = self.session.review(entry.candidate_id, decision, reviewer=self._reviewer_or_none(),
                                      reason=reason, realism_score=self.own(entry.candidate_id).realism_score)
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
            candidate_id = self.items[(row + offset) % n].candidate_id
            if self.entry(candidate_id) is not None and self.own(candidate_id).decision is Decision.PENDING:
                self.list.setCurrentRow((row + offset) % n)
                return

    def _reviewer_or_none(self) -> str | None:
        return self.reviewer.strip() or None

    def _set_reviewer(self, text: str) -> None:
        self.reviewer = text
        self.refresh()  # this reader's own decisions, not the previous reader's
        self.reader_changed.emit(text.strip())

    def refresh(self) -> None:
        """Shows the decisions again (after another reader's name, or a decision made elsewhere)."""
        for row in range(len(self.items)):
            self._refresh_row(row)
        self._update_controls()

    def _on_score_clicked(self, score: int) -> None:
        entry = self.current_entry()
        own = self.own(entry.candidate_id) if entry is not None else OwnReview()
        self.set_score(None if own.realism_score == score else score)

    # -- viewer --------------------------------------------------------------------------------------------
    def set_difference(self, on: bool) -> None:
        """The difference map |candidate − original| over the candidate in the viewer, on or off."""
        on = bool(on)
        if self.diff_button.isChecked() != on:
            self.diff_button.setChecked(on)  # comes back here through ``toggled``
            return
        if on != self.show_difference:
            self.show_difference = on
            self.difference_toggled.emit(on)

    def _on_row_changed(self, row: int) -> None:
        self._update_controls()
        self.candidate_selected.emit(self.current_item())

    # -- presentation ----------------------------------------------------------------------------------------
    def _refresh_row(self, row: int) -> None:
        item = self.items[row]
        own = self.own(item.candidate_id)
        decision = own.decision
        score = f" · {own.realism_score}/5" if own.realism_score else ""
        reason = f" ({own.reject_reason})" if own.reject_reason else ""
        what = "outpaint" if item.box_index is None else f"box {item.box_index + 1}"
        widget_item = self.list.item(row)
        widget_item.setText(f"{what} · seed {item.seed}\n{DECISION_MARK[decision]}{score}")
        widget_item.setToolTip(f"{item.engine} · seed {item.seed} · {decision}{reason}{score}")

    def _update_controls(self) -> None:
        entry = self.current_entry()
        enabled = entry is not None
        for widget in (self.approve_button, self.reject_button, self.diff_button):
            widget.setEnabled(enabled)
        own = self.own(entry.candidate_id) if entry is not None else OwnReview()
        for button in self.score_group.buttons():
            button.setEnabled(enabled)
            button.setChecked(entry is not None and own.realism_score == self.score_group.id(button))
        if not self.items:
            return
        counts = dict.fromkeys(DECISION_MARK, 0)
        for it in self.items:
            counts[self.own(it.candidate_id).decision] += 1
        self.status.setText(f"{len(self.items)} candidate(s): {counts[Decision.APPROVED]} approved, "
                            f"{counts[Decision.REJECTED]} rejected, {counts[Decision.PENDING]} pending · "
                            "hold Tab: original")
