"""The review session survives a kill, restores on reopen, and undoes annotation edits."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from linop_core.errors import DataError
from linop_core.review.session import ImageAnnotation, LesionBox, ReviewSession


def test_reopen_restores_annotations_candidates_and_decisions(tmp_path) -> None:
    root, folder = tmp_path / "dataset", tmp_path / "session"
    root.mkdir()
    s = ReviewSession.open(root, folder)
    s.apply("img1", ImageAnnotation(boxes=[LesionBox((10.0, 20.0, 110.0, 140.0), hole="rectangle")]))
    pixels = np.arange(64, dtype=np.uint16).reshape(8, 8)
    cand = s.add_candidate(image_id="img1", box_index=0, seed=3, engine="biharmonic", pixels=pixels,
                           generated=np.zeros((8, 8), np.float32))
    s.review(cand.candidate_id, "rejected", reviewer="r1", reason="seam", realism_score=2)

    again = ReviewSession.open(root, folder)
    assert again.annotation("img1").boxes[0].box == (10.0, 20.0, 110.0, 140.0)
    assert again.annotation("img1").boxes[0].hole == "rectangle"
    entry = again.candidates[cand.candidate_id]
    assert (entry.decision, entry.reject_reason, entry.realism_score, entry.reviewer) == ("rejected", "seam", 2, "r1")
    image, _ = again.candidate_pixels(cand.candidate_id)
    np.testing.assert_array_equal(image, pixels)


def test_undo_redo_walks_the_annotation_history(tmp_path) -> None:
    s = ReviewSession.open(tmp_path / "d", tmp_path / "s")
    first = ImageAnnotation(boxes=[LesionBox((0, 0, 10, 10))])
    second = ImageAnnotation(boxes=[LesionBox((0, 0, 10, 10)), LesionBox((5, 5, 30, 30))])
    s.apply("a", first)
    s.apply("a", second)
    assert s.undo() == "a" and len(s.annotation("a").boxes) == 1
    assert s.undo() == "a" and s.annotation("a").boxes == []
    assert s.undo() is None
    assert s.redo() == "a" and len(s.annotation("a").boxes) == 1
    assert s.redo() == "a" and len(s.annotation("a").boxes) == 2
    # The saved file follows the undo state.
    assert len(ReviewSession.open(tmp_path / "d", tmp_path / "s").annotation("a").boxes) == 2


def test_a_killed_process_leaves_a_readable_session(tmp_path) -> None:
    """SIGKILL in the middle of a stream of saves: the file on disk is always a whole session."""
    script = textwrap.dedent(f"""
        import sys
        from linop_core.review.session import ReviewSession, ImageAnnotation, LesionBox
        s = ReviewSession.open({str(tmp_path / 'd')!r}, {str(tmp_path / 's')!r})
        i = 0
        while True:
            s.apply(f"img{{i % 50}}", ImageAnnotation(boxes=[LesionBox((i, i, i + 10, i + 10))] * 20))
            i += 1
            if i == 30:
                print("ready", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.kill()
    proc.wait()
    data = json.loads((tmp_path / "s" / "session.json").read_text())
    assert len(data["annotations"]) >= 30
    assert ReviewSession.open(tmp_path / "d", tmp_path / "s").annotations


def test_rejection_needs_a_reason_and_a_corrupt_file_names_itself(tmp_path) -> None:
    s = ReviewSession.open(tmp_path / "d", tmp_path / "s")
    c = s.add_candidate(image_id="x", box_index=0, seed=0, engine="mat", pixels=np.zeros((2, 2)),
                        generated=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="reason"):
        s.review(c.candidate_id, "rejected")
    with pytest.raises(ValueError, match="1-5"):
        s.review(c.candidate_id, "approved", realism_score=9)
    (tmp_path / "s" / "session.json").write_text("{not json")
    with pytest.raises(DataError, match="session.json"):
        ReviewSession.open(tmp_path / "d", tmp_path / "s")
