"""`linop-export`: headless batch synthesis from a VinDr root into an HDF5 synthetic set, and its companions.

    linop-export generate ROOT OUT.h5 --n N [--engine biharmonic|mat] [--model CKPT] [--candidates K]
                 [--seed S] [--device D] [--shard I/N] [--boxes CSV] [--append] [--allow-test-sources]
                 [--check-sources]
    linop-export merge OUT.h5 SHARD.h5 [SHARD.h5 ...]
    linop-export coco SET.h5 OUT_DIR [--approved-only]
    linop-export verify SET.h5
    linop-export dicom SET.h5 OUT_DIR [--stow URL] [--approved-only]   (see linop_core.cli.export_dicom)

``generate`` in-paints masses into the normal pool of a VinDr-Mammo root (boxes sampled from the real mass
boxes, or read from ``--boxes``) or out-paints around the findings of abnormal VinDr-CXR images. Work unit
``i`` (one source image, ``K`` candidates, samples ``i*K .. i*K+K-1``) depends only on ``--seed`` and ``i``;
``--shard I/N`` runs the units with ``i % N == I``, so shards merged with ``merge`` equal one unsharded run.
Interrupted runs resume when started again with the same arguments. A source DICOM that cannot be read is
skipped (the unit draws the next source), recorded in the set and listed at the end; ``--check-sources``
reads the whole pool first instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from linop_core.cli import run_subcommand
from linop_core.cli.export_dicom import add_dicom_parser
from linop_core.engines import EngineKind, EngineSpec, make_engine
from linop_core.errors import DataError, LinopError
from linop_core.precision import Precision
from linop_core.progress import tqdm_progress
from linop_core.sources import ImageSource
from linop_core.synthset.batch import BatchOptions, vindr_job, write_set
from linop_core.vindr import root_task
from linop_core.vocab import BOX_HOLES, Decision, HoleKind, Task

PROG = "linop-export"
MAX_SKIPS_LISTED = 20


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index_text, count_text = text.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard wants I/N, e.g. 0/4 (got {text!r})") from None
    if count < 1 or not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"--shard {text}: need N >= 1 and 0 <= I < N")
    return index, count


def engine_spec(args: argparse.Namespace, task: Task) -> EngineSpec:
    """The engine ``generate``'s options ask for (MAT without --model: the bundled demo model of ``task``)."""
    if args.engine == "biharmonic":
        if args.model:
            raise LinopError("--model is for --engine mat; the biharmonic engine needs no weights")
        return EngineSpec.biharmonic(args.resolution or 256, device=args.device)
    return EngineSpec(EngineKind.MAT, checkpoint=args.model, task=task, device=args.device,
                      batch_size=args.batch_size, precision=args.precision)


def batch_options(args: argparse.Namespace) -> BatchOptions:
    return BatchOptions(
        candidates=args.candidates, seed=args.seed, split=args.split, allow_test_sources=args.allow_test_sources,
        boxes_csv=Path(args.boxes) if args.boxes else None, size_jitter=args.size_jitter, hole=HoleKind(args.hole),
        context=args.context, feather_px=args.feather, margin=args.margin, anatomy_check=not args.no_anatomy_check,
    )


