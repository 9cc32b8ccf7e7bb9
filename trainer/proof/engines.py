"""The proof's contact with the synthesis service: the engines it compares (built by the core's engine
factory) and its batches of in-memory phantom units (run by the core's batch service)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from linop_core.candidate import Candidate
from linop_core.engines import Engine, EngineSpec, make_engine
from linop_core.precision import Precision
from linop_core.sources import ArraySource, SourceInfo
from linop_core.synthesis import SynthesisRequest
from linop_core.synthset.batch import SampleCollector, UnitPlan, explicit_job, run


def proof_engines(model: str | os.PathLike[str], device: str, seed: int) -> dict[str, Engine]:
    """The engines compared: the trained MAT, the biharmonic baseline, and a negative control.

    The control ("mat-untrained") is the same architecture with freshly initialised weights. If the
    classifiers scored its output as lesions, the measure would reward any bright blob rather than a lesion.
    """
    # fp32: the proof measures the model, not a faster approximation of it
    mat = make_engine(EngineSpec(checkpoint=str(model), device=device, precision=Precision.FP32))
    return {
        "mat": mat,
        "biharmonic": make_engine(EngineSpec.biharmonic(mat.resolution, device=device)),
        "mat-untrained": make_engine(EngineSpec(checkpoint=str(model), device=device, precision=Precision.FP32,
                                                random_weights_seed=seed)),
    }


def synthesize_units(
    units: Sequence[tuple[np.ndarray, SynthesisRequest]], engine: Engine, *, name: str
) -> list[list[Candidate]]:
    """Each unit's candidates (one per request seed, every request with the same number of seeds), made by
    the batch service from in-memory phantoms. No anatomy check: the boxes are the phantoms' own."""
    plans = [UnitPlan(ArraySource(pixels, SourceInfo("phantom", f"{name}-{i}", f"{name}-{i}", "held-out")), request)
             for i, (pixels, request) in enumerate(units)]
    job = explicit_job(plans, engine, candidates=len(units[0][1].seeds), config={"proof": name},
                       anatomy_check=False, allow_test_split=True)
    sink = SampleCollector()
    run(job, range(len(plans)), sink)
    return [[sample.candidate for sample in sink.samples[i]] for i in range(len(plans))]
