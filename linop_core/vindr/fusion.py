"""Fusing the boxes of several VinDr-CXR readers into one set per image.

Method: weighted boxes fusion (Solovyev et al. 2021) from the ``ensemble-boxes`` package, the usual choice
for VinDr-CXR. Each reader of an image is one "model" with score 1; boxes are fused per class with
``iou_thr`` (default 0.5, as in public VinDr-CXR WBF configs). ``conf_type="box_and_model_avg"`` makes the
fused score the fraction of the image's readers that drew a box in the cluster (1/3, 2/3, 1 on the
training split), so one reader drawing two overlapping boxes does not count twice.

WBF wants coordinates in [0, 1]. Boxes are divided by the image size when it is known and otherwise by the
largest coordinate of the image's boxes; IoU and weighted means are unchanged by a per-axis scale, so the
choice only affects float rounding (WBF works in float32; fused coordinates are rounded to 1/1000 pixel).
An image read by a single reader (the test split's consensus rows) is not fused: its boxes are the
consensus already.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from ensemble_boxes import weighted_boxes_fusion

from linop_core.vindr.records import Finding


@dataclass(frozen=True)
class FusionConfig:
    """How multi-reader CXR boxes and labels are combined.

    ``label_votes``: a label (global or local) is present on an image when at least
    ``min(label_votes, number of readers of that image)`` readers mark it; 2 is the majority of the three
    training readers, 1 means "any reader", and a single consensus row (test split) always counts.
    """

    iou_thr: float = 0.5
    skip_box_thr: float = 0.0
    conf_type: str = "box_and_model_avg"
    label_votes: int = 2

    def __post_init__(self) -> None:
        if not 0.0 < self.iou_thr <= 1.0:
            raise ValueError(f"iou_thr must be in (0, 1], got {self.iou_thr}")
        if self.label_votes < 1:
            raise ValueError(f"label_votes must be >= 1, got {self.label_votes}")


def fuse_reader_boxes(
    findings: Sequence[Finding],
    readers: Iterable[str],
    width: int | None,
    height: int | None,
    config: FusionConfig,
) -> tuple[Finding, ...]:
    """Fuse the boxed findings of an image's readers (``Finding.reader``) into one finding per cluster.

    ``readers`` are all readers of the image, including those who drew no box (they lower the scores).
    Each input finding has exactly one category. Output findings have ``reader=None`` and the fused score,
    sorted by category, then by descending score.
    """
    boxed = [f for f in findings if f.box is not None]
    if not boxed:
        return ()
    readers = sorted(set(readers) | {f.reader or "" for f in boxed})
    if len(readers) == 1:
        return tuple(Finding(f.categories, f.box, f.birads, None, 1.0) for f in boxed)
    categories = sorted({f.categories[0] for f in boxed})
    scale_x = float(width) if width else max(f.box[2] for f in boxed)  # type: ignore[index]
    scale_y = float(height) if height else max(f.box[3] for f in boxed)  # type: ignore[index]
    scale = np.array([scale_x, scale_y, scale_x, scale_y], dtype=np.float64)
    boxes_list, scores_list, labels_list = [], [], []
    for reader in readers:
        mine = [f for f in boxed if (f.reader or "") == reader]
        boxes_list.append((np.array([f.box for f in mine], dtype=np.float64).reshape(-1, 4) / scale).tolist())
        scores_list.append([1.0] * len(mine))
        labels_list.append([categories.index(f.categories[0]) for f in mine])
    fused, scores, labels = weighted_boxes_fusion(
        boxes_list,
        scores_list,
        labels_list,
        iou_thr=config.iou_thr,
        skip_box_thr=config.skip_box_thr,
        conf_type=config.conf_type,
    )
    out = []
    for box, score, label in zip(np.asarray(fused) * scale, scores, labels, strict=True):
        x0, y0, x1, y1 = (round(float(v), 3) for v in box)
        out.append(Finding((categories[int(label)],), (x0, y0, x1, y1), None, None, round(float(score), 6)))
    out.sort(key=lambda f: (f.categories[0], -f.score, f.box))
    return tuple(out)