def _cmd_generate(args: argparse.Namespace) -> int:
    if args.n is None and not args.boxes:
        raise LinopError("--n is required (the number of units to synthesise) unless --boxes gives them")
    if (args.n is not None and args.n < 1) or args.candidates < 1:
        raise LinopError("--n and --candidates must be at least 1")
    spec = engine_spec(args, root_task(args.root))
    if spec.kind is EngineKind.MAT and spec.checkpoint is None:
        spec = spec.resolved()
        print(f"{PROG}: no --model given: using the bundled demo model {Path(spec.checkpoint or '').name} "
              "(phantom-trained)", file=sys.stderr)  # fmt: skip
    engine = make_engine(spec)
    if args.candidates > 1 and not engine.seed_used:
        print(f"{PROG}: note: the {engine.name} engine ignores seeds, so the {args.candidates} candidates of a "
              "unit will be identical", file=sys.stderr)  # fmt: skip
    job = vindr_job(args.root, batch_options(args), engine)
    if job.n_units is not None and args.n is not None and args.n > job.n_units:
        raise DataError(args.boxes, f"has {job.n_units} box row(s), fewer than --n {args.n}")
    if args.check_sources:
        _check_pool(args, job.sources)

    def resuming(done: int, total: int) -> None:
        print(f"{PROG}: resuming: {done} of {total} unit(s) already done", file=sys.stderr)

    result = write_set(
        job, args.out, n=args.n, start=args.start, shard=args.shard, append=args.append, gzip_level=args.gzip_level,
        progress=tqdm_progress(unit="image", enabled=not args.no_progress),
        finish_progress=tqdm_progress(unit="unit", enabled=not args.no_progress), resuming=resuming,
    )
    manifest = result.manifest or {}
    print(f"wrote {args.out}: {manifest.get('n_samples', 0)} sample(s), sha256 {manifest.get('sha256')}")
    if result.skipped:
        print(f"skipped {len(result.skipped)} source(s) that could not be used (recorded in the set's /audit/events):")
        for skip in result.skipped[:MAX_SKIPS_LISTED]:
            print(f"  {skip.line()}")
        if len(result.skipped) > MAX_SKIPS_LISTED:
            print(f"  ... {len(result.skipped) - MAX_SKIPS_LISTED} more")
    shard_index, shard_count = args.shard
    if shard_count > 1:
        print(f"shard {shard_index}/{shard_count}: merge all shards with `{PROG} merge OUT.h5 SHARD.h5 ...`")
    return 0


def _check_pool(args: argparse.Namespace, sources: Sequence[ImageSource]) -> None:
    """``--check-sources``: read every pool source before any work; list and refuse unreadable ones."""
    from linop_core.synthset.skips import check_sources

    problems = check_sources(sources, progress=tqdm_progress(unit="source", enabled=not args.no_progress))
    for problem in problems:
        print(f"{PROG}: cannot read source {problem.file} ({problem.image_id}): {problem.reason}", file=sys.stderr)
    if problems:
        raise DataError(args.root, f"{len(problems)} of {len(sources)} pool source(s) cannot be read (listed above); "
                        "remove them, or run without --check-sources to skip them (each skip is recorded in the set)")
    print(f"{PROG}: all {len(sources)} pool source(s) read without error", file=sys.stderr)


def _cmd_merge(args: argparse.Namespace) -> int:
    from linop_core.synthset import merge_sets

    manifest = merge_sets(
        args.out,
        args.inputs,
        require_same_config=not args.any_config,
        progress=tqdm_progress(unit="set", enabled=not args.no_progress),
    )
    print(f"wrote {args.out}: {manifest['n_samples']} sample(s) from {len(args.inputs)} set(s), "
          f"sha256 {manifest['sha256']}")  # fmt: skip
    return 0


