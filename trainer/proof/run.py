"""One proof run: both evaluations (a task is skipped when its model is None), then ``proof.json``, ``proof.md``
and ``examples.png``."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from linop_core.fileio import atomic_write_text
from trainer.proof.engines import proof_engines
from trainer.proof.inpainting import evaluate_inpainting
from trainer.proof.outpainting import evaluate_outpainting
from trainer.proof.report import render_markdown, save_examples
from trainer.proof.results import ProofResult
from trainer.proof.settings import ProofSettings, Stage


def run_proof(
    inpaint_model: str | os.PathLike[str] | None,
    outpaint_model: str | os.PathLike[str] | None,
    out_dir: Path,
    settings: ProofSettings,
    *,
    stage: Stage = lambda message: None,
    device: str = "cpu",
    cache_dir: Path | None = None,
    notes: Sequence[str] = (),
) -> ProofResult:
    """Run both evaluations (a task is skipped when its model is None) and write proof.json/.md, examples.png."""
    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    result = ProofResult(settings=asdict(settings), inpaint_model=str(inpaint_model),
                         outpaint_model=str(outpaint_model), notes=list(notes))
    from linop_core.hashing import sha256_file

    result.inpaint_sha256 = sha256_file(inpaint_model) if inpaint_model is not None else None
    result.outpaint_sha256 = sha256_file(outpaint_model) if outpaint_model is not None else None
    inpaint_example = outpaint_example = None
    if inpaint_model is not None:
        result.inpaint, inpaint_example = evaluate_inpainting(
            proof_engines(inpaint_model, device, settings.seed), settings, stage=stage, cache_dir=cache_dir)
    if outpaint_model is not None:
        result.outpaint, outpaint_example = evaluate_outpainting(
            proof_engines(outpaint_model, device, settings.seed), settings, stage=stage, cache_dir=cache_dir)
    result.seconds = time.perf_counter() - start
    atomic_write_text(out_dir / "proof.json", json.dumps(asdict(result), indent=2) + "\n")
    atomic_write_text(out_dir / "proof.md", render_markdown(result))
    save_examples(out_dir / "examples.png", inpaint_example, outpaint_example)
    return result

