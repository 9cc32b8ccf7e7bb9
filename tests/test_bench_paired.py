"""Paired bootstrap of two table rows, the fast AP@50 used inside it, and the comparisons the report makes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from trainer.bench.classify import auroc_or_nan
from trainer.bench.comparisons import compare_rows
from trainer.bench.metrics import Ap50Scorer, ClassScorer, accuracy, map50
from trainer.bench.paired import bootstrap_rows, paired_difference


class _MeanScore:
    """A 'metric' that is the mean of per-item values: its resample value is known in closed form."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def __call__(self, items: np.ndarray) -> float:
        return float(self.values[items].mean())


def _rows(difference: float, n_items: int = 200, n_seeds: int = 3, seed: int = 0) -> tuple[list, list]:
    """Reference and candidate rows: per-item values share a large item effect (what pairing removes)."""
    rng = np.random.default_rng(seed)
    item_effect = rng.normal(0.0, 1.0, n_items)
    reference, candidate = [], []
    for _ in range(n_seeds):
        seed_shift = rng.normal(0.0, 0.02)
        reference.append(_MeanScore(item_effect + seed_shift + rng.normal(0.0, 0.05, n_items)))
        candidate.append(_MeanScore(item_effect + seed_shift + difference + rng.normal(0.0, 0.05, n_items)))
    return reference, candidate


def test_paired_bootstrap_recovers_a_known_difference_and_excludes_zero() -> None:
    reference, candidate = _rows(0.1)
    result = paired_difference(reference, candidate, 200, n_boot=400, level=0.95, seed=1)
    assert result.difference.value == pytest.approx(0.1, abs=0.02)
    assert result.difference.low < 0.1 < result.difference.high
    assert result.excludes_zero and result.verdict == "higher" and result.share_positive == 1.0
    assert len(result.per_seed) == 3 and all(d == pytest.approx(0.1, abs=0.03) for d in result.per_seed)
    # Pairing: the rows' own intervals overlap (the item effect dominates them), their difference's does not.
    assert result.reference.high > result.candidate.low
    assert result.difference.high - result.difference.low < 0.3 * (result.reference.high - result.reference.low)


def test_paired_bootstrap_without_a_difference_includes_zero_and_is_deterministic() -> None:
    reference, candidate = _rows(0.0, seed=3)
    a = paired_difference(reference, candidate, 200, n_boot=300, seed=5)
    b = paired_difference(reference, candidate, 200, n_boot=300, seed=5)
    assert a.difference.low < 0.0 < a.difference.high and not a.excludes_zero
    assert a.verdict == "no difference shown"
    assert (a.difference.low, a.difference.high) == (b.difference.low, b.difference.high)
    with pytest.raises(ValueError, match="pair them"):
        paired_difference(reference, candidate[:2], 200)


def test_seed_resampling_widens_the_interval_when_seeds_disagree() -> None:
    values = np.linspace(0.0, 1.0, 50)
    rows = [[_MeanScore(values + shift) for shift in (0.0, 0.3, 0.6)]]
    with_seeds = bootstrap_rows(rows, 50, n_boot=300, level=0.9, seed=0).row(0)
    items_only = bootstrap_rows(rows, 50, n_boot=300, level=0.9, seed=0, resample_seeds=False).row(0)
    assert with_seeds.value == items_only.value == pytest.approx(0.8)
    assert (with_seeds.high - with_seeds.low) > 1.5 * (items_only.high - items_only.low)


def _random_detections(n_images: int, seed: int) -> tuple[list[dict], list[dict]]:
    g = torch.Generator().manual_seed(seed)
    preds, targets = [], []
    for i in range(n_images):
        n = 0 if i % 3 == 0 else int(torch.randint(1, 3, (1,), generator=g))  # a third are normal images
        xy = torch.rand(n, 2, generator=g) * 200
        boxes = torch.cat([xy, xy + 10 + torch.rand(n, 2, generator=g) * 40], 1)
        k = int(torch.randint(0, 6, (1,), generator=g))
        if n:
            jitter = torch.randn(k, 4, generator=g) * 6
            guess = boxes[torch.randint(0, n, (k,), generator=g)] + jitter
        else:
            corner = torch.rand(k, 2, generator=g) * 200
            guess = torch.cat([corner, corner + 20], 1)
        low, high = torch.minimum(guess[:, :2], guess[:, 2:] - 1), torch.maximum(guess[:, 2:], guess[:, :2] + 1)
        guess = torch.cat([low, high], 1)
        preds.append({"boxes": guess, "scores": torch.rand(k, generator=g), "labels": torch.ones(k, dtype=torch.int64)})
        targets.append({"boxes": boxes, "labels": torch.ones(n, dtype=torch.int64)})
    return preds, targets


