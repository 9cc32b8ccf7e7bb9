"""`linop-study report` with simulated readers: an oracle reader, a coin-flipping reader, identical readers,
an inverted reader, marks, and the written report files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from linop_core.cli.study import main
from linop_core.study import AnswerStore, Confidence, DisplayMode, Study, StudyOptions, Truth
from linop_core.study.answers import Answer, answers_path, load_all_answers
from linop_core.study.model import CaseSource, SelectionReport, SetRef, SourceKind, StudyCase
from linop_core.study.report import build_report, verdict
from linop_core.study.stats import AucResult, Readings, auc_with_ci, batch_auc, cohen_kappa, fleiss

BOX = (10.0, 20.0, 30.0, 40.0)


def make_study(tmp_path: Path, n_cases: int, *, seed: int = 0) -> Study:
    """A saved study of ``n_cases`` cases, half synthetic, in random order (no pixels: the report needs none)."""
    rng = np.random.default_rng(seed)
    truths = [Truth.SYNTHETIC if i % 2 else Truth.REAL for i in rng.permutation(n_cases)]
    cases = tuple(
        StudyCase(
            case_id=f"{i:012x}",
            truth=truth,
            source=(
                CaseSource(SourceKind.SET, set=0, sample_index=i)
                if truth is Truth.SYNTHETIC
                else CaseSource(SourceKind.ROOT, path=f"images/s/{i}.dicom", size_bytes=1)
            ),
            lesion_boxes=(BOX,),
            lesion_labels=("Mass",),
            image_size=(100, 100),
            crop=(0, 0, 100, 100),
        )
        for i, truth in enumerate(truths)
    )
    options = StudyOptions(n_cases, 0.5, DisplayMode.WHOLE, 512, seed, ("approved",), 1.5, True)
    selection = SelectionReport(n_cases, n_cases // 2, n_cases // 2, n_cases // 2, n_cases, 0, 0)
    study = Study(
        study_uid=f"{seed:016x}", created_utc="2025-01-01T00:00:00Z", app_version="test", task="mammo",
        root=tmp_path / "root", sets=(SetRef(tmp_path / "a.h5", "0" * 64, 1, n_cases),), options=options,
        selection=selection, cases=cases,
    )  # fmt: skip
    return study.save(tmp_path / "study.json")


def answer_all(study: Study, reader: str, score: object, mark: object = None) -> None:
    """Record ``score(case) -> 1..5`` (and ``mark(case) -> (x, y) | None``) for every case."""
    store = AnswerStore(study, reader)
    for case in study.cases:
        confidence = Confidence(score(case))  # type: ignore[operator]
        label = confidence.implied_label() or Truth.SYNTHETIC
        point = mark(case) if callable(mark) else None
        store.record(Answer(case.case_id, label, confidence, point, 2.0, "2025-01-01T00:00:00Z"))


def oracle(case: StudyCase) -> int:
    return 5 if case.truth is Truth.SYNTHETIC else 1


def test_an_oracle_reader_has_auc_1(tmp_path: Path) -> None:
    study = make_study(tmp_path, 40)
    answer_all(study, "oracle", oracle)
    report = build_report(study, load_all_answers(study), n_resamples=300)
    summary = report["readers"]["oracle"]
    assert summary["auc"] == 1.0 and summary["auc_ci95"] == [1.0, 1.0]
    assert summary["accuracy"] == summary["sensitivity"] == summary["specificity"] == 1.0
    assert "better than chance" in report["verdict"]


def test_a_random_reader_gets_an_interval_around_one_half(tmp_path: Path) -> None:
    study = make_study(tmp_path, 200, seed=1)
    rng = np.random.default_rng(5)
    answer_all(study, "coin", lambda case: int(rng.integers(1, 6)))
    report = build_report(study, load_all_answers(study), n_resamples=1000)
    summary = report["readers"]["coin"]
    low, high = summary["auc_ci95"]
    assert low < 0.5 < high and high - low < 0.25
    assert "could not tell synthetic from real" in summary["verdict"] and "contains 0.5" in summary["verdict"]


def test_the_interval_resamples_cases_with_a_fixed_seed(tmp_path: Path) -> None:
    truth = np.array([1, 0] * 15)
    scores = np.where(truth == 1, 4.0, 2.0)[:, None] + np.random.default_rng(0).integers(-2, 3, size=(30, 1))
    readings = Readings(truth, np.clip(scores, 1, 5))
    first = auc_with_ci(readings, n_resamples=400, seed=7)
    assert first == auc_with_ci(readings, n_resamples=400, seed=7)
    assert first.ci != auc_with_ci(readings, n_resamples=400, seed=8).ci
    assert first.ci[0] <= first.auc <= first.ci[1]
    one_class = Readings(np.ones(4, dtype=int), np.full((4, 1), 3.0))
    assert auc_with_ci(one_class) == AucResult(None, None, 4, 0)


def test_the_batched_auc_is_sklearns_auc() -> None:
    rng = np.random.default_rng(9)
    positives, negatives = rng.integers(1, 6, (6, 12)).astype(float), rng.integers(1, 6, (6, 9)).astype(float)
    for row in range(6):
        truth = np.r_[np.ones(12), np.zeros(9)]
        expected = roc_auc_score(truth, np.r_[positives[row], negatives[row]])
        assert batch_auc(positives, negatives)[row] == pytest.approx(expected)
    positives[2, :4] = negatives[3, 1] = np.nan  # unanswered
    kept = ~np.isnan(positives[2])
    expected = roc_auc_score(np.r_[np.ones(kept.sum()), np.zeros(9)], np.r_[positives[2, kept], negatives[2]])
    assert batch_auc(positives, negatives)[2] == pytest.approx(expected)


def test_pooled_readers_who_answered_different_cases(tmp_path: Path) -> None:
    study = make_study(tmp_path, 20, seed=8)
    answer_all(study, "full", oracle)
    store = AnswerStore(study, "half")
    for case in study.cases[:10]:
        store.record(Answer(case.case_id, Truth.REAL, Confidence.PROBABLY_REAL, None, 1.0, "2025-01-01T00:00:00Z"))
    report = build_report(study, load_all_answers(study), n_resamples=200)
    pooled = report["pooled"]
    assert pooled["n_answers"] == 30 and report["readers"]["half"]["n_answers"] == 10
    assert pooled["auc_ci95"][0] <= pooled["auc"] <= pooled["auc_ci95"][1] < 1.0
    assert report["agreement"]["cohen"][0]["n_cases"] == 10


def test_identical_readers_have_kappa_1_and_an_inverted_reader_is_below_chance(tmp_path: Path) -> None:
    study = make_study(tmp_path, 30, seed=2)
    rng = np.random.default_rng(3)
    scores = {case.case_id: int(rng.integers(1, 6)) for case in study.cases}
    for reader in ("ann", "ben", "cat"):
        answer_all(study, reader, lambda case: scores[case.case_id])
    answer_all(study, "contrarian", lambda case: 6 - oracle(case))
    report = build_report(study, load_all_answers(study), n_resamples=200)
    pairs = {tuple(p["readers"]): p for p in report["agreement"]["cohen"]}
    for pair in (("ann", "ben"), ("ann", "cat"), ("ben", "cat")):
        assert pairs[pair]["cohen_kappa"] == 1.0 and pairs[pair]["cohen_kappa_weighted_5pt"] == 1.0
    assert report["agreement"]["fleiss"]["n_cases"] == 30
    assert report["readers"]["contrarian"]["auc"] == 0.0
    assert "below chance" in report["readers"]["contrarian"]["verdict"]
    calls = np.array([[scores[c.case_id] >= 3] * 3 for c in study.cases], dtype=int)
    assert fleiss(calls) == 1.0
    assert cohen_kappa(np.array([1, 0, 1, 0]), np.array([0, 1, 0, 1])) == -1.0


def test_marks_inside_the_lesion_box_are_hits(tmp_path: Path) -> None:
    study = make_study(tmp_path, 10, seed=4)
    inside, near = (20.0, 30.0), (32.0, 30.0)  # the box is x 10-30, y 20-40
    by_index = {case.case_id: i for i, case in enumerate(study.cases)}
    answer_all(study, "marker", oracle, mark=lambda case: [inside, near, None][by_index[case.case_id] % 3])
    answers = load_all_answers(study)
    loc = build_report(study, answers, n_resamples=100)["readers"]["marker"]["localisation"]
    assert loc["n_marked"] == 7 and loc["hits"] == 4 and loc["hit_rate"] == pytest.approx(4 / 7)
    tolerant = build_report(study, answers, n_resamples=100, mark_tolerance=2.0)["readers"]["marker"]
    assert tolerant["localisation"]["hits"] == 7


def test_verdict_words() -> None:
    assert "could not tell" in verdict(AucResult(0.52, (0.41, 0.63), 20, 20))
    assert "better than chance" in verdict(AucResult(0.8, (0.7, 0.9), 20, 20))
    assert "too few" in verdict(AucResult(0.8, None, 1, 1))


def test_report_cli_writes_markdown_json_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = make_study(tmp_path, 20, seed=6)
    rng = np.random.default_rng(1)
    answer_all(study, "r1", oracle)
    answer_all(study, "r2", lambda case: int(rng.integers(1, 6)))
    out = tmp_path / "report"
    assert main(["report", str(study.path), "--out", str(out), "--resamples", "200"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["readers"]) == {"r1", "r2"} and report["pooled"]["n_answers"] == 40
    markdown = (out / "report.md").read_text()
    assert report["verdict"] in markdown and "| r1 |" in markdown and "Fleiss" in markdown
    assert (out / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().out
    default = tmp_path / "study.report"
    assert main(["report", str(study.path), "--resamples", "100"]) == 0 and (default / "report.md").exists()


def test_report_refuses_a_malformed_answers_file_in_one_line(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    study = make_study(tmp_path, 6, seed=7)
    answer_all(study, "r1", oracle)
    path = answers_path(study.path, "r1")
    lines = path.read_text().splitlines()
    lines[4] = lines[4].replace('"label": "synthetic"', '"label": "maybe"').replace('"label": "real"', '"label": "x"')
    path.write_text("\n".join(lines) + "\n")
    assert main(["report", str(study.path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}:5: not a valid answer" in err
    path.unlink()
    assert main(["report", str(study.path)]) == 1
    assert "no reader has answered yet" in capsys.readouterr().err
