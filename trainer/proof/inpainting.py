"""Inpainting (mammography): do the engines' fills at held-out mass boxes look like masses?"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from linop_core.dicom import apply_window
from linop_core.engines import Engine
from linop_core.masks import box_hole
from linop_core.synthesis import InpaintRequest, SynthesisRequest, crop_window
from linop_core.vocab import HoleKind
from trainer.proof.engines import synthesize_units
from trainer.proof.instruments import (
    ClassifierFeatures,
    fid_scores,
    predict,
    randconv_features,
    train_crop_classifier,
    two_sample_accuracy,
)
from trainer.proof.phantoms import (
    MammoPair,
    box_crop,
    cache_key,
    cached_arrays,
    feather_px,
    held_out_pairs,
    mass_training_set,
)
from trainer.proof.results import InpaintExample, InpaintResult
from trainer.proof.settings import CONTEXT, ENGINE_STREAM, FEATURE_DIM, MASS_CROP_SIDE, ProofSettings, Stage


def evaluate_inpainting(
    engines: dict[str, Engine], settings: ProofSettings, *, stage: Stage, example_seeds: int = 3,
    cache_dir: Path | None = None,
) -> tuple[InpaintResult, InpaintExample | None]:
    """Train the mass classifier, inpaint every held-out box with every engine and score the crops."""
    resolution = next(iter(engines.values())).resolution
    stage("mass classifier: rendering training phantoms (or reading them from the cache)")
    x, y = cached_arrays(cache_dir, cache_key("mass-crops", settings, resolution=resolution),
                         lambda: mass_training_set(settings, resolution))
    stage(f"mass classifier: training on {len(x)} crops")
    classifier, report = train_crop_classifier(x, y, 2, settings, seed=settings.seed, name="proof-mass-cnn")

    crops: dict[str, list[np.ndarray]] = {"real": [], "normal": [], **{name: [] for name in engines}}
    sides: list[float] = []
    stage("rendering the held-out mammograms (or reading them from the cache)")
    pairs = held_out_pairs(settings, cache_dir)
    units: list[tuple[np.ndarray, SynthesisRequest]] = []
    for case, pair in enumerate(pairs):
        normal = apply_window(pair.normal, pair.window_normal)
        mass = apply_window(pair.with_mass, pair.window_mass)
        for b, box in enumerate(pair.boxes):
            sides.append(max(box[2] - box[0], box[3] - box[1]))
            crops["real"].append(box_crop(mass, box, resolution))
            crops["normal"].append(box_crop(normal, box, resolution))
            seed = int(np.random.default_rng([settings.seed, ENGINE_STREAM, case, b]).integers(2**31))
            units.append((pair.normal, InpaintRequest(box=box, hole=HoleKind.ELLIPSE, seeds=[seed],
                                                      window=pair.window_normal, feather_px=feather_px(box),
                                                      context=CONTEXT, max_scale=1.0)))
    example: InpaintExample | None = None
    for name, engine in engines.items():
        stage(f"inpainting {len(units)} held-out box(es) with {name}")
        for candidates, (_, request) in zip(synthesize_units(units, engine, name="mass"), units, strict=True):
            assert isinstance(request, InpaintRequest) and request.box is not None
            unit = apply_window(candidates[0].image, request.window)  # type: ignore[arg-type]
            crops[name].append(box_crop(unit, request.box, resolution))
    if units:
        example = _example(pairs[0], units[0][1], engines, example_seeds, resolution)
    stacked = {k: np.stack(v) for k, v in crops.items()}
    share = {k: float((predict(classifier, v) == 1).mean()) for k, v in stacked.items()}
    stage("inpainting FID")
    rc_name, rc_net = randconv_features()
    features = {f"proof-mass-cnn-{FEATURE_DIM}": ClassifierFeatures(classifier, MASS_CROP_SIDE), rc_name: rc_net}
    fakes = {k: v for k, v in stacked.items() if k != "real"}
    fid = fid_scores(stacked["real"], fakes, features)
    two_sample = {}
    for name in engines:
        stage(f"two-sample test: real masses vs {name}")
        two_sample[name] = two_sample_accuracy(stacked["real"], stacked[name], settings, seed=settings.seed + 7)
    result = InpaintResult(
        boxes=len(stacked["real"]), mass_share=share, fid=fid, classifier=report,
        box_side_px=(float(min(sides)), float(max(sides))),
        target_mat=share.get("mat", 0.0) >= 0.8, target_biharmonic=share.get("biharmonic", 1.0) <= 0.2,
        two_sample_accuracy=two_sample,
    )
    return result, example



def _example(pair: MammoPair, request: SynthesisRequest, engines: dict[str, Engine], n_seeds: int,
             resolution: int) -> InpaintExample:
    """The first held-out box again with ``n_seeds`` seeds (its first candidate is the one scored above)."""
    assert isinstance(request, InpaintRequest) and request.box is not None
    box = request.box
    seeds = [int(request.seeds[0]) + k for k in range(n_seeds)]
    again = [(pair.normal, replace(request, seeds=seeds))]
    normal = apply_window(pair.normal, pair.window_normal)
    mass = apply_window(pair.with_mass, pair.window_mass)
    win = crop_window(normal.shape, box, resolution=resolution, context=CONTEXT, feather_px=feather_px(box),
                      max_scale=1.0)
    rows, cols = slice(win.y0, win.y0 + win.height), slice(win.x0, win.x0 + win.width)
    candidates = {name: [apply_window(c.image, pair.window_normal)[rows, cols]
                         for c in synthesize_units(again, engine, name="mass-example")[0]]
                  for name, engine in engines.items()}
    return InpaintExample(source=normal[rows, cols], hole=box_hole(normal.shape, box, HoleKind.ELLIPSE)[rows, cols],
                          real=mass[rows, cols], candidates=candidates)
