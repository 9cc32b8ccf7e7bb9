"""The reader-study report: per reader and pooled discrimination, agreement and localisation; JSON + markdown.

:func:`build_report` computes (see :mod:`linop_core.study.stats` for the methods); :func:`write_report`
writes ``report.json``, ``report.md`` and ``roc.png`` atomically. The verdict is said in words from the 95 %
interval of the AUC: an interval containing 0.5 means the readers could not tell synthetic from real.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from linop_core.fileio import atomic_write_bytes, atomic_write_text
from linop_core.study.answers import SYNTHETIC_AT, Answer, Confidence
from linop_core.study.model import Study, Truth
from linop_core.study.plot import roc_png
from linop_core.study.stats import (
    CONFIDENCE_LEVEL,
    DEFAULT_RESAMPLES,
    AucResult,
    Readings,
    auc_with_ci,
    cohen_kappa,
    fleiss,
    operating_point,
    point_in_boxes,
)

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
ROC_PNG = "roc.png"


def verdict(result: AucResult) -> str:
    """The AUC in words."""
    if result.auc is None:
        return "no AUC: the answers cover only real or only synthetic cases"
    if result.ci is None:
        return f"AUC {result.auc:.2f}; too few answered cases of each kind for an interval"
    low, high = result.ci
    span = f"AUC {result.auc:.2f}, 95 % CI {low:.2f}-{high:.2f}"
    if low <= 0.5 <= high:
        return f"readers could not tell synthetic from real ({span} contains 0.5)"
    if low > 0.5:
        return f"readers told synthetic from real better than chance ({span})"
    return f"readers called real cases synthetic more often than synthetic ones ({span}, below chance)"


def _readings(study: Study, answers: Mapping[str, Mapping[str, Answer]], readers: list[str]) -> Readings:
    truth = np.array([1 if c.truth is Truth.SYNTHETIC else 0 for c in study.cases], dtype=int)
    scores = np.full((len(study.cases), len(readers)), np.nan)
    for r, reader in enumerate(readers):
        for c, case in enumerate(study.cases):
            answer = answers[reader].get(case.case_id)
            if answer is not None:
                scores[c, r] = int(answer.confidence)
    return Readings(truth, scores)


def _localisation(study: Study, answers: list[Answer], tolerance: float) -> dict[str, Any]:
    marked = [a for a in answers if a.mark is not None]
    hits = [a for a in marked if point_in_boxes(a.mark, study.case(a.case_id).lesion_boxes, tolerance)]  # type: ignore[arg-type]
    by_truth = {}
    for truth in Truth:
        group = [a for a in marked if study.case(a.case_id).truth is truth]
        hit = sum(1 for a in hits if study.case(a.case_id).truth is truth)
        by_truth[truth.value] = {"n_marked": len(group), "hits": hit, "hit_rate": hit / len(group) if group else None}
    return {
        "n_marked": len(marked),
        "hits": len(hits),
        "hit_rate": len(hits) / len(marked) if marked else None,
        "by_truth": by_truth,
    }


def _summary(
    study: Study, readings: Readings, answers: list[Answer], *, n_resamples: int, seed: int, tolerance: float
) -> dict[str, Any]:
    auc = auc_with_ci(readings, n_resamples=n_resamples, seed=seed)
    truth, score = readings.flat()
    point = operating_point(truth, score)
    forced = [a.label is study.case(a.case_id).truth for a in answers]
    return {
        "n_answers": len(answers),
        "n_synthetic_cases": auc.n_synthetic,
        "n_real_cases": auc.n_real,
        "auc": auc.auc,
        "auc_ci95": list(auc.ci) if auc.ci else None,
        **asdict(point),
        "forced_choice_accuracy": float(np.mean(forced)) if forced else None,
        "localisation": _localisation(study, answers, tolerance),
        "median_seconds": float(np.median([a.seconds for a in answers])) if answers else None,
        "verdict": verdict(auc),
    }


def _agreement(readings: Readings, readers: list[str]) -> dict[str, Any]:
    calls = np.where(np.isnan(readings.scores), np.nan, (readings.scores >= int(SYNTHETIC_AT)).astype(float))
    pairs = []
    for a, b in combinations(range(len(readers)), 2):
        both = ~np.isnan(readings.scores[:, a]) & ~np.isnan(readings.scores[:, b])
        pairs.append({
            "readers": [readers[a], readers[b]],
            "n_cases": int(both.sum()),
            "cohen_kappa": cohen_kappa(calls[both, a].astype(int), calls[both, b].astype(int)),
            "cohen_kappa_weighted_5pt": cohen_kappa(
                readings.scores[both, a].astype(int), readings.scores[both, b].astype(int), weights="quadratic"
            ),
        })
    everyone = ~np.isnan(readings.scores).any(axis=1) if readers else np.zeros(0, dtype=bool)
    return {
        "on": f"the synthetic/real call at confidence >= {int(SYNTHETIC_AT)}",
        "cohen": pairs,
        "fleiss": {"n_cases": int(everyone.sum()), "kappa": fleiss(calls[everyone]) if len(readers) > 1 else None},
    }


def build_report(
    study: Study,
    answers: Mapping[str, Mapping[str, Answer]],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    mark_tolerance: float = 0.0,
) -> dict[str, Any]:
    """Everything ``report.json`` holds (see the module docstring)."""
    readers = sorted(answers)
    readings = _readings(study, answers, readers)
    options = {"n_resamples": n_resamples, "seed": seed, "tolerance": mark_tolerance}
    per_reader = {
        name: _summary(
            study, Readings(readings.truth, readings.scores[:, [r]]), list(answers[name].values()), **options
        )
        for r, name in enumerate(readers)
    }
    every_answer = [a for name in readers for a in answers[name].values()]
    pooled = _summary(study, readings, every_answer, **options) if readers else None
    return {
        "study": str(study.path) if study.path else None,
        "study_uid": study.study_uid,
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "task": study.task,
        "n_cases": len(study.cases),
        "n_synthetic": sum(c.truth is Truth.SYNTHETIC for c in study.cases),
        "n_real": sum(c.truth is Truth.REAL for c in study.cases),
        "scale": {int(c): c.text for c in Confidence},
        "threshold": f"confidence >= {int(SYNTHETIC_AT)} is a 'synthetic' call (accuracy, sensitivity, specificity)",
        "methods": {
            "auc": "sklearn roc_auc_score, synthetic = positive, score = confidence 1-5",
            "interval": (
                f"{CONFIDENCE_LEVEL:.0%} scipy.stats.bootstrap percentile interval, {n_resamples} resamples of the "
                f"cases stratified by truth, seed {seed}; pooled = every answer of every reader"
            ),
            "kappa": "sklearn cohen_kappa_score per pair; statsmodels fleiss_kappa over cases every reader answered",
            "localisation": f"a mark inside any lesion box of the case, grown by {mark_tolerance:g} px",
        },
        "readers": per_reader,
        "pooled": pooled,
        "agreement": _agreement(readings, readers),
        "verdict": pooled["verdict"] if pooled else "no answers yet",
        "plot": ROC_PNG,
    }


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _row(name: str, s: Mapping[str, Any]) -> str:
    ci = s["auc_ci95"]
    loc = s["localisation"]
    hit = f"{_fmt(loc['hit_rate'])} ({loc['hits']}/{loc['n_marked']})" if loc["n_marked"] else "–"
    return (
        f"| {name} | {s['n_answers']} | {_fmt(s['auc'])} | {f'{ci[0]:.2f}-{ci[1]:.2f}' if ci else '–'} | "
        f"{_fmt(s['accuracy'])} | {_fmt(s['sensitivity'])} | {_fmt(s['specificity'])} | "
        f"{_fmt(s['forced_choice_accuracy'])} | {hit} | {_fmt(s['median_seconds'], 1)} |"
    )


def report_markdown(report: Mapping[str, Any]) -> str:
    lines = [
        f"# Reader study {report['study_uid']}",
        "",
        f"**{report['verdict']}.**",
        "",
        f"{report['n_cases']} cases ({report['n_synthetic']} synthetic, {report['n_real']} real, {report['task']}), "
        f"{len(report['readers'])} reader(s). Scale: "
        + ", ".join(f"{k} {v}" for k, v in report["scale"].items())
        + f". Threshold: {report['threshold']}.",
        "",
        "| reader | answers | AUC | 95 % CI | accuracy | sensitivity | specificity | forced choice | "
        "mark hit rate | median s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row(name, summary) for name, summary in report["readers"].items()]
    if report["pooled"] is not None:
        lines.append(_row("**pooled**", report["pooled"]))
    agreement = report["agreement"]
    lines += ["", f"## Agreement (on {agreement['on']})", ""]
    if agreement["cohen"]:
        lines += ["| readers | cases | Cohen's kappa | weighted kappa (5-point) |", "|---|---|---|---|"]
        lines += [
            f"| {' / '.join(p['readers'])} | {p['n_cases']} | {_fmt(p['cohen_kappa'])} | "
            f"{_fmt(p['cohen_kappa_weighted_5pt'])} |"
            for p in agreement["cohen"]
        ]
        fl = agreement["fleiss"]
        lines += ["", f"Fleiss' kappa over the {fl['n_cases']} case(s) every reader answered: {_fmt(fl['kappa'])}."]
    else:
        lines.append("One reader: no agreement to measure.")
    lines += ["", f"![ROC]({report['plot']})", "", "## Methods", ""]
    lines += [f"- {name}: {text}" for name, text in report["methods"].items()]
    return "\n".join(lines) + "\n"


def write_report(
    study: Study,
    answers: Mapping[str, Mapping[str, Answer]],
    out_dir: str | os.PathLike[str],
    **options: Any,
) -> dict[str, Any]:
    """Build the report and write ``report.json``, ``report.md`` and ``roc.png`` under ``out_dir`` atomically."""
    out = Path(out_dir)
    report = build_report(study, answers, **options)
    readers = sorted(answers)
    readings = _readings(study, answers, readers)
    curves = {
        name: Readings(readings.truth, readings.scores[:, [r]]).flat() for r, name in enumerate(readers)
    }
    pooled = readings.flat() if readers else None
    png = roc_png(curves, pooled, title=textwrap.fill(f"Reader study {study.study_uid}: {report['verdict']}", 60))
    atomic_write_bytes(out / ROC_PNG, png)
    atomic_write_text(out / REPORT_JSON, json.dumps(report, indent=2) + "\n")
    atomic_write_text(out / REPORT_MD, report_markdown(report))
    return report
