"""Outpainting (chest X-ray): is the source's finding kept, and are the regenerated pixels new?"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from linop_core.dicom import apply_window
from linop_core.engines import Engine
from linop_core.phantom import CXR_FINDINGS
from linop_core.synthesis import OutpaintRequest, SynthesisRequest
from trainer.proof.engines import synthesize_units
from trainer.proof.instruments import ClassifierFeatures, fid_scores, predict, randconv_features, train_crop_classifier
from trainer.proof.phantoms import CxrCase, cache_key, cached_arrays, cxr_training_set, held_out_cxr, resize
from trainer.proof.results import OutpaintExample, OutpaintResult
from trainer.proof.settings import CXR_SIDE, ENGINE_STREAM, FEATURE_DIM, OUTPAINT_MARGIN, ProofSettings, Stage


def evaluate_outpainting(
    engines: dict[str, Engine], settings: ProofSettings, *, stage: Stage, example_seeds: int = 3,
    cache_dir: Path | None = None,
) -> tuple[OutpaintResult, OutpaintExample | None]:
    """Train the 4-class CXR classifier, outpaint held-out abnormal phantoms, score label keeping and copying."""
    n_classes = len(CXR_FINDINGS)
    stage("CXR classifier: rendering training phantoms (or reading them from the cache)")
    train_x, train_y = cached_arrays(cache_dir, cache_key("cxr-images", settings), lambda: cxr_training_set(settings))
    stage(f"CXR classifier: training on {len(train_x)} images")
    # no flips: a finding's side is part of the phantom (and of its boxes)
    classifier, report = train_crop_classifier(train_x, train_y, n_classes, settings,
                                          seed=settings.seed + 1, name="proof-cxr-cnn", augment_flips=False,
                                          epochs=settings.cxr_epochs)

    real_x, real_y = [], []
    sources, units, unit_cases = [], [], []
    stage("rendering the held-out chest X-rays (or reading them from the cache)")
    cases = held_out_cxr(settings, cache_dir)
    for k, case in enumerate(cases):
        real_x.append(resize(apply_window(case.image, case.window), CXR_SIDE))
        real_y.append(case.label)
        if not case.boxes:
            continue
        sources.append(real_x[-1])
        seed = int(np.random.default_rng([settings.seed, ENGINE_STREAM, 1000 + k]).integers(2**31))
        units.append((case.image, OutpaintRequest(
            boxes=tuple(b for _, b in case.boxes), box_labels=tuple(n for n, _ in case.boxes), seeds=[seed],
            margin=OUTPAINT_MARGIN, global_labels=case.global_labels, window=case.window,
        )))
        unit_cases.append(case)
    results: dict[str, list[np.ndarray]] = {name: [] for name in engines}
    mad: dict[str, list[float]] = {name: [] for name in engines}
    kept_labels = [case.label for case in unit_cases]
    for name, engine in engines.items():
        stage(f"outpainting {len(units)} held-out image(s) with {name}")
        for candidates, case in zip(synthesize_units(units, engine, name="cxr"), unit_cases, strict=True):
            source_unit = apply_window(case.image, case.window)
            first = apply_window(candidates[0].image, case.window)
            results[name].append(resize(first, CXR_SIDE))
            regenerated = candidates[0].generated >= 1.0
            mad[name].append(float(np.abs(first - source_unit)[regenerated].mean()))
    example = _example(unit_cases[0], units[0][1], engines, example_seeds) if units else None
    real_pred = predict(classifier, np.stack(real_x))
    stacked = {name: np.stack(v) for name, v in results.items()}
    label_kept = {name: float((predict(classifier, stacked[name]) == np.array(kept_labels)).mean())
                  for name in engines}
    stage("outpainting FID")
    rc_name, rc_net = randconv_features()
    features = {f"proof-cxr-cnn-{FEATURE_DIM}": ClassifierFeatures(classifier, CXR_SIDE), rc_name: rc_net}
    fid = fid_scores(np.stack(sources), stacked, features)
    result = OutpaintResult(
        images=len(sources), real_accuracy=float((real_pred == np.array(real_y)).mean()), label_kept=label_kept,
        regenerated_mad={k: float(np.mean(v)) for k, v in mad.items()}, fid=fid, classifier=report,
        target_label=label_kept.get("mat", 0.0) >= 0.8,
    )
    return result, example



def _example(case: CxrCase, request: SynthesisRequest, engines: dict[str, Engine], n_seeds: int) -> OutpaintExample:
    """The first held-out image again with ``n_seeds`` seeds (its first candidate is the one scored above)."""
    seeds = [int(request.seeds[0]) + k for k in range(n_seeds)]
    again = [(case.image, replace(request, seeds=seeds))]
    generated, kept = {}, None
    for name, engine in engines.items():
        candidates = synthesize_units(again, engine, name="cxr-example")[0]
        generated[name] = [apply_window(c.image, case.window) for c in candidates]
        kept = candidates[0].generated == 0
    assert kept is not None
    return OutpaintExample(source=apply_window(case.image, case.window), kept=kept, candidates=generated)
