"""Multi-reader review: each reader's decision kept apart, consensus rules, disputes, and every reader's
verdict in the exported set's provenance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from linop_core.catalog import Catalog
from linop_core.dicom import read_dicom
from linop_core.engines import BiharmonicEngine
from linop_core.review.consensus import ConsensusRule, consensus, disputed
from linop_core.review.export import ExportFilter, export_reviewed, plan_export
from linop_core.review.session import ImageAnnotation, LesionBox, ReviewSession
from linop_core.synthesis import InpaintRequest, synthesize
from linop_core.synthset import SynthSet
from linop_core.vindr import open_dataset
from linop_core.vocab import Decision


def _session_with_pixels(tmp_path: Path, n: int) -> tuple[ReviewSession, list[str]]:
    session = ReviewSession.open(tmp_path / "root", tmp_path / "session")
    pixels, generated = np.zeros((4, 4), np.uint16), np.zeros((4, 4), np.float32)
    entries = [session.add_candidate(image_id="img", box_index=0, seed=k, engine="biharmonic", pixels=pixels,
                                     generated=generated) for k in range(n)]
    return session, [e.candidate_id for e in entries]


def test_each_readers_decision_is_kept_apart_and_survives_reopening(tmp_path: Path) -> None:
    session, (cid,) = _session_with_pixels(tmp_path, 1)
    session.review(cid, "approved", reviewer="ann")
    session.review(cid, "rejected", reviewer="bob", reason="seam", realism_score=2)
    again = ReviewSession.open(tmp_path / "root", tmp_path / "session")
    entry = again.candidates[cid]
    assert entry.review_by("ann").decision is Decision.APPROVED
    assert entry.review_by("bob").decision is Decision.REJECTED and entry.review_by("bob").reject_reason == "seam"
    assert entry.decision is Decision.REJECTED and entry.reviewer == "bob"  # the latest, as for one reader
    assert again.readers() == ["ann", "bob"]
    again.review(cid, "pending", reviewer="bob")  # bob withdraws his decision; ann's stays
    assert set(again.candidates[cid].reviews) == {"ann"}


def test_a_session_from_before_per_reader_decisions_loads_its_decision_as_one_reader(tmp_path: Path) -> None:
    session, (cid,) = _session_with_pixels(tmp_path, 1)
    data = json.loads(session.path.read_text())
    entry = data["candidates"][0]
    entry.pop("reviews")
    entry.update(decision="approved", reviewer="ann", reviewed_utc="2026-01-01T00:00:00+00:00")
    session.path.write_text(json.dumps(data))
    again = ReviewSession.open(tmp_path / "root", tmp_path / "session")
    assert again.candidates[cid].review_by("ann").decision is Decision.APPROVED


@pytest.mark.parametrize(
    ("votes", "rule", "min_readers", "expected"),
    [
        (["approved", "approved"], ConsensusRule.ALL, 2, Decision.APPROVED),
        (["approved", "rejected"], ConsensusRule.ALL, 2, Decision.REJECTED),
        (["approved"], ConsensusRule.ALL, 2, Decision.PENDING),  # too few readers yet
        (["approved", "approved", "rejected"], ConsensusRule.MAJORITY, 1, Decision.APPROVED),
        (["approved", "rejected"], ConsensusRule.MAJORITY, 1, Decision.PENDING),  # a tie is no majority
        (["rejected", "rejected", "approved"], ConsensusRule.MAJORITY, 1, Decision.REJECTED),
        (["rejected", "approved"], ConsensusRule.ANY, 1, Decision.APPROVED),
        ([], ConsensusRule.ANY, 1, Decision.PENDING),
    ],
)
def test_consensus_rules(tmp_path: Path, votes, rule, min_readers, expected) -> None:
    session, (cid,) = _session_with_pixels(tmp_path, 1)
    for k, vote in enumerate(votes):
        session.review(cid, vote, reviewer=f"r{k}", reason="texture" if vote == "rejected" else None)
    assert consensus(session.candidates[cid], rule, min_readers) is expected


def test_disputed_lists_only_candidates_readers_disagree_on(tmp_path: Path) -> None:
    session, (same, split, alone) = _session_with_pixels(tmp_path, 3)
    for reader in ("ann", "bob"):
        session.review(same, "approved", reviewer=reader)
    session.review(split, "approved", reviewer="ann")
    session.review(split, "rejected", reviewer="bob", reason="artefact")
    session.review(alone, "approved", reviewer="ann")
    assert [e.candidate_id for e in disputed(session.candidates.values())] == [split]


def test_export_applies_the_consensus_rule_and_records_every_reader(mammo_root: Path, tmp_path: Path) -> None:
    record = sorted((r for r in open_dataset(mammo_root).records if r.split == "training"),
                    key=lambda r: r.image_id)[0]
    image = read_dicom(record.path)
    h, w = image.pixels.shape
    box = (w * 0.45, h * 0.45, w * 0.55, h * 0.55)
    session = ReviewSession.open(mammo_root, tmp_path / "session")
    session.apply(record.image_id, ImageAnnotation(boxes=[LesionBox(box)]))
    candidates = synthesize(image, InpaintRequest(box=box, seeds=(0, 1)), BiharmonicEngine(64), anatomy_check=False)
    entries = [session.store_candidate(image_id=record.image_id, box_index=0, candidate=c) for c in candidates]
    session.record_candidates(entries)
    agreed, split = (e.candidate_id for e in entries)
    for reader in ("ann", "bob", "cy"):
        session.review(agreed, "approved", reviewer=reader, realism_score=4)
    session.review(split, "approved", reviewer="ann")
    session.review(split, "rejected", reviewer="bob", reason="seam")

    rule = ExportFilter(consensus=ConsensusRule.ALL, min_readers=2)
    plan = plan_export(session, Catalog.open(mammo_root), tmp_path / "all.h5", rule)
    assert [e.candidate_id for e in plan.entries] == [agreed]  # bob rejected the other one
    export_reviewed(plan, session)
    with SynthSet(tmp_path / "all.h5") as synth:
        meta = synth.record(0).meta
        verdicts = json.loads(meta["reader_verdicts"])
        assert [v["reader"] for v in verdicts] == ["ann", "bob", "cy"]
        assert {v["decision"] for v in verdicts} == {"approved"} and meta["reviewer"] == "all of ann,bob,cy"
        assert "consensus==all" in str(synth.attrs["filter"])
