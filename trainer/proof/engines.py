"""The proof's only contact with the synthesis API: the engines it compares and its calls into
``linop_core.synthesis`` (one function each), so that a change of that API is rewired here alone."""

from __future__ import annotations

import os

import numpy as np

from linop_core.engines import BiharmonicEngine, Engine, MatEngine
from linop_core.synthesis import Candidate, InpaintRequest, OutpaintRequest, inpaint_lesion, outpaint_around


def proof_engines(model: str | os.PathLike[str], device: str, seed: int) -> dict[str, Engine]:
    """The engines compared: the trained MAT, the biharmonic baseline, and a negative control.

    The control ("mat-untrained") is the same architecture with freshly initialised weights. If the
    classifiers scored its output as lesions, the measure would reward any bright blob rather than a lesion.
    """
    from linop_core.model.checkpoint import load_generator
    from linop_core.model.presets import build_generator

    mat = MatEngine(model, device=device)
    _, checkpoint = load_generator(model)
    untrained = build_generator(checkpoint.config, seed=seed).eval().requires_grad_(False)
    control = MatEngine((untrained, checkpoint), device=device)
    control.checkpoint_sha256 = None  # not the file's weights
    return {"mat": mat, "biharmonic": BiharmonicEngine(mat.resolution), "mat-untrained": control}


def inpaint(image: np.ndarray, request: InpaintRequest, engine: Engine) -> list[Candidate]:
    """``engine``'s candidates for ``request`` on ``image`` (no anatomy check: the boxes are the phantoms' own)."""
    return inpaint_lesion(image, request, engine, anatomy_check=False)


def outpaint(image: np.ndarray, request: OutpaintRequest, engine: Engine) -> list[Candidate]:
    """``engine``'s candidates for ``request`` on ``image`` (no anatomy check: the boxes are the phantoms' own)."""
    return outpaint_around(image, request, engine, anatomy_check=False)
