"""What the proof measures (written to ``proof.json``) and the example images it shows (``examples.png``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ClassifierReport:
    name: str
    train_images: int
    train_accuracy: float
    seconds: float


@dataclass
class InpaintResult:
    boxes: int
    mass_share: dict[str, float]  # source -> share called "mass": real, normal, <engine names>
    fid: dict[str, dict[str, float]]  # feature name -> source -> FID against the real masses
    classifier: ClassifierReport
    box_side_px: tuple[float, float]  # min, max side of the evaluated boxes (source pixels)
    target_mat: bool
    target_biharmonic: bool
    # engine -> cross-validated accuracy of a classifier telling real masses from that engine's fills at the
    # same boxes (a classifier two-sample test: 0.5 = indistinguishable, 1.0 = always told apart)
    two_sample_accuracy: dict[str, float] = field(default_factory=dict)


@dataclass
class OutpaintResult:
    images: int
    real_accuracy: float  # 4-class accuracy on all held-out phantoms (normal included)
    label_kept: dict[str, float]  # engine -> share of outpainted images that keep the source label
    regenerated_mad: dict[str, float]  # engine -> mean |result - source| over fully regenerated pixels
    fid: dict[str, dict[str, float]]  # feature name -> engine -> FID against the held-out abnormal sources
    classifier: ClassifierReport
    target_label: bool


@dataclass
class ProofResult:
    settings: dict[str, Any]
    inpaint_model: str
    outpaint_model: str
    inpaint_sha256: str | None = None
    outpaint_sha256: str | None = None
    inpaint: InpaintResult | None = None
    outpaint: OutpaintResult | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass
class InpaintExample:
    source: np.ndarray  # [0, 1] window of the normal image around the box
    hole: np.ndarray  # bool, same shape: the requested hole
    real: np.ndarray  # the real mass at that place
    candidates: dict[str, list[np.ndarray]]  # engine -> windows


@dataclass
class OutpaintExample:
    source: np.ndarray
    kept: np.ndarray  # bool: pixels kept bit-exact
    candidates: dict[str, list[np.ndarray]]

