"""Several readers in the review gallery: each records and sees only their own decisions, the reader is named in
the status line, the adjudication view lists where they disagree (jump, settle), and the export dialog's consensus
rule decides what goes into the set, which records every reader's decision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from linop_core.engines import BiharmonicEngine
from linop_core.review.consensus import ConsensusRule
from linop_core.review.session import ImageAnnotation, LesionBox
from linop_core.synthesis import InpaintRequest, synthesize
from linop_core.synthset import SynthSet
from linop_core.vocab import Decision
from linop_gui.export_dialog import ExportDialog
from linop_gui.review import ReviewController
from linop_gui.worker import BackgroundWorker


def key(qtbot, k: Qt.Key) -> None:
    QTest.keyClick(QApplication.focusWidget(), k)
    qtbot.wait(5)


def row_text(review: ReviewController, row: int) -> str:
    return review.gallery.list.item(row).text()


@pytest.fixture
def two_candidates(qtbot, make_window, mammo_root: Path, settings):
    """A main window with two synthesised candidates (with provenance, so they export) of its first image."""
    settings.reviewer = ""
    window = make_window(mammo_root)
    io = BackgroundWorker("readers-io")
    review = ReviewController(window.workspace, window, window.viewer, io, settings, window)
    ws = window.workspace
    h, w = ws.image.pixels.shape
    box = (w * 0.45, h * 0.45, w * 0.55, h * 0.55)
    ws.session.apply(ws.image_id, ImageAnnotation(boxes=[LesionBox(box)]))
    made = synthesize(ws.image, InpaintRequest(box=box, seeds=(0, 1)), BiharmonicEngine(64), anatomy_check=False)
    entries = [ws.session.store_candidate(image_id=ws.image_id, box_index=0, candidate=c) for c in made]
    ws.session.record_candidates(entries)
    review.show_image(ws.entry, ws.image)
    ws.image_changed.connect(review.show_image)  # as the generation controller does
    qtbot.waitUntil(lambda: len(review.gallery.items) == 2, timeout=20_000)
    yield window, review, [item.candidate_id for item in review.gallery.items]
    io.shutdown()


def test_readers_decide_independently_and_adjudication_settles(qtbot, two_candidates, settings) -> None:
    window, review, (split, _agreed) = two_candidates
    gallery, session = review.gallery, window.workspace.session
    assert window.status_line.reader_label.text() == "Reader: unnamed"
    gallery.reviewer_edit.setText("ann")
    assert window.status_line.reader_label.text() == "Reader: ann" and settings.reviewer == "ann"
    gallery.list.setCurrentRow(0)
    key(qtbot, Qt.Key.Key_Y)  # approve, then on to the next pending one
    key(qtbot, Qt.Key.Key_Y)
    assert "approved" in row_text(review, 0) and "approved" in row_text(review, 1)

    gallery.reviewer_edit.setText("bob")  # bob sees none of ann's decisions
    assert "pending" in row_text(review, 0) and "pending" in row_text(review, 1)
    assert "0 approved, 0 rejected, 2 pending" in gallery.status.text()
    gallery.list.setCurrentRow(0)
    gallery.reject("seam")
    gallery.list.setCurrentRow(1)
    key(qtbot, Qt.Key.Key_Y)
    assert "rejected" in row_text(review, 0) and "approved" in row_text(review, 1)
    assert window.status_line.reader_label.text() == "Reader: bob"

    gallery.reviewer_edit.setText("ann")  # and ann still sees her own
    assert "approved" in row_text(review, 0) and "(seam)" not in gallery.list.item(0).toolTip()
    entry = session.candidates[split]
    assert entry.review_by("ann").decision is Decision.APPROVED
    assert entry.review_by("bob").decision is Decision.REJECTED and entry.review_by("bob").reject_reason == "seam"

    # Adjudication: only the split candidate, with both readers' decisions; a decision settles it.
    window.action("adjudicate").trigger()
    dialog = review.adjudication
    assert dialog is not None and dialog.isVisible()
    qtbot.addWidget(dialog)
    assert [row.candidate_id for row in dialog.rows] == [split] and dialog.table.rowCount() == 1
    assert dialog.rows[0].decisions == {"ann": "✓ approved", "bob": "✗ rejected (seam)"}
    assert dialog.table.item(0, 4).text() == "tie"
    assert not dialog.approve_button.isEnabled()

    # Jump: from another image back to the disputed candidate in the viewer.
    other = window.browser.neighbour(1)
    with qtbot.waitSignal(window.image_changed, timeout=20_000):
        window.select_image(other.image_id)
    qtbot.waitUntil(lambda: gallery.image_id == other.image_id, timeout=10_000)
    assert dialog.select(split)
    dialog.jump()
    qtbot.waitUntil(lambda: gallery.current_item() is not None and gallery.current_item().candidate_id == split,
                    timeout=20_000)
    assert window.workspace.image_id == entry.image_id

    dialog.decide(Decision.APPROVED)
    assert session.candidates[split].review_by("adjudicator").decision is Decision.APPROVED
    assert dialog.rows[0].decisions["adjudicator"] == "✓ approved" and dialog.table.item(0, 5).text() == "approved"
    assert session.readers() == ["adjudicator", "ann", "bob"]


@pytest.fixture
def worker(qtbot):
    w = BackgroundWorker("readers-export")
    yield w
    assert w.shutdown(10_000)


def test_the_export_applies_the_consensus_rule(qtbot, two_candidates, worker, tmp_path) -> None:
    window, _review, (split, agreed) = two_candidates
    session, catalog = window.workspace.session, window.workspace.catalog
    session.review(split, "approved", reviewer="ann")
    session.review(split, "rejected", reviewer="bob", reason="texture")
    for reader in ("ann", "bob"):
        session.review(agreed, "approved", reviewer=reader, realism_score=4)
    dialog = ExportDialog(session, catalog, worker)
    qtbot.addWidget(dialog)
    dialog.allow_test.setChecked(True)
    assert dialog.count_label.text().startswith("1 candidate(s)")  # latest: bob rejected the split one last
    assert not dialog.readers_spin.isEnabled()

    def choose(rule: ConsensusRule, min_readers: int) -> str:
        dialog.consensus_combo.setCurrentIndex(dialog.consensus_combo.findData(rule))
        dialog.readers_spin.setValue(min_readers)
        return dialog.count_label.text()

    assert choose(ConsensusRule.ANY, 1).startswith("2 candidate(s)")
    assert choose(ConsensusRule.MAJORITY, 2).startswith("1 candidate(s)")  # 1 of 2 is no majority
    assert "no candidate matches consensus==all(min_readers=3)" in choose(ConsensusRule.ALL, 3)  # two decided
    assert "ann, bob" in choose(ConsensusRule.ALL, 2) and dialog.readers_spin.isEnabled()
    out = tmp_path / "all.h5"
    dialog.path_edit.setText(str(out))
    assert dialog.start() is not None, dialog.result_label.text()
    qtbot.waitUntil(lambda: not dialog.running, timeout=60_000)
    assert dialog.error is None, dialog.error
    with SynthSet(out) as synth:
        assert len(synth) == 1 and "consensus==all(min_readers=2)" in str(synth.attrs["filter"])
        meta = synth.record(0).meta
        verdicts = json.loads(meta["reader_verdicts"])
        assert [(v["reader"], v["decision"]) for v in verdicts] == [("ann", "approved"), ("bob", "approved")]
