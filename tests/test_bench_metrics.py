"""Downstream metrics against hand-computed values, and the split invariants."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.bench.metrics import accuracy, bootstrap_interval, macro_auroc, map50
from trainer.bench.splits import random_split


def _det(boxes, scores):
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "scores": torch.tensor(scores, dtype=torch.float32),
        "labels": torch.ones(len(scores), dtype=torch.int64),
    }


def _gt(boxes):
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.ones(len(boxes), dtype=torch.int64),
    }


def test_map50_matches_hand_computed_coco_ap() -> None:
    # Two masses on two images. Ranked detections: TP (0.9), FP (0.8, on a normal image), TP (0.7).
    # Precision/recall: (1, .5), (.5, .5), (2/3, 1). COCO interpolates precision at 101 recall points:
    # 1.0 for r <= 0.5 (51 points), 2/3 for r in (0.5, 1] (50 points).
    preds = [
        _det([[10, 10, 50, 50]], [0.9]),
        _det([[0, 0, 30, 30]], [0.8]),
        _det([[60, 60, 100, 100]], [0.7]),
    ]
    targets = [_gt([[12, 12, 50, 52]]), _gt([]), _gt([[60, 62, 100, 100]])]
    expected = (51 * 1.0 + 50 * (2 / 3)) / 101
    assert map50(preds, targets) == pytest.approx(expected, abs=1e-4)


def test_map50_counts_iou_below_half_as_a_miss() -> None:
    preds = [_det([[0, 0, 10, 10]], [0.9])]
    targets = [_gt([[5, 5, 15, 15]])]  # IoU = 25 / 175 < 0.5
    assert map50(preds, targets) == pytest.approx(0.0)


def test_accuracy_and_macro_auroc_match_hand_computed_values() -> None:
    probs = torch.tensor(
        [
            [0.7, 0.1, 0.1, 0.1],
            [0.2, 0.5, 0.2, 0.1],
            [0.1, 0.6, 0.2, 0.1],
            [0.1, 0.1, 0.2, 0.6],
            [0.3, 0.2, 0.4, 0.1],
            [0.4, 0.3, 0.2, 0.1],
        ]
    )
    labels = torch.tensor([0, 1, 2, 3, 2, 1])
    assert accuracy(probs, labels) == pytest.approx(4 / 6)

    # One-vs-rest AUROC per class = fraction of (positive, negative) pairs ranked correctly (ties count 1/2).
    def ovr(k: int) -> float:
        pos = probs[labels == k, k]
        neg = probs[labels != k, k]
        wins = sum(float((p > n) + 0.5 * (p == n)) for p in pos for n in neg)
        return wins / (len(pos) * len(neg))

    expected = sum(ovr(k) for k in range(4)) / 4
    assert macro_auroc(probs, labels) == pytest.approx(expected, abs=1e-6)


def test_bootstrap_interval_brackets_the_value_and_is_deterministic() -> None:
    values = np.random.default_rng(0).normal(size=200)

    def mean_of(idx: np.ndarray) -> float:
        return float(values[idx].mean())

    a = bootstrap_interval(mean_of, 200, rng=np.random.default_rng(1), n_boot=300)
    b = bootstrap_interval(mean_of, 200, rng=np.random.default_rng(1), n_boot=300)
    assert a == b
    assert a.low < a.value < a.high
    # The standard error of a mean of 200 N(0,1) draws is ~0.07: the 95 % interval is about +/- 0.14.
    assert 0.08 < (a.high - a.low) / 2 < 0.2


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_study_level_split_never_shares_a_study(seed: int) -> None:
    rng = np.random.default_rng(seed)
    studies = [f"s{rng.integers(0, 60)}" for _ in range(240)]
    split = random_split(studies, seed=seed)
    sets = [{studies[i] for i in part} for part in (split.train, split.val, split.test)]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert sorted(split.train + split.val + split.test) == list(range(240))
    assert abs(len(split.train) / 240 - 0.8) < 0.08
    assert random_split(studies, seed=seed) == split
    assert random_split(studies, seed=seed + 100) != split


def test_image_level_split_has_exact_fractions() -> None:
    split = random_split([f"s{i // 4}" for i in range(100)], seed=3, level="image")
    assert (len(split.train), len(split.val), len(split.test)) == (80, 10, 10)


def _score_in_rank(rank: int, port: int, queue: object) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        truth = [_gt([[10, 10, 40, 40]])]
        guess = [_det([[10, 10, 40, 40]], [0.9])] if rank == 0 else [_det([[60, 60, 90, 90]], [0.9])]
        labels = torch.tensor([0, 1, 2, 3])
        probs = torch.eye(4) if rank == 0 else torch.eye(4).roll(1, dims=1)
        queue.put((rank, map50(guess, truth), accuracy(probs, labels)))  # type: ignore[attr-defined]
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_metrics_of_one_torchrun_process_are_not_pooled_with_the_others() -> None:
    """Under torchrun each rank scores its own cells; torchmetrics must not gather the other rank's states."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    context = mp.get_context("spawn")
    queue = context.Queue()
    procs = [context.Process(target=_score_in_rank, args=(rank, port, queue)) for rank in (0, 1)]
    for proc in procs:
        proc.start()
    results = dict((rank, (ap, acc)) for rank, ap, acc in (queue.get(timeout=120) for _ in procs))
    for proc in procs:
        proc.join(timeout=60)
    assert results[0] == (pytest.approx(1.0), pytest.approx(1.0))  # pooled, both would read 0.5
    assert results[1] == (pytest.approx(0.0), pytest.approx(0.0))
