"""Statistics of a reader study, from the field libraries: scikit-learn, SciPy and statsmodels.

* ROC AUC of telling synthetic from real: ``sklearn.metrics.roc_auc_score`` with synthetic as the positive
  class and the 1-5 confidence as the score.
* 95 % interval: ``scipy.stats.bootstrap``, percentile method, resampling *cases* stratified by truth (the
  synthetic and the real cases are resampled separately, so every resample has both classes). A resampled
  case brings all its readers' answers, so the pooled interval accounts for readers sharing cases. Each
  resample's AUC is ``scipy.stats.mannwhitneyu``'s U / (n1 n0), the same number as ``roc_auc_score`` (ties
  count one half) but for a whole batch of resamples at once (2000 ``roc_auc_score`` calls take seconds).
* The "3" threshold: a confidence of 3 or more is a "synthetic" call
  (:data:`~linop_core.study.answers.SYNTHETIC_AT`); accuracy, sensitivity (synthetic cases called
  synthetic) and specificity (real cases called real) are at that operating point (``sklearn.metrics``).
  The forced-choice accuracy uses the reader's real/synthetic pick.
* Agreement on the synthetic/real call at that threshold: Cohen's kappa per reader pair
  (``sklearn.metrics.cohen_kappa_score``; also quadratic-weighted on the 5-point scale) and Fleiss' kappa over
  the cases every reader answered (``statsmodels.stats.inter_rater``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import bootstrap, mannwhitneyu
from sklearn.metrics import accuracy_score, cohen_kappa_score, recall_score, roc_auc_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from linop_core.study.answers import SYNTHETIC_AT

DEFAULT_RESAMPLES = 2000
CONFIDENCE_LEVEL = 0.95
_BATCH = 250  # resamples computed at once: bounds memory to 250 x cases x readers scores


@dataclass(frozen=True)
class Readings:
    """Scores of a set of readers on a set of cases: ``scores[case, reader]`` 1-5, NaN where unanswered."""

    truth: np.ndarray  # (C,) 1 = synthetic, 0 = real
    scores: np.ndarray  # (C, R) float

    def flat(self, cases: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(truth, score) of every answer on ``cases`` (all cases by default; repeats count again)."""
        rows = np.arange(len(self.truth)) if cases is None else np.asarray(cases, dtype=np.intp)
        scores = self.scores[rows]
        answered = ~np.isnan(scores)
        truth = np.broadcast_to(self.truth[rows][:, None], scores.shape)
        return truth[answered].astype(int), scores[answered]


@dataclass(frozen=True)
class AucResult:
    auc: float | None  # None when the answers hold only one class
    ci: tuple[float, float] | None  # None when a class has fewer than 2 answered cases
    n_synthetic: int
    n_real: int


@dataclass(frozen=True)
class OperatingPoint:
    accuracy: float | None
    sensitivity: float | None  # synthetic cases called synthetic
    specificity: float | None  # real cases called real


def _auc(truth: np.ndarray, score: np.ndarray) -> float:
    return float(roc_auc_score(truth, score))


def batch_auc(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """ROC AUC of each row: ``positives`` (B, n1) synthetic-case scores against ``negatives`` (B, n0) real-case
    scores, NaN = no answer. Mann-Whitney U / (n1 n0): ``roc_auc_score``'s number (ties count one half)."""
    has_nan = bool(np.isnan(positives).any() or np.isnan(negatives).any())
    u = mannwhitneyu(
        positives, negatives, axis=-1, method="asymptotic", nan_policy="omit" if has_nan else "propagate"
    ).statistic
    n1, n0 = (~np.isnan(positives)).sum(axis=-1), (~np.isnan(negatives)).sum(axis=-1)
    return np.asarray(u, dtype=float) / (n1 * n0)


def auc_with_ci(
    readings: Readings, *, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = CONFIDENCE_LEVEL
) -> AucResult:
    """ROC AUC over every answer in ``readings`` and its stratified case-bootstrap interval."""
    answered = ~np.all(np.isnan(readings.scores), axis=1)
    synthetic = np.flatnonzero(answered & (readings.truth == 1))
    real = np.flatnonzero(answered & (readings.truth == 0))
    if synthetic.size == 0 or real.size == 0:
        return AucResult(None, None, int(synthetic.size), int(real.size))
    point = _auc(*readings.flat())
    if synthetic.size < 2 or real.size < 2:
        return AucResult(point, None, int(synthetic.size), int(real.size))

    def statistic(syn: np.ndarray, rea: np.ndarray, axis: int = -1) -> np.ndarray:
        # (batch, n) resampled case indices -> (batch, n x readers) scores
        positives = readings.scores[syn.astype(np.intp)].reshape(syn.shape[0], -1)
        negatives = readings.scores[rea.astype(np.intp)].reshape(rea.shape[0], -1)
        return batch_auc(positives, negatives)

    result = bootstrap(
        (synthetic, real),
        statistic,
        n_resamples=n_resamples,
        batch=_BATCH,
        confidence_level=level,
        method="percentile",
        vectorized=True,
        paired=False,
        rng=np.random.default_rng(seed),
    )
    low, high = (float(v) for v in (result.confidence_interval.low, result.confidence_interval.high))
    return AucResult(point, (low, high), int(synthetic.size), int(real.size))


def operating_point(truth: np.ndarray, score: np.ndarray) -> OperatingPoint:
    """Accuracy, sensitivity and specificity with "confidence >= 3 means synthetic"."""
    if truth.size == 0:
        return OperatingPoint(None, None, None)
    called = (score >= int(SYNTHETIC_AT)).astype(int)
    return OperatingPoint(
        accuracy=float(accuracy_score(truth, called)),
        sensitivity=float(recall_score(truth, called, pos_label=1)) if (truth == 1).any() else None,
        specificity=float(recall_score(truth, called, pos_label=0)) if (truth == 0).any() else None,
    )


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def cohen_kappa(a: np.ndarray, b: np.ndarray, *, weights: str | None = None) -> float | None:
    """Cohen's kappa of two readers' ratings of the same cases; None when undefined (e.g. one shared rating)."""
    if a.size == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        labels = np.arange(1, 6) if weights else None
        return _finite(cohen_kappa_score(a, b, weights=weights, labels=labels))


def fleiss(calls: np.ndarray) -> float | None:
    """Fleiss' kappa of ``calls[case, reader]`` (categories 0/1); None with fewer than 2 readers or no case."""
    if calls.ndim != 2 or calls.shape[1] < 2 or calls.shape[0] == 0:
        return None
    table, _ = aggregate_raters(calls.astype(int), n_cat=2)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return _finite(fleiss_kappa(table, method="fleiss"))


def point_in_boxes(point: tuple[float, float], boxes: Sequence[Sequence[float]], tolerance: float = 0.0) -> bool:
    """Whether ``(x, y)`` lies in any box grown by ``tolerance`` pixels on every side."""
    x, y = point
    return any(
        b[0] - tolerance <= x <= b[2] + tolerance and b[1] - tolerance <= y <= b[3] + tolerance for b in boxes
    )
