"""Metrics of the paper's tables, through the field's libraries, plus a bootstrap interval over test images.

- mAP@50: torchmetrics' ``MeanAveragePrecision`` with the pycocotools backend (COCO 101-point interpolated AP
  at IoU 0.5). Detections on test images without a mass count as false positives, so whether normal images
  are in the test set changes the number: callers report that choice next to it.
- Accuracy and macro one-vs-rest AUROC for the 4-class CXR task: torchmetrics' multiclass metrics.
- :class:`Ap50Scorer`: the same AP@50 on any resample of the test images, fast enough for a thousand
  bootstrap resamples (pycocotools matches the detections once; only the precision-recall accumulation is
  repeated per resample). :class:`ClassScorer` does the same for accuracy and macro AUROC (each resample
  weighs the images by how often it drew them; torchmetrics would take ~2 ms a call, 100 times longer).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassAUROC
from torchmetrics.detection import MeanAveragePrecision

# Each torchrun process scores its own cells: torchmetrics must not gather (and pool) the other ranks' states,
# which it does by default whenever torch.distributed is initialised (and which stalls when ranks diverge).
_LOCAL = {"sync_on_compute": False, "dist_sync_on_step": False}

Detection = dict[str, torch.Tensor]  # {"boxes": (N,4) xyxy, "scores": (N,), "labels": (N,)}
Target = dict[str, torch.Tensor]  # {"boxes": (M,4) xyxy, "labels": (M,)}


def map50(predictions: Sequence[Detection], targets: Sequence[Target]) -> float:
    """COCO-style AP at IoU 0.5, averaged over the classes present (one class, Mass: AP@50 of Mass)."""
    metric = MeanAveragePrecision(
        box_format="xyxy", iou_type="bbox", iou_thresholds=[0.5], backend="pycocotools", **_LOCAL
    )
    metric.update([_as_cpu(p) for p in predictions], [_as_cpu(t) for t in targets])
    return float(metric.compute()["map_50"])


def accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy over all samples (micro). probs: (N, K) rows summing to 1; labels: (N,) in 0..K-1."""
    return float(MulticlassAccuracy(num_classes=probs.shape[1], average="micro", **_LOCAL)(probs, labels))


