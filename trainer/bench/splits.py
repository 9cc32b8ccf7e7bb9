"""Random 80/10/10 splits for the downstream experiments, at study level by default.

A study-level split keeps every image of a study (a mammography exam's four views) in one split, so a model
is never tested on the other view of a breast it saw in training. The paper split at random without saying
how; ``level="image"`` reproduces a plain image-level split for comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class Split:
    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]


def random_split(
    study_ids: Sequence[str],
    *,
    seed: int,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    level: Literal["study", "image"] = "study",
) -> Split:
    """Splits items (given by their study ids) into train/val/test index lists, deterministically by seed.

    Study level: whole studies are shuffled and assigned in order until each split holds its share of
    *images* (studies are not all the same size), so the image fractions come out close to ``fractions``.
    """
    if not np.isclose(sum(fractions), 1.0) or min(fractions) < 0:
        raise ValueError(f"fractions must be non-negative and sum to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    n = len(study_ids)
    if level == "image":
        groups = [[i] for i in rng.permutation(n)]
    else:
        by_study: dict[str, list[int]] = {}
        for i, s in enumerate(study_ids):
            by_study.setdefault(s, []).append(i)
        keys = sorted(by_study)
        groups = [by_study[keys[j]] for j in rng.permutation(len(keys))]
    bounds = np.cumsum(fractions)[:2] * n
    parts: tuple[list[int], list[int], list[int]] = ([], [], [])
    assigned = 0
    for group in groups:
        # A group goes to the split whose share the running count has not yet filled.
        k = 0 if assigned < bounds[0] else (1 if assigned < bounds[1] else 2)
        parts[k].extend(group)
        assigned += len(group)
    return Split(*(tuple(sorted(p)) for p in parts))
