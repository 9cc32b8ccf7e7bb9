"""The settings of MAT's training loss, apart from the loss itself so that configs load without torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MatLossConfig:
    """Loss settings. ``perceptual=False`` (or pcp_ratio = 0) switches VGG off: no weights are needed then."""

    pcp_ratio: float = 0.1
    perceptual: bool = True
    vgg_weights: str | None = None
    r1_gamma: float = 10.0
    r1_interval: int = 16
    hole_l1: float = 0.0

    @property
    def uses_perceptual(self) -> bool:
        return self.perceptual and self.pcp_ratio > 0