def macro_auroc(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Macro average of the K one-vs-rest AUROCs."""
    return float(MulticlassAUROC(num_classes=probs.shape[1], average="macro", **_LOCAL)(probs, labels))


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


# COCO's 101-point interpolation, as torchmetrics passes it to pycocotools (float32 steps: a recall of exactly
# k / n sits on the same side of each threshold as in :func:`map50`)
COCO_RECALL_THRESHOLDS = np.asarray(torch.linspace(0.0, 1.0, 101).tolist(), dtype=np.float64)


class Ap50Scorer:
    """AP@50 of one class on a multiset of test images, equal to :func:`map50` on that resample.

    pycocotools' ``COCOeval.evaluate`` matches each image's detections to its boxes once (IoU >= 0.5, at most
    100 detections per image, one box per detection); a resample then only repeats the images' matched flags
    and redoes ``COCOeval.accumulate``'s precision-recall curve and 101-point interpolation.
    """

    def __init__(self, predictions: Sequence[Detection], targets: Sequence[Target]) -> None:
        if len(predictions) != len(targets):
            raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
        self.n_images = len(targets)
        self.n_boxes = np.array([len(t["boxes"]) for t in targets], dtype=np.int64)
        scores, matched, images = _coco_matches(predictions, targets)
        order = np.argsort(-scores, kind="mergesort")  # COCOeval.accumulate's order: score, then image
        self.scores = scores[order]
        self.matched = matched[order]
        self.images = images[order]

    def __call__(self, items: np.ndarray) -> float:
        counts = np.bincount(np.asarray(items, dtype=np.int64), minlength=self.n_images)
        positives = int(counts @ self.n_boxes)
        if positives == 0:
            return float("nan")
        matched = np.repeat(self.matched, counts[self.images])
        true_pos = np.cumsum(matched, dtype=np.float64)
        false_pos = np.cumsum(~matched, dtype=np.float64)
        recall = true_pos / positives
        precision = true_pos / (true_pos + false_pos + np.spacing(1))
        precision = np.maximum.accumulate(precision[::-1])[::-1]
        at = np.searchsorted(recall, COCO_RECALL_THRESHOLDS, side="left")
        interpolated = np.where(at < len(precision), precision[np.minimum(at, len(precision) - 1)], 0.0)
        return float(interpolated.mean()) if len(precision) else 0.0


class ClassScorer:
    """Top-1 accuracy or macro one-vs-rest AUROC on a multiset of test images, equal to :func:`accuracy` /
    :func:`macro_auroc` on that resample (NaN AUROC when a class has no positive or no negative).

    The AUROC of class k is the Mann-Whitney statistic: the share of (positive, negative) pairs, each weighted
    by how often the resample drew its two images, in which the positive scores higher (ties count half).
    """

    def __init__(self, probs: torch.Tensor, labels: torch.Tensor, metric: str) -> None:
        if metric not in ("accuracy", "auroc"):
            raise ValueError(f"metric must be 'accuracy' or 'auroc', got {metric!r}")
        self.metric = metric
        scores = probs.detach().cpu().double().numpy()
        self.labels = labels.detach().cpu().numpy().astype(np.int64)
        self.n_items, self.n_classes = scores.shape
        self.correct = scores.argmax(axis=1) == self.labels
        # per class: tie groups of equal scores in ascending order, and each image's group
        self.groups = []
        for k in range(self.n_classes):
            unique, group = np.unique(scores[:, k], return_inverse=True)
            self.groups.append((len(unique), group))

    def __call__(self, items: np.ndarray) -> float:
        counts = np.bincount(np.asarray(items, dtype=np.int64), minlength=self.n_items).astype(np.float64)
        if self.metric == "accuracy":
            return float(counts @ self.correct / counts.sum())
        aucs = []
        for k, (n_groups, group) in enumerate(self.groups):
            positive = self.labels == k
            pos_w, neg_w = counts * positive, counts * ~positive
            n_pos, n_neg = pos_w.sum(), neg_w.sum()
            if n_pos == 0 or n_neg == 0:
                return float("nan")
            neg_in_group = np.bincount(group, weights=neg_w, minlength=n_groups)
            below = np.cumsum(neg_in_group) - neg_in_group  # negatives scoring lower than each group
            wins = below[group] + 0.5 * neg_in_group[group]
            aucs.append(float(pos_w @ wins) / (n_pos * n_neg))
        return float(np.mean(aucs))


def _coco_matches(predictions: Sequence[Detection], targets: Sequence[Target]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Scores, matched flags (bool) and image indices of every kept detection, from ``COCOeval.evaluate``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    from torchvision.ops import box_convert

    images, annotations, results = [], [], []
    for i, (pred, target) in enumerate(zip(predictions, targets, strict=True)):
        images.append({"id": i})
        # xywh in the boxes' own float type, as torchmetrics converts them (IoUs at 0.5 agree to the bit)
        for x, y, w, h in box_convert(target["boxes"].detach().cpu(), "xyxy", "xywh").tolist():
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": 1, "iscrowd": 0,
                                "bbox": [x, y, w, h], "area": w * h})  # fmt: skip
        boxes = box_convert(pred["boxes"].detach().cpu(), "xyxy", "xywh").tolist()
        for box, score in zip(boxes, pred["scores"].tolist(), strict=True):
            results.append({"image_id": i, "category_id": 1, "bbox": box, "score": float(score)})
    empty = np.zeros(0)
    if not results:
        return empty, empty.astype(bool), empty.astype(np.int64)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        truth = COCO()
        truth.dataset = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "mass"}]}
        truth.createIndex()
        evaluation = COCOeval(truth, truth.loadRes(results), iouType="bbox")
        evaluation.params.iouThrs = np.array([0.5])
        evaluation.params.areaRng = [[0.0, 1e10]]
        evaluation.params.areaRngLbl = ["all"]
        evaluation.params.maxDets = [100]
        evaluation.evaluate()
    scores, matched, owners = [], [], []
    for entry in evaluation.evalImgs:
        if entry is None or not len(entry["dtScores"]):
            continue
        scores.append(np.asarray(entry["dtScores"], dtype=np.float64))
        matched.append(np.asarray(entry["dtMatches"][0]) > 0)
        owners.append(np.full(len(entry["dtScores"]), int(entry["image_id"]), dtype=np.int64))
    if not scores:
        return empty, empty.astype(bool), empty.astype(np.int64)
    return np.concatenate(scores), np.concatenate(matched), np.concatenate(owners)


def _as_cpu(d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in d.items()}
