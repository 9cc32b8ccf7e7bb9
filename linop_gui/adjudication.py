"""The adjudication view: the candidates readers decided differently on, every reader's decision side by side, a
jump to the candidate in the viewer and a decision to settle it.

Readers review independently in the gallery (each sees only their own decisions); this is the one place where
their decisions meet. The rows come from :func:`linop_core.review.consensus.disputed` (:func:`adjudication_rows`,
Qt-free). An adjudicated decision is recorded like any reader's, under the adjudicator's name (by default
"adjudicator"): it is the latest decision, so the single-reader export (rule "latest") takes it, and under
"majority" it is one more vote; the exported set records it with every other reader's.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from linop_core.review.consensus import ConsensusRule, consensus, disputed
from linop_core.review.session import REJECT_REASONS, CandidateEntry, ReviewSession
from linop_core.vocab import Decision

ADJUDICATOR = "adjudicator"
_MARK = {Decision.APPROVED: "✓ approved", Decision.REJECTED: "✗ rejected"}


@dataclass(frozen=True)
class AdjudicationRow:
    """One disputed candidate: where it is and what each reader decided (reader -> text)."""

    candidate_id: str
    image_id: str
    what: str  # "box 1 · seed 3" | "outpaint · seed 0"
    decisions: dict[str, str]
    majority: Decision


def _decision_text(entry: CandidateEntry, reader: str) -> str:
    review = entry.reviews.get(reader)
    if review is None:
        return "—"
    reason = f" ({review.reject_reason})" if review.reject_reason else ""
    score = f" · {review.realism_score}/5" if review.realism_score else ""
    return _MARK.get(review.decision, str(review.decision)) + reason + score


def adjudication_rows(session: ReviewSession) -> tuple[list[str], list[AdjudicationRow]]:
    """``(readers, rows)``: everyone who decided on a disputed candidate (sorted), and one row per disputed
    candidate in image order."""
    entries = sorted(disputed(session.candidates.values()),
                     key=lambda e: (e.image_id, -1 if e.box_index is None else e.box_index, e.seed, e.candidate_id))
    readers = sorted({reader for entry in entries for reader in entry.reviews})
    rows = [AdjudicationRow(
        candidate_id=entry.candidate_id, image_id=entry.image_id,
        what=("outpaint" if entry.box_index is None else f"box {entry.box_index + 1}") + f" · seed {entry.seed}",
        decisions={reader: _decision_text(entry, reader) for reader in readers},
        majority=consensus(entry, ConsensusRule.MAJORITY),
    ) for entry in entries]  # fmt: skip
    return readers, rows


class AdjudicationDialog(QDialog):
    """See the module docstring. ``jump_requested(image_id, candidate_id)`` asks the window to show a candidate;
    ``adjudicated(entry)`` follows each recorded decision."""

    jump_requested = Signal(str, str)
    adjudicated = Signal(object)

    def __init__(self, session: ReviewSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.rows: list[AdjudicationRow] = []
        self.setWindowTitle("Adjudicate disagreements")
        self.resize(880, 420)
        self.summary = QLabel("", self)
        self.summary.setWordWrap(True)
        self.table = QTableWidget(self)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.itemDoubleClicked.connect(lambda *_: self.jump())
        self.name_edit = QLineEdit(ADJUDICATOR, self)
        self.name_edit.setMaximumWidth(160)
        self.name_edit.setToolTip("The name the adjudicated decision is recorded under (one more reader)")
        self.show_button = QPushButton("Show in viewer", self)
        self.approve_button = QPushButton("Approve", self)
        self.reject_button = QPushButton("Reject…", self)
        self.reason_menu = QMenu(self)
        for reason in REJECT_REASONS:
            action = QAction(reason, self.reason_menu)
            action.triggered.connect(lambda _=False, r=reason: self.decide(Decision.REJECTED, r))
            self.reason_menu.addAction(action)
        self.reject_button.setMenu(self.reason_menu)
        self.show_button.clicked.connect(self.jump)
        self.approve_button.clicked.connect(lambda: self.decide(Decision.APPROVED))
        actions = QHBoxLayout()
        actions.addWidget(self.show_button)
        actions.addStretch(1)
        actions.addWidget(QLabel("Decide as:", self))
        actions.addWidget(self.name_edit)
        actions.addWidget(self.approve_button)
        actions.addWidget(self.reject_button)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addLayout(actions)
        layout.addWidget(buttons)
        self.refresh()

    def refresh(self) -> None:
        """Reads the disputes again (after any decision, here or in the gallery)."""
        selected = self.current_row()
        readers, self.rows = adjudication_rows(self.session)
        headers = ["Image", "Candidate", *readers, "Majority"]
        self.table.clear()
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(self.rows))
        for r, row in enumerate(self.rows):
            short = row.image_id if len(row.image_id) <= 13 else row.image_id[:12] + "…"
            cells = [short, row.what, *(row.decisions[reader] for reader in readers),
                     "tie" if row.majority is Decision.PENDING else str(row.majority)]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, row.candidate_id)
                item.setToolTip(f"image {row.image_id}, candidate {row.candidate_id}")
                self.table.setItem(r, c, item)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        reviewed = sum(bool(e.reviews) for e in self.session.candidates.values())
        self.summary.setText(
            f"{len(self.rows)} candidate(s) with different decisions, of {reviewed} reviewed by "
            f"{len(self.session.readers())} reader(s). Select one to show it, then decide."
            if self.rows else "No disagreements: every candidate several readers decided on got the same decision.")
        if selected is not None:
            self.select(selected.candidate_id)
        self._update_buttons()

    def current_row(self) -> AdjudicationRow | None:
        index = self.table.currentRow()
        return self.rows[index] if 0 <= index < len(self.rows) and self.table.selectedItems() else None

    def select(self, candidate_id: str) -> bool:
        for index, row in enumerate(self.rows):
            if row.candidate_id == candidate_id:
                self.table.selectRow(index)
                return True
        return False

    def jump(self) -> None:
        row = self.current_row()
        if row is not None:
            self.jump_requested.emit(row.image_id, row.candidate_id)

    def decide(self, decision: Decision, reason: str | None = None) -> CandidateEntry | None:
        """Records the adjudicator's decision on the selected candidate."""
        row = self.current_row()
        name = self.name_edit.text().strip() or ADJUDICATOR
        if row is None:
            return None
        entry = self.session.review(row.candidate_id, decision, reviewer=name, reason=reason)
        self.refresh()
        self.adjudicated.emit(entry)
        return entry

    def _update_buttons(self) -> None:
        has = self.current_row() is not None
        for button in (self.show_button, self.approve_button, self.reject_button):
            button.setEnabled(has)
