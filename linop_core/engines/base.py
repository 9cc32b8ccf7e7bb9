"""The engine protocol: what synthesis needs from a generator of hole contents.

An engine fills the holes of a stack of single-channel images::

    engine.generate(images, keep, seeds, progress=None) -> filled
        images (N, H, W) float32 in [0, 1]; keep (N, H, W) bool, True = known pixel;
        seeds: one int per image; returns (N, H, W) float32 in [0, 1] with the known pixels unchanged.

``H`` and ``W`` must be multiples of ``engine.resolution`` (the side synthesis resizes its windows to).
Candidate ``i`` depends only on ``images[i]``, ``keep[i]`` and ``seeds[i]``: the same whether generated alone
or in a batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

ProgressFn = Callable[[int, int], None]


@runtime_checkable
class Engine(Protocol):
    """What synthesis needs from a generator of hole contents."""

    name: str  # "mat" | "biharmonic"
    resolution: int  # model window side; generate() takes H, W that are multiples of it
    model_name: str | None  # preset name, None without a model
    checkpoint_sha256: str | None
    seed_used: bool  # False when the output does not depend on the seed (deterministic engines)

    def generate(
        self,
        images: np.ndarray,
        keep: np.ndarray,
        seeds: Sequence[int],
        progress: ProgressFn | None = None,
    ) -> np.ndarray: ...

    def provenance(self) -> dict[str, Any]: ...


def check_inputs(images: np.ndarray, keep: np.ndarray, seeds: Sequence[int], resolution: int) -> None:
    if images.ndim != 3:
        raise ValueError(f"images must be (N, H, W), got shape {images.shape}")
    if keep.shape != images.shape:
        raise ValueError(f"keep mask shape {keep.shape} differs from images shape {images.shape}")
    if keep.dtype != np.bool_:
        raise ValueError(f"keep must be a bool mask (True = known), got dtype {keep.dtype}")
    if len(seeds) != images.shape[0]:
        raise ValueError(f"{len(seeds)} seeds for {images.shape[0]} images; give one seed per image")
    h, w = images.shape[1:]
    if h % resolution or w % resolution:
        raise ValueError(f"image size {h}x{w} is not a multiple of the engine resolution {resolution}")