def _cmd_coco(args: argparse.Namespace) -> int:
    from linop_core.synthset import export_coco

    result = export_coco(
        args.set,
        args.out_dir,
        decisions=(Decision.APPROVED,) if args.approved_only else None,
        progress=tqdm_progress(unit="image", enabled=not args.no_progress),
    )
    print(f"wrote {result.coco_json} ({result.n_images} image(s), {result.n_annotations} box(es))")
    for path in result.csv_files:
        print(f"wrote {path}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from linop_core.synthset import verify_manifest, write_manifest

    manifest = write_manifest(args.set) if args.rewrite else verify_manifest(args.set)
    print(json.dumps({k: manifest[k] for k in ("file", "sha256", "n_samples", "counts")}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Batch synthesis into HDF5 synthetic sets.")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="synthesise N units from a VinDr-Mammo or VinDr-CXR root")
    gen.add_argument("root", help="VinDr-Mammo or VinDr-CXR root folder")
    gen.add_argument("out", help="output set (.h5; one per shard); progress is kept in OUT.parts/ until it finishes")
    gen.add_argument(
        "--n", type=int, help="number of units (source images, K samples each); default with --boxes: all rows"
    )
    gen.add_argument("--engine", choices=("mat", "biharmonic"), default="mat")
    gen.add_argument("--model", help="MAT checkpoint (needed for --engine mat)")
    gen.add_argument("--candidates", type=int, default=1, help="candidates (seeds) per unit (default 1)")
    gen.add_argument("--seed", type=int, default=0, help="export seed; unit i uses (seed, i)")
    gen.add_argument("--device", help="torch device for MAT (cuda, cuda:1, mps, cpu; default: best available)")
    gen.add_argument("--batch-size", type=int, default=8, help="MAT batch size (halved on out-of-memory)")
    gen.add_argument("--precision", choices=[str(p) for p in Precision], default=str(Precision.AUTO),
                     help="MAT arithmetic: auto (bf16 where the CPU/GPU computes it natively, else fp32), fp32, bf16, "
                     "fp16 (GPU only); recorded with every sample")
    gen.add_argument("--resolution", type=int, help="biharmonic window side (default 256)")
    gen.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="I/N", help="run units with i %% N == I")
    gen.add_argument("--boxes", help="CSV image_id,xmin,ymin,xmax,ymax[,label]: one unit per row (Mammo)")
    gen.add_argument("--split", default="training", help="source split (default training)")
    gen.add_argument("--allow-test-sources", action="store_true", help="allow test-split sources (leakage!)")
    gen.add_argument("--append", action="store_true", help="add to an existing set (units continue after it)")
    gen.add_argument("--start", type=int, help="first unit number (default 0, or after the set with --append)")
    gen.add_argument("--size-jitter", type=float, default=0.15, help="relative mass box size jitter")
    gen.add_argument("--hole", choices=[str(h) for h in BOX_HOLES], default=str(HoleKind.ELLIPSE),
                     help="mass hole shape")
    gen.add_argument("--context", type=float, default=2.0, help="in-painting window side / box side")
    gen.add_argument("--feather", type=float, help="blend ramp width in source pixels (default: automatic)")
    gen.add_argument("--margin", type=float, help="CXR: source pixels kept around each finding (default 16)")
    gen.add_argument("--no-anatomy-check", action="store_true", help="do not require boxes inside the breast")
    gen.add_argument("--check-sources", action="store_true",
                     help="read every pool DICOM before starting and stop if any cannot be read (without it, an "
                     "unreadable source is skipped: its unit draws the next one, and the skip is recorded)")
    gen.add_argument("--gzip-level", type=int, default=4, choices=range(10), metavar="0-9", help="compression (4)")
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")
    gen.set_defaults(func=_cmd_generate)

    merge = sub.add_parser("merge", help="merge the shards of one export into one set")
    merge.add_argument("out")
    merge.add_argument("inputs", nargs="+")
    merge.add_argument("--any-config", action="store_true", help="allow sets made with different options")
    merge.add_argument("--no-progress", action="store_true")
    merge.set_defaults(func=_cmd_merge)

    coco = sub.add_parser("coco", help="write COCO JSON + 16-bit PNGs and VinDr-style CSVs")
    coco.add_argument("set")
    coco.add_argument("out_dir")
    coco.add_argument("--approved-only", action="store_true", help="only samples a reviewer approved")
    coco.add_argument("--no-progress", action="store_true")
    coco.set_defaults(func=_cmd_coco)

    verify = sub.add_parser("verify", help="check a set against its manifest (SHA-256, counts)")
    verify.add_argument("set")
    verify.add_argument("--rewrite", action="store_true", help="recompute and rewrite the manifest")
    verify.set_defaults(func=_cmd_verify)

    add_dicom_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_subcommand(PROG, args)


if __name__ == "__main__":
    raise SystemExit(main())
