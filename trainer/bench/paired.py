"""Paired bootstrap of a metric over test images and training seeds: one grid row, or the difference of two.

Two rows of a table are *paired* when they were trained with the same seeds and tested on the same images.
Each bootstrap resample draws the test images (with replacement) and, independently, the training seeds
(with replacement), and scores **both** rows on that same draw, so the interval of the difference reflects
which images happen to be in the test set and how the seeds happen to fall, but not the pairing noise an
unpaired comparison would add. The resampling and the percentile interval are ``scipy.stats.bootstrap``'s
(two samples: item indices and seed indices, resampled independently; the statistic evaluates the metric on
the drawn items for every drawn seed and averages).

A row is given as one callable per seed, ``score(indices) -> float``: the metric on those test items (with
repeats), e.g. mAP@50 of the stored detections of that seed (:class:`trainer.bench.metrics.Ap50Scorer`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from trainer.bench.metrics import Interval

ItemScore = Callable[[np.ndarray], float]


@dataclass(frozen=True)
class PairedDifference:
    """``candidate - reference`` over the same seeds and test items, with both rows' own intervals."""

    reference: Interval
    candidate: Interval
    difference: Interval
    per_seed: tuple[float, ...]  # candidate - reference of each seed on the whole test set
    share_positive: float  # share of the resamples in which the candidate scores higher
    n_items: int
    n_seeds: int
    n_boot: int
    level: float

    @property
    def excludes_zero(self) -> bool:
        """True when the interval of the difference lies entirely above or entirely below 0."""
        return bool(self.difference.low > 0.0 or self.difference.high < 0.0)

    @property
    def verdict(self) -> str:
        if not (math.isfinite(self.difference.low) and math.isfinite(self.difference.high)):
            return "undetermined"
        if self.difference.low > 0.0:
            return "higher"
        if self.difference.high < 0.0:
            return "lower"
        return "no difference shown"


def _seed_scores(rows: Sequence[Sequence[ItemScore]], items: np.ndarray) -> np.ndarray:
    """(rows, seeds) scores on ``items``."""
    return np.array([[score(items) for score in row] for row in rows], dtype=np.float64)


@dataclass(frozen=True)
class RowsBootstrap:
    """Seed-mean scores of several rows on the whole test set and on every resample (rows, n_boot)."""

    point: np.ndarray
    distribution: np.ndarray
    level: float

    def interval(self, values: np.ndarray, point: float) -> Interval:
        finite = values[np.isfinite(values)]
        if not finite.size:
            return Interval(point, math.nan, math.nan)
        alpha = (1.0 - self.level) / 2.0
        low, high = np.quantile(finite, [alpha, 1.0 - alpha])
        return Interval(point, float(low), float(high))

    def row(self, k: int) -> Interval:
        return self.interval(self.distribution[k], float(self.point[k]))


def bootstrap_rows(rows: Sequence[Sequence[ItemScore]], n_items: int, *, n_boot: int, level: float, seed: int,
                   resample_seeds: bool = True) -> RowsBootstrap:  # fmt: skip
    """The seed-mean of each row on the whole test set and on ``n_boot`` resamples shared by all rows.

    Resamples on which a row's metric is undefined (NaN, e.g. a class missing from the drawn items) are left
    out of that row's interval.
    """
    n_seeds = len(rows[0]) if rows else 0
    if n_seeds == 0 or any(len(row) != n_seeds for row in rows):
        raise ValueError("every row needs one score per seed, the same seeds for all rows")
    if n_items < 2:
        raise ValueError(f"{n_items} test item(s): the bootstrap needs at least two")
    point = _seed_scores(rows, np.arange(n_items)).mean(axis=1)
    with_seeds = resample_seeds and n_seeds > 1

    def statistic(items: np.ndarray, *seed_draw: np.ndarray) -> np.ndarray:
        scores = _seed_scores(rows, np.asarray(items, dtype=np.int64))
        chosen = np.asarray(seed_draw[0], dtype=np.int64) if seed_draw else np.arange(n_seeds)
        return scores[:, chosen].mean(axis=1)

    samples = (np.arange(n_items), np.arange(n_seeds)) if with_seeds else (np.arange(n_items),)
    with warnings.catch_warnings():
        # a row constant over resamples has a point interval; a NaN resample is dropped below
        warnings.simplefilter("ignore", category=stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", category=RuntimeWarning)
        result = stats.bootstrap(samples, statistic, paired=False, vectorized=False, n_resamples=n_boot,
                                 method="percentile", confidence_level=level, rng=np.random.default_rng(seed))
    distribution = np.asarray(result.bootstrap_distribution, dtype=np.float64).reshape(len(rows), -1)
    return RowsBootstrap(point, distribution, level)


def paired_difference(reference: Sequence[ItemScore], candidate: Sequence[ItemScore], n_items: int, *,
                      n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                      resample_seeds: bool = True) -> PairedDifference:  # fmt: skip
    """Bootstrap ``candidate - reference`` (seed-means); ``reference[k]`` and ``candidate[k]`` share seed k."""
    if len(reference) != len(candidate):
        raise ValueError(f"{len(reference)} reference seeds but {len(candidate)} candidate seeds: pair them")
    boot = bootstrap_rows([reference, candidate], n_items, n_boot=n_boot, level=level, seed=seed,
                          resample_seeds=resample_seeds)  # fmt: skip
    return difference_of(boot, 0, 1, reference, candidate, n_items)


def difference_of(boot: RowsBootstrap, ref: int, cand: int, reference: Sequence[ItemScore],
                  candidate: Sequence[ItemScore], n_items: int) -> PairedDifference:  # fmt: skip
    """Row ``cand`` minus row ``ref`` of a :class:`RowsBootstrap` (the rows' callables give the per-seed values)."""
    diff = boot.distribution[cand] - boot.distribution[ref]
    whole = np.arange(n_items)
    per_seed = tuple(float(c(whole) - r(whole)) for r, c in zip(reference, candidate, strict=True))
    finite = diff[np.isfinite(diff)]
    return PairedDifference(
        reference=boot.row(ref),
        candidate=boot.row(cand),
        difference=boot.interval(diff, float(boot.point[cand] - boot.point[ref])),
        per_seed=per_seed,
        share_positive=float(np.mean(finite > 0.0)) if finite.size else math.nan,
        n_items=n_items, n_seeds=len(reference), n_boot=boot.distribution.shape[1], level=boot.level,
    )  # fmt: skip
