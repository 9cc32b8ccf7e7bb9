"""The candidate gallery: review crops and thumbnails that only navigate, decisions and scores saved at once.
(The review keys and the full-size candidate in the viewer: test_review.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from linop_core.dicom import VoiWindow
from linop_core.review.session import ReviewSession
from linop_gui.gallery import CandidateGallery
from linop_gui.gallery_items import make_gallery_item, review_crop, thumbnail

WINDOW = VoiWindow(2048.0, 4096.0, "test")


def synthetic_candidates(session: ReviewSession, n: int = 3):
    """``n`` candidates of one 300 x 200 image: a bright disc of a different brightness in each."""
    rng = np.random.default_rng(0)
    source = rng.integers(1000, 3000, size=(300, 200)).astype(np.int32)
    yy, xx = np.mgrid[:300, :200]
    disc = (yy - 150) ** 2 + (xx - 90) ** 2 < 30**2
    generated = np.where(disc, 1.0, 0.0).astype(np.float32)
    items = []
    for seed in range(n):
        image = source.copy()
        image[disc] = 3500 + 100 * seed
        entry = session.add_candidate(image_id="img", box_index=0, seed=seed, engine="biharmonic", pixels=image,
                                      generated=generated)
        items.append(make_gallery_item(entry, source, image, generated, WINDOW, "LINEAR"))
    return source, items


@pytest.fixture
def gallery(qtbot, tmp_path):
    session = ReviewSession.open(tmp_path / "root", tmp_path / "session")
    widget = CandidateGallery()
    qtbot.addWidget(widget)
    widget.resize(900, 260)
    widget.show()
    qtbot.waitExposed(widget)
    widget.set_session(session)
    _, items = synthetic_candidates(session)
    widget.set_items("img", items)
    return widget


def test_review_crop_holds_every_generated_pixel_with_a_margin() -> None:
    generated = np.zeros((100, 80), np.float32)
    generated[40:50, 30:36] = 0.5
    y0, x0, y1, x1 = review_crop(generated, pad_fraction=0.25, min_pad=4)
    assert (y0, x0, y1, x1) == (36, 26, 54, 40)
    assert review_crop(np.zeros((5, 7), np.float32)) == (0, 0, 5, 7)
    generated[0, 0] = 1.0
    assert review_crop(generated)[:2] == (0, 0)  # clipped to the image


def test_gallery_items_carry_crops_and_a_small_thumbnail(tmp_path) -> None:
    session = ReviewSession.open(tmp_path / "r", tmp_path / "s")
    source, items = synthetic_candidates(session, 1)
    item = items[0]
    y0, x0 = item.origin
    h, w = item.candidate.shape
    np.testing.assert_array_equal(item.source, source[y0 : y0 + h, x0 : x0 + w])
    assert item.weight.max() == 1.0 and item.thumbnail.dtype == np.uint8 and max(item.thumbnail.shape) <= 96
    full = item.paste_into(source)
    stored, _ = session.candidate_pixels(item.candidate_id)
    np.testing.assert_array_equal(full, stored)
    assert not item.candidate.flags.writeable  # shared across threads: read-only
    small = thumbnail(np.full((1000, 10), 4096, np.int32), WINDOW, "LINEAR", side=100)
    assert small.shape == (100, 1) and small.max() == 255


def test_decisions_advance_to_the_next_pending_candidate_and_autosave(qtbot, gallery) -> None:
    session = gallery.session
    first, second, third = (i.candidate_id for i in gallery.items)
    assert gallery.current_item().candidate_id == first
    gallery.set_score(1)
    gallery.approve()
    assert session.candidates[first].decision == "approved" and session.candidates[first].realism_score == 1
    assert gallery.current_item().candidate_id == second  # moved on to the next pending candidate
    gallery.ask_reject_reason()
    assert gallery.reason_menu.isVisible()
    texture = next(a for a in gallery.reason_menu.actions() if a.data() == "texture")
    texture.trigger()
    assert session.candidates[second].decision == "rejected"
    assert session.candidates[second].reject_reason == "texture"
    assert "1 approved, 1 rejected, 1 pending" in gallery.status.text()
    # The decisions are on disk already (autosave).
    reopened = ReviewSession.open(session.dataset_root, session.folder)
    assert reopened.candidates[second].reject_reason == "texture"
    assert third in reopened.candidates


def test_thumbnails_only_navigate(qtbot, gallery) -> None:
    """The gallery shows no candidate pixels beyond thumbnails: selecting one asks the viewer to show it."""
    from PySide6.QtWidgets import QGraphicsView

    shown: list[object] = []
    gallery.candidate_selected.connect(shown.append)
    gallery.step(+1)
    gallery.step(+1)
    gallery.step(+1)  # stays on the last
    assert [i.seed for i in shown] == [1, 2] and gallery.current_item() is gallery.items[2]
    assert not gallery.findChildren(QGraphicsView)
    toggled: list[bool] = []
    gallery.difference_toggled.connect(toggled.append)
    gallery.diff_button.click()
    gallery.set_difference(True)
    gallery.set_difference(False)
    assert toggled == [True, False] and not gallery.diff_button.isChecked()


def test_scores_toggle_and_keep_the_decision(qtbot, gallery) -> None:
    session = gallery.session
    cid = gallery.current_item().candidate_id
    gallery.reject("seam")
    gallery.select(cid)
    gallery.set_score(5)
    assert session.candidates[cid].realism_score == 5 and session.candidates[cid].decision == "rejected"
    gallery.score_group.button(5).click()  # clicking the set score clears it
    assert session.candidates[cid].realism_score is None
    gallery.score_group.button(3).click()
    assert session.candidates[cid].realism_score == 3 and gallery.score_group.button(3).isChecked()
    gallery.set_score(None)
    assert session.candidates[cid].realism_score is None
    with pytest.raises(ValueError, match="reason"):
        gallery.reject("ugly")


def test_a_killed_app_loses_no_decision(tmp_path) -> None:
    """Review in a separate app process, SIGKILL it, reopen: every decision made before the kill is there."""
    import signal
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import os, sys, time
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from PySide6.QtWidgets import QApplication
        app = QApplication([])
        from linop_gui.gallery import CandidateGallery
        from linop_core.review.session import ReviewSession
        from test_gallery import synthetic_candidates
        session = ReviewSession.open({str(tmp_path / "root")!r}, {str(tmp_path / "session")!r})
        gallery = CandidateGallery()
        gallery.set_session(session)
        _, items = synthetic_candidates(session, 3)
        gallery.set_items("img", items)
        gallery.set_score(2)
        gallery.approve()
        gallery.reject("wrong density")
        print("reviewed", flush=True)
        while True:
            time.sleep(0.1)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "reviewed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    session = ReviewSession.open(tmp_path / "root", tmp_path / "session")
    entries = sorted(session.candidates.values(), key=lambda e: e.seed)
    assert [(e.decision, e.realism_score, e.reject_reason) for e in entries] == [
        ("approved", 2, None), ("rejected", None, "wrong density"), ("pending", None, None)]
    image, _ = session.candidate_pixels(entries[1].candidate_id)
    assert image.shape == (300, 200)
