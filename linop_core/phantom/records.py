"""Small shared pieces of the phantom dataset writers: the summary record and atomic CSV output."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from linop_core.errors import LinopError
from linop_core.fileio import atomic_open_text

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class PhantomSummary:
    """What a phantom writer produced. ``counts`` is computed from the rows actually written."""

    root: Path
    modality: str  # 'mammo' or 'cxr'
    n_studies: int
    n_images: int
    counts: dict[str, int]


def write_csv_atomic(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write a CSV the way pandas/VinDr do (minimal quoting, '\\n' line ends) via a temp file and os.replace."""
    with atomic_open_text(path, newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def fmt_coord(value: float) -> str:
    """Box coordinates as VinDr writes them: plain floats with a few decimals."""
    return f"{value:.4f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.1f}"


def random_study_date(rng: np.random.Generator) -> str:
    """A DICOM date (YYYYMMDD) in 2018-2020, the VinDr collection years."""
    return f"{2018 + int(rng.integers(3))}{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}"


def check_arguments(n: int, size: str) -> None:
    """Reject what a user can get wrong on the command line, with the fix in the message."""
    if n < 1:
        raise LinopError(f"phantom: --n must be at least 1 (got {n})")
    if size not in ("small", "full"):
        raise LinopError(f"phantom: --size must be 'small' or 'full' (got {size!r})")


def split_indices(n: int, test_fraction: float, order: Sequence[int]) -> set[int]:
    """Indices (into range(n)) that go to the test split: ~test_fraction of them, at least one when n >= 2."""
    n_test = round(n * test_fraction)
    if n >= 2:
        n_test = min(n - 1, max(1, n_test))
    return set(order[:n_test])


def coverage_order(rng_order: Sequence[int], photometrics: Sequence[str]) -> list[int]:
    """Reorder a random permutation of device profiles so the first two differ in photometric
    interpretation: then any set of two or more studies has both MONOCHROME1 and MONOCHROME2."""
    order = [int(i) for i in rng_order]
    first = photometrics[order[0]]
    other = next((k for k, i in enumerate(order) if photometrics[i] != first), None)
    if other is not None and len(order) > 1:
        order.insert(1, order.pop(other))
    return order
