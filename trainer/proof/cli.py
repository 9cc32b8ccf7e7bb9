"""``python -m trainer.proof``: the command line of the realism proof (see :mod:`trainer.proof`)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from linop_core.errors import LinopError
from trainer.proof.report import render_markdown
from trainer.proof.run import run_proof
from trainer.proof.settings import ProofSettings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trainer.proof",
        description="Measure whether the demo models' lesions look like lesions and whether outpainting keeps the "
        "finding, on held-out phantoms, against the biharmonic baseline.",
    )
    parser.add_argument("--inpaint-model", help="mammography inpainting checkpoint (default: the bundled demo)")
    parser.add_argument("--outpaint-model", help="chest X-ray outpainting checkpoint (default: the bundled demo)")
    parser.add_argument("--skip", choices=["inpaint", "outpaint"], action="append", default=[],
                        help="skip one task (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("docs/demo"), help="folder for proof.json/.md, examples.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-cases", type=int, default=ProofSettings.test_cases,
                        help="held-out mammogram pairs (1-2 boxes each)")
    parser.add_argument("--cxr-test-per-class", type=int, default=ProofSettings.cxr_test_per_class)
    parser.add_argument("--cache", type=Path, default=None, metavar="DIR",
                        help="keep the classifiers' rendered training phantoms here and reuse them")
    parser.add_argument("--note", action="append", default=[], metavar="TEXT",
                        help="a line of context for the report's Notes (e.g. how long the models trained)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return parser


def _model_for(task: str, given: str | None, skipped: bool) -> str | None:
    if skipped:
        return None
    if given is not None:
        return given
    from linop_core.demo_models import demo_model_path

    path = demo_model_path(task)  # type: ignore[arg-type]
    if path is None:
        raise LinopError(f"no bundled {task} demo model in resources/models; pass --{task}-model PATH")
    return str(path)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)  # process-wide, set once at this entry point
    settings = ProofSettings(seed=args.seed, test_cases=args.test_cases, cxr_test_per_class=args.cxr_test_per_class)
    try:
        inpaint = _model_for("inpaint", args.inpaint_model, "inpaint" in args.skip)
        outpaint = _model_for("outpaint", args.outpaint_model, "outpaint" in args.skip)
        started = time.perf_counter()

        def stage(message: str) -> None:
            print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

        result = run_proof(inpaint, outpaint, args.out, settings, stage=stage, cache_dir=args.cache,
                           notes=args.note)
    except LinopError as exc:
        print(f"proof: error: {exc}", file=sys.stderr)
        return 1
    print(render_markdown(result))
    return 0