def test_ap50_scorer_equals_torchmetrics_on_the_set_and_on_resamples() -> None:
    preds, targets = _random_detections(45, seed=0)
    scorer = Ap50Scorer(preds, targets)
    assert scorer(np.arange(45)) == pytest.approx(map50(preds, targets), abs=1e-6)
    rng = np.random.default_rng(0)
    for _ in range(4):
        items = rng.integers(0, 45, 45)  # with repeats, in random order
        expected = map50([preds[i] for i in items], [targets[i] for i in items])
        assert scorer(items) == pytest.approx(expected, abs=1e-6)
    normals = np.array([0, 3, 6])  # no mass on these images: AP is undefined
    assert np.isnan(scorer(normals))


def test_class_scorer_equals_torchmetrics_on_the_set_and_on_resamples() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 4
    logits = torch.randn(60, 4, generator=g) + 1.5 * torch.nn.functional.one_hot(labels, 4)
    probs = logits.softmax(1)
    probs[:10] = torch.full((4,), 0.25)  # ties: equal scores count half in the AUROC
    auroc, acc = ClassScorer(probs, labels, "auroc"), ClassScorer(probs, labels, "accuracy")
    rng = np.random.default_rng(0)
    for items in [np.arange(60), *(rng.integers(0, 60, 60) for _ in range(4))]:
        index = torch.from_numpy(items)
        assert auroc(items) == pytest.approx(auroc_or_nan(probs[index], labels[index]), abs=1e-6)
        assert acc(items) == pytest.approx(accuracy(probs[index], labels[index]), abs=1e-6)
    assert np.isnan(auroc(np.array([0, 4, 8])))  # one class only: undefined
    with pytest.raises(ValueError, match="metric"):
        ClassScorer(probs, labels, "f1")


def _detect_record(source: str, share: float, seed: int, preds: list[dict], targets: list[dict]) -> dict[str, Any]:
    return {
        "cell": {"portion": 1.0, "synthetic": share, "seed": seed, "source": source},
        "key": f"{source}{share}{seed}",
        "result": {
            "metrics": {"map50": map50(preds, targets)},
            "n_real_train": 40,
            "n_synthetic_train": int(40 * share),
            "test": {
                "ids": [str(i) for i in range(len(targets))],
                "targets": [{"boxes": t["boxes"].tolist()} for t in targets],
                "predictions": [{"boxes": p["boxes"].tolist(), "scores": p["scores"].tolist()} for p in preds],
            },
        },
    }


def test_comparisons_pair_each_augmented_row_with_its_baseline_and_the_first_source_with_the_others() -> None:
    _, targets = _random_detections(30, seed=1)
    perfect = [{"boxes": t["boxes"], "scores": torch.ones(len(t["boxes"])), "labels": t["labels"]} for t in targets]
    weak, _ = _random_detections(30, seed=2)  # unrelated boxes: AP near 0
    records = []
    for seed in (0, 1):
        records.append(_detect_record("", 0.0, seed, weak, targets))
        records.append(_detect_record("mat", 1.0, seed, perfect, targets))
        records.append(_detect_record("copy-paste", 1.0, seed, weak, targets))
    comparisons = compare_rows(records, "map50", n_boot=100, level=0.95, seed=0)
    pairs = {(c.reference, c.candidate): c for c in comparisons}
    assert set(pairs) == {((1.0, 0.0, ""), (1.0, 1.0, "mat")), ((1.0, 0.0, ""), (1.0, 1.0, "copy-paste")),
                          ((1.0, 1.0, "copy-paste"), (1.0, 1.0, "mat"))}
    mat_gain = pairs[((1.0, 0.0, ""), (1.0, 1.0, "mat"))].result
    assert mat_gain.candidate.value == pytest.approx(1.0) and mat_gain.excludes_zero and mat_gain.verdict == "higher"
    control = pairs[((1.0, 0.0, ""), (1.0, 1.0, "copy-paste"))].result
    assert control.difference.value == 0.0 and not control.excludes_zero
    assert pairs[((1.0, 1.0, "copy-paste"), (1.0, 1.0, "mat"))].result.verdict == "higher"  # MAT - control
