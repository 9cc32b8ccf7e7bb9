"""Export dialogs: reviewed candidates to HDF5 (+ COCO), filters, the test-split refusal and its override, and
batch generation to the session or straight to a set — all through linop_core.synthset, off the GUI thread."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from linop_core.catalog import Catalog
from linop_core.dicom import read_dicom
from linop_core.engines import BiharmonicEngine, EngineSpec
from linop_core.errors import DataError
from linop_core.review.export import ExportFilter, export_reviewed, plan_export
from linop_core.review.session import ImageAnnotation, LesionBox, ReviewSession
from linop_core.synthesis import InpaintRequest, inpaint_lesion
from linop_core.synthset import SynthSet, verify_manifest
from linop_core.vindr import open_dataset
from linop_gui.export_dialog import BatchDialog, ExportDialog
from linop_gui.generation_jobs import GenerateOptions
from linop_gui.worker import BackgroundWorker


@pytest.fixture
def worker(qtbot):
    w = BackgroundWorker("export-test")
    yield w
    assert w.shutdown(10_000)


@pytest.fixture(scope="module")
def catalog(mammo_root: Path) -> Catalog:
    return Catalog.open(mammo_root)


def add_candidates(session: ReviewSession, path: Path, image_id: str, seeds=(0, 1, 2)) -> list[str]:
    """Real biharmonic candidates (with provenance) for a box in the middle of the image."""
    image = read_dicom(path)
    h, w = image.pixels.shape
    box = (w * 0.45, h * 0.45, w * 0.55, h * 0.55)
    session.apply(image_id, ImageAnnotation(boxes=[LesionBox(box)]))
    candidates = inpaint_lesion(image, InpaintRequest(box=box, seeds=seeds), BiharmonicEngine(64),
                                anatomy_check=False, image_name=image_id)
    entries = [session.store_candidate(image_id=image_id, box_index=0, candidate=c) for c in candidates]
    session.record_candidates(entries)
    return [e.candidate_id for e in entries]


def first_image(root: Path, split: str):
    return sorted((r for r in open_dataset(root).records if r.split == split), key=lambda r: r.image_id)[0]


def run_dialog(qtbot, dialog) -> None:
    assert dialog.start() is not None, dialog.result_label.text()
    qtbot.waitUntil(lambda: not dialog.running, timeout=60_000)
    assert dialog.error is None, dialog.error


def test_export_writes_the_approved_candidates_with_their_review(qtbot, worker, catalog, mammo_root, tmp_path) -> None:
    session = ReviewSession.open(mammo_root, tmp_path / "session")
    record = first_image(mammo_root, "training")
    approved, rejected, _pending = add_candidates(session, record.path, record.image_id)
    session.review(approved, "approved", reviewer="reader-7", realism_score=5)
    session.review(rejected, "rejected", reviewer="reader-7", reason="artefact")

    dialog = ExportDialog(session, catalog, worker)
    qtbot.addWidget(dialog)
    assert dialog.count_label.text().startswith("1 candidate(s) from 1 image(s)")
    out = tmp_path / "sets" / "approved.h5"
    dialog.path_edit.setText(str(out))
    run_dialog(qtbot, dialog)
    assert dialog.summary is not None and dialog.summary.n_samples == 1
    verify_manifest(out)
    source = read_dicom(record.path).pixels
    with SynthSet(out) as synth:
        assert len(synth) == 1 and synth.attrs["filter"] == "decision==approved"
        meta = synth.record(0).meta
        assert (meta["decision"], meta["reviewer"], meta["realism_score"]) == (1, "reader-7", 5.0)
        assert (meta["source_image_id"], meta["source_split"], meta["task"]) == (record.image_id, "training", "inpaint")
        stored, generated = session.candidate_pixels(approved)
        np.testing.assert_array_equal(synth.image(0), stored)
        np.testing.assert_array_equal(synth.source(0), source)
        np.testing.assert_array_equal(synth.mask(0), generated > 0)
        assert synth.record(0).box_labels == ("Mass",)

    # Approved and rejected, with COCO JSON + PNG.
    dialog.decision_checks["rejected"].setChecked(True)
    assert dialog.count_label.text().startswith("2 candidate(s)")
    both = tmp_path / "sets" / "reviewed.h5"
    dialog.path_edit.setText(str(both))
    dialog.coco_check.setChecked(True)
    dialog.coco_edit.setText(str(tmp_path / "coco"))
    run_dialog(qtbot, dialog)
    with SynthSet(both) as synth:
        assert sorted(synth.meta["decision"].tolist()) == [0, 1]
        reasons = {synth.record(r).meta["reject_reason"] for r in range(len(synth))}
        assert reasons == {"", "artefact"}
        assert math.isnan(synth.record(int(np.argmin(synth.meta["decision"]))).meta["realism_score"])
    coco = json.loads(dialog.summary.coco_json.read_text())
    assert len(coco["images"]) == 2 and len(list((tmp_path / "coco" / "images").glob("*.png"))) == 2


def test_test_split_sources_are_refused_unless_overridden(qtbot, worker, catalog, mammo_root, tmp_path) -> None:
    session = ReviewSession.open(mammo_root, tmp_path / "session")
    record = first_image(mammo_root, "test")
    (cid,) = add_candidates(session, record.path, record.image_id, seeds=(3,))
    session.review(cid, "approved")
    dialog = ExportDialog(session, catalog, worker)
    qtbot.addWidget(dialog)
    dialog.path_edit.setText(str(tmp_path / "leak.h5"))
    assert "test split" in dialog.count_label.text() and not dialog.start_button.isEnabled()
    assert dialog.start() is None and "Refused" in dialog.result_label.text()
    assert not (tmp_path / "leak.h5").exists()

    # The job refuses too (the exporter's own check), whoever calls it.
    plan = plan_export(session, catalog, tmp_path / "leak.h5", ExportFilter())
    with pytest.raises(DataError, match="test split"):
        export_reviewed(plan, session)

    dialog.allow_test.setChecked(True)
    assert dialog.start_button.isEnabled()
    run_dialog(qtbot, dialog)
    with SynthSet(tmp_path / "leak.h5") as synth:
        assert synth.record(0).meta["source_split"] == "test" and bool(synth.attrs["test_split_sources_allowed"])



def test_batch_generation_to_a_set_and_to_the_gallery(qtbot, worker, catalog, mammo_root, tmp_path) -> None:
    with qtbot.waitSignal(worker.engine_changed, timeout=30_000):
        worker.load_engine(EngineSpec.biharmonic(64, device="cpu"))
    session = ReviewSession.open(mammo_root, tmp_path / "session")
    options = GenerateOptions(candidates=2, first_seed=11, hole_context=2.0)
    dialog = BatchDialog(session, catalog, worker, options)
    qtbot.addWidget(dialog)
    assert dialog.candidates_spin.value() == 2 and dialog.seed_spin.value() == 11
    dialog.n_spin.setValue(2)

    # Straight to a set: unreviewed samples, linop-export's sampling (normal training mammograms).
    dialog.to_set.setChecked(True)
    out = tmp_path / "batch.h5"
    dialog.path_edit.setText(str(out))
    run_dialog(qtbot, dialog)
    normal = {r.image_id for r in open_dataset(mammo_root).normal_pool("training")}
    with SynthSet(out) as synth:
        assert len(synth) == 4 and set(synth.meta["decision"].tolist()) == {-1}
        assert set(synth.meta["source_image_id"].tolist()) <= normal
        assert set(synth.meta["source_split"].tolist()) == {"training"}

    # To the review session: boxes added to the images, candidates waiting for review.
    dialog.to_session.setChecked(True)
    with qtbot.waitSignal(dialog.finished_to_session, timeout=60_000) as blocker:
        dialog.start()
    image_ids = blocker.args[0]
    assert set(image_ids) <= normal
    assert len(session.candidates) == 4 and {c.decision for c in session.candidates.values()} == {"pending"}
    for entry in session.candidates.values():
        boxes = session.annotation(entry.image_id).boxes
        assert 0 <= entry.box_index < len(boxes)
        assert tuple(boxes[entry.box_index].box) == tuple(entry.provenance["boxes"][0])
    # Reopening the session finds them.
    assert len(ReviewSession.open(mammo_root, tmp_path / "session").candidates) == 4

    # The test split needs the override, as in linop-export.
    dialog.split_combo.setCurrentText("test")
    assert dialog.start() is None and "Refused" in dialog.result_label.text()
