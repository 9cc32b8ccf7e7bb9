"""Rows of a benchmark table and the paired comparisons between them, from the finished cells' test outputs.

A *row* is one (real portion, synthetic share, synthetic source) over its training seeds. Its value is the
seed-mean of the metric; its interval, and the interval of the difference between two rows, come from
:mod:`trainer.bench.paired` (test images and seeds resampled, both rows scored on the same resamples).

Comparisons made for every real portion:

- each augmented row against the baseline (share 0) of its portion: does augmentation help at all;
- when the grid has several synthetic sources, the first source (the method under test, e.g. ``mat``)
  against each other source (the controls) at the same share, as ``first - control``: does it beat the
  simple alternatives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from trainer.bench.metrics import Ap50Scorer, ClassScorer, Interval
from trainer.bench.paired import ItemScore, PairedDifference, bootstrap_rows, difference_of

RowKey = tuple[float, float | str, str]  # (portion, synthetic share, source)


def row_key(record: dict[str, Any]) -> RowKey:
    cell = record["cell"]
    return float(cell["portion"]), cell["synthetic"], str(cell.get("source", ""))


def seed_scorers(records: Sequence[dict[str, Any]], metric: str) -> list[ItemScore]:
    """One ``score(test indices)`` per record (seed), from the test outputs it stored."""
    scorers: list[ItemScore] = []
    for record in records:
        test = record["result"]["test"]
        if metric == "map50":
            from trainer.bench.detect import detections_from_json

            scorers.append(Ap50Scorer(*detections_from_json(test)))
            continue
        probs = torch.tensor(test["probs"], dtype=torch.float32).reshape(-1, 4)
        labels = torch.tensor(test["labels"], dtype=torch.int64)
        scorers.append(ClassScorer(probs, labels, metric))
    return scorers


def n_test_items(record: dict[str, Any]) -> int:
    return len(record["result"]["test"]["ids"])


def row_interval(records: Sequence[dict[str, Any]], metric: str, *, n_boot: int, level: float,
                 seed: int) -> Interval | None:  # fmt: skip
    """The interval of one row's seed-mean (records: its seeds, all tested on the same images)."""
    if n_boot <= 0 or not records or n_test_items(records[0]) < 2:
        return None
    boot = bootstrap_rows([seed_scorers(records, metric)], n_test_items(records[0]), n_boot=n_boot, level=level,
                          seed=seed)  # fmt: skip
    return boot.row(0)


@dataclass(frozen=True)
class Comparison:
    """``candidate - reference`` on their common seeds and the shared test images."""

    metric: str
    portion: float
    reference: RowKey
    candidate: RowKey
    seeds: tuple[int, ...]
    result: PairedDifference
    n_synthetic: int  # synthetic training images of the candidate row (first seed)
    n_synthetic_reference: int


def compare_rows(records: Sequence[dict[str, Any]], metric: str, *, n_boot: int, level: float,
                 seed: int) -> list[Comparison]:  # fmt: skip
    """Every comparison of the module docstring for which both rows have finished seeds in common."""
    rows: dict[RowKey, dict[int, dict[str, Any]]] = {}
    for record in records:
        rows.setdefault(row_key(record), {})[int(record["cell"]["seed"])] = record
    sources = list(dict.fromkeys(key[2] for key in rows if key[1] != 0))
    pairs: list[tuple[RowKey, RowKey]] = []
    for key in rows:
        portion, share, source = key
        if share == 0:
            continue
        baseline = (portion, 0.0, "")
        if baseline in rows:
            pairs.append((baseline, key))
    if len(sources) > 1:
        first = sources[0]
        for key in rows:
            portion, share, source = key
            if share != 0 and source == first:
                pairs += [((portion, share, other), key) for other in sources[1:] if (portion, share, other) in rows]
    out = []
    for k, (ref_key, cand_key) in enumerate(pairs):
        seeds = sorted(set(rows[ref_key]) & set(rows[cand_key]))
        ref = [rows[ref_key][s] for s in seeds]
        cand = [rows[cand_key][s] for s in seeds]
        if not seeds or n_boot <= 0 or n_test_items(ref[0]) < 2:
            continue  # nothing to resample
        if any(r["result"]["test"]["ids"] != ref[0]["result"]["test"]["ids"] for r in ref + cand):
            continue  # not paired: different test images
        ref_scores, cand_scores = seed_scorers(ref, metric), seed_scorers(cand, metric)
        n_items = n_test_items(ref[0])
        boot = bootstrap_rows([ref_scores, cand_scores], n_items, n_boot=n_boot, level=level, seed=seed + k)
        out.append(Comparison(
            metric=metric, portion=ref_key[0], reference=ref_key, candidate=cand_key, seeds=tuple(seeds),
            result=difference_of(boot, 0, 1, ref_scores, cand_scores, n_items),
            n_synthetic=int(cand[0]["result"]["n_synthetic_train"]),
            n_synthetic_reference=int(ref[0]["result"]["n_synthetic_train"]),
        ))  # fmt: skip
    return out
