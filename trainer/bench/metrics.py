"""Metrics of the paper's tables, through the field's libraries, plus a bootstrap interval over test images.

- mAP@50: torchmetrics' ``MeanAveragePrecision`` with the pycocotools backend (COCO 101-point interpolated AP
  at IoU 0.5). Detections on test images without a mass count as false positives, so whether normal images
  are in the test set changes the number: callers report that choice next to it.
- Accuracy and macro one-vs-rest AUROC for the 4-class CXR task: torchmetrics' multiclass metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassAUROC
from torchmetrics.detection import MeanAveragePrecision

Detection = dict[str, torch.Tensor]  # {"boxes": (N,4) xyxy, "scores": (N,), "labels": (N,)}
Target = dict[str, torch.Tensor]  # {"boxes": (M,4) xyxy, "labels": (M,)}


def map50(predictions: Sequence[Detection], targets: Sequence[Target]) -> float:
    """COCO-style AP at IoU 0.5, averaged over the classes present (one class, Mass: AP@50 of Mass)."""
    metric = MeanAveragePrecision(
        box_format="xyxy", iou_type="bbox", iou_thresholds=[0.5], backend="pycocotools"
    )
    metric.update([_as_cpu(p) for p in predictions], [_as_cpu(t) for t in targets])
    return float(metric.compute()["map_50"])


def accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy over all samples (micro). probs: (N, K) rows summing to 1; labels: (N,) in 0..K-1."""
    return float(MulticlassAccuracy(num_classes=probs.shape[1], average="micro")(probs, labels))


def macro_auroc(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Macro average of the K one-vs-rest AUROCs."""
    return float(MulticlassAUROC(num_classes=probs.shape[1], average="macro")(probs, labels))


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


def bootstrap_interval(
    metric: Callable[[np.ndarray], float],
    n_items: int,
    *,
    rng: np.random.Generator,
    n_boot: int = 1000,
    level: float = 0.95,
) -> Interval:
    """Percentile bootstrap over test items: ``metric(indices)`` evaluates the metric on a resample.

    Resamples on which the metric is undefined (it returns NaN, e.g. a class missing) are dropped.
    """
    value = metric(np.arange(n_items))
    stats = []
    for _ in range(n_boot):
        stat = metric(rng.integers(0, n_items, size=n_items))
        if np.isfinite(stat):
            stats.append(stat)
    if not stats:
        return Interval(value, float("nan"), float("nan"))
    alpha = (1.0 - level) / 2
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return Interval(value, float(low), float(high))


def _as_cpu(d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in d.items()}
