"""`linop-export`: headless batch synthesis from a VinDr root into an HDF5 synthetic set, and its companions.

    linop-export generate ROOT OUT.h5 --n N [--engine biharmonic|mat] [--model CKPT] [--candidates K]
                 [--seed S] [--device D] [--shard I/N] [--boxes CSV] [--append] [--allow-test-sources]
    linop-export merge OUT.h5 SHARD.h5 [SHARD.h5 ...]
    linop-export coco SET.h5 OUT_DIR [--approved-only]
    linop-export verify SET.h5
    linop-export dicom SET.h5 OUT_DIR [--stow URL] [--approved-only]   (see linop_core.cli.export_dicom)

``generate`` in-paints masses into the normal pool of a VinDr-Mammo root (boxes sampled from the real mass
boxes, or read from ``--boxes``) or out-paints around the findings of abnormal VinDr-CXR images. Work unit
``i`` (one source image, ``K`` candidates, samples ``i*K .. i*K+K-1``) depends only on ``--seed`` and ``i``;
``--shard I/N`` runs the units with ``i % N == I``, so shards merged with ``merge`` equal one unsharded run.
Interrupted runs resume when started again with the same arguments.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linop_core.cli import run_subcommand
from linop_core.cli.export_dicom import add_dicom_parser
from linop_core.errors import DataError, LinopError
from linop_core.progress import tqdm_progress

PROG = "linop-export"





def parse_shard(text: str) -> tuple[int, int]:
    try:
        index_text, count_text = text.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard wants I/N, e.g. 0/4 (got {text!r})") from None
    if count < 1 or not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"--shard {text}: need N >= 1 and 0 <= I < N")
    return index, count


@dataclass
class _Job:
    """Everything a unit needs; built once per run."""

    kind: str  # "mammo" | "cxr"
    dataset: Any
    pool: list[Any]
    engine: Any
    seed: int
    candidates: int
    box_requests: list[Any] | None
    mass_model: Any
    size_jitter: float
    inpaint_options: dict[str, Any]
    outpaint_options: dict[str, Any]
    anatomy_check: bool


def _ids_digest(ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def _make_engine(args: argparse.Namespace) -> Any:
    from linop_core.engines import BiharmonicEngine, MatEngine

    if args.engine == "biharmonic":
        if args.model:
            raise LinopError("--model is for --engine mat; the biharmonic engine needs no weights")
        return BiharmonicEngine(resolution=args.resolution or 256)
    model = args.model
    if not model:
        from linop_core.demo_models import demo_model_path
        from linop_core.vindr import MammoDataset

        task = "inpaint" if MammoDataset.is_root(Path(args.root)) else "outpaint"
        model = demo_model_path(task)
        if model is None:
            raise LinopError(
                "--engine mat needs --model CHECKPOINT (a LINOP or imported official MAT checkpoint): no bundled "
                f"demo {task} model is installed; or use --engine biharmonic"
            )
        print(f"{PROG}: no --model given: using the bundled demo model {model.name} (phantom-trained)", file=sys.stderr)
    return MatEngine(model, device=args.device, batch_size=args.batch_size)


def build_job(args: argparse.Namespace, engine: Any) -> tuple[_Job, dict[str, Any]]:
    """The pool, box sampler and options of a ``generate`` run, and the config that identifies it."""
    from linop_core.synthset.plan import MassBoxModel, read_box_csv
    from linop_core.vindr import CxrDataset, MammoDataset, open_dataset

    dataset = open_dataset(args.root)
    split = args.split
    if split == "test" and not args.allow_test_sources:
        raise DataError(
            args.root,
            "--split test would synthesise from evaluation images and leak them into training; "
            "add --allow-test-sources if you really mean it",
        )
    box_requests = None
    mass_model = None
    if isinstance(dataset, MammoDataset):
        kind = "mammo"
        if args.boxes:
            box_requests = read_box_csv(args.boxes)
            pool = [dataset.by_id(r.image_id) for r in box_requests]
            absent = [r.image_id for r in pool if not r.exists]
            if absent:
                raise DataError(
                    args.boxes, f"{len(absent)} image(s) have no DICOM file under the root (first: {absent[0]})"
                )
            tests = sorted({r.image_id for r in pool if r.split == "test"})
            if tests and not args.allow_test_sources:
                raise DataError(
                    args.boxes,
                    f"{len(tests)} image(s) are from the test split (first: {tests[0]}); synthesising from "
                    "evaluation images leaks them into training; remove them or add --allow-test-sources",
                )
        else:
            pool = sorted(dataset.normal_pool(split), key=lambda r: r.image_id)
            mass_model = MassBoxModel.from_boxes(dataset.mass_boxes("training"))
    elif isinstance(dataset, CxrDataset):
        kind = "cxr"
        if args.boxes:
            raise LinopError("--boxes is for VinDr-Mammo in-painting; CXR out-painting keeps the real findings")
        pool = sorted(
            (r for r in dataset.split(split) if any(f.box is not None for f in r.findings)), key=lambda r: r.image_id
        )
    else:  # pragma: no cover - open_dataset returns one of the two
        raise DataError(args.root, "not a VinDr-Mammo or VinDr-CXR root")
    pool = [r for r in pool if r.exists]
    if not pool:
        what = "normal (BI-RADS 1) images" if kind == "mammo" else "abnormal images with boxes"
        raise DataError(args.root, f"no {what} with a DICOM file in split {split!r}; check the root and --split")
    provenance = engine.provenance()
    inpaint_options: dict[str, Any] = {"hole": args.hole, "context": args.context, "feather_px": args.feather}
    outpaint_options: dict[str, Any] = {"feather_px": args.feather}
    if args.margin is not None:
        outpaint_options["margin"] = args.margin
    config: dict[str, Any] = {
        "dataset": kind,
        "pool_size": len(pool),
        "pool_sha256": _ids_digest([r.image_id for r in pool]),
        "split": split,
        "boxes_csv_sha256": _file_digest(args.boxes) if args.boxes else None,
        "engine": provenance.get("engine"),
        "checkpoint_sha256": provenance.get("checkpoint_sha256"),
        "engine_resolution": getattr(engine, "resolution", None),
        "seed": args.seed,
        "candidates": args.candidates,
        "size_jitter": args.size_jitter,
        "inpaint": inpaint_options if kind == "mammo" else None,
        "outpaint": outpaint_options if kind == "cxr" else None,
        "mass_box_source": None if mass_model is None else ("fallback" if mass_model.is_fallback else "training"),
        "mass_box_count": None if mass_model is None else len(mass_model.boxes),
        "anatomy_check": not args.no_anatomy_check,
    }
    job = _Job(
        kind=kind,
        dataset=dataset,
        pool=pool,
        engine=engine,
        seed=args.seed,
        candidates=args.candidates,
        box_requests=box_requests,
        mass_model=mass_model,
        size_jitter=args.size_jitter,
        inpaint_options=inpaint_options,
        outpaint_options=outpaint_options,
        anatomy_check=not args.no_anatomy_check,
    )
    return job, config


def _file_digest(path: str) -> str:
    from linop_core.synthset.manifest import file_sha256

    return file_sha256(Path(path))


def _source_info(record: Any, image: Any) -> Any:
    from linop_core.synthset import SourceDicom, SourceInfo

    # dataset ids only: nothing from the DICOM header except the pixel spacing and the instance's own UIDs and
    # pixel encoding (SourceDicom: what a DICOM export needs to reference the source and keep its bit depth)
    return SourceInfo(
        dataset=record.dataset,
        image_id=record.image_id,
        study_id=record.study_id,
        split=record.split,
        laterality=record.laterality,
        view=record.view,
        pixel_spacing_mm=image.meta.pixel_spacing_mm,
        dicom=SourceDicom.from_image(image),
    )


def run_unit(job: _Job, unit: int) -> list[Any]:
    """Synthesise the candidates of one unit (deterministic in ``job.seed`` and ``unit``)."""
    from linop_core.anatomy import breast_mask
    from linop_core.dicom import read_dicom
    from linop_core.synthesis import InpaintRequest, OutpaintRequest, inpaint_lesion, outpaint_around
    from linop_core.synthset import SynthSample
    from linop_core.synthset.plan import candidate_seeds, pick_source, sample_mass_box, unit_rng

    rng = unit_rng(job.seed, unit)
    if job.box_requests is not None:
        request = job.box_requests[unit]
        record = job.dataset.by_id(request.image_id)
    else:
        request = None
        record = pick_source(rng, job.pool)
    seeds = candidate_seeds(rng, job.candidates)
    image = read_dicom(record.path)
    name = f"{record.dataset} image {record.image_id}"
    if job.kind == "mammo":
        if request is not None:
            box, label = request.box, request.label
        else:
            breast = breast_mask(image.pixels, padding_mask=image.padding_mask)
            box = sample_mass_box(rng, job.mass_model, breast, size_jitter=job.size_jitter, image_name=name)
            label = "Mass"
        inpaint = InpaintRequest(box=box, seeds=seeds, category=label, **job.inpaint_options)
        candidates = inpaint_lesion(image, inpaint, job.engine, anatomy_check=job.anatomy_check, image_name=name)
    else:
        findings = [f for f in record.findings if f.box is not None]
        outpaint = OutpaintRequest(
            boxes=tuple(f.box for f in findings),
            box_labels=tuple(f.categories[0] for f in findings),
            seeds=seeds,
            global_labels=tuple(record.labels),
            **job.outpaint_options,
        )
        candidates = outpaint_around(image, outpaint, job.engine, anatomy_check=job.anatomy_check, image_name=name)
    source = _source_info(record, image)
    return [
        SynthSample(index=unit * job.candidates + k, candidate=c, source_pixels=image.pixels, source=source)
        for k, c in enumerate(candidates)
    ]


def _cmd_generate(args: argparse.Namespace) -> int:
    from linop_core.synthset import SynthSetWriter
    from linop_core.vindr import ALL_LABELS, LOCAL_LABELS

    if args.n is None and not args.boxes:
        raise LinopError("--n is required (the number of units to synthesise) unless --boxes gives them")
    if (args.n is not None and args.n < 1) or args.candidates < 1:
        raise LinopError("--n and --candidates must be at least 1")
    shard_index, shard_count = args.shard
    engine = _make_engine(args)
    if args.candidates > 1 and not getattr(engine, "seed_used", True):
        print(f"{PROG}: note: the {engine.name} engine ignores seeds, so the {args.candidates} candidates of a "
              "unit will be identical", file=sys.stderr)  # fmt: skip
    job, config = build_job(args, engine)
    if job.box_requests is not None:
        if args.n is None:
            args.n = len(job.box_requests)
        elif args.n > len(job.box_requests):
            raise DataError(args.boxes, f"has {len(job.box_requests)} box row(s), fewer than --n {args.n}")
    box_names = ("Mass",) if job.kind == "mammo" else LOCAL_LABELS
    global_names = () if job.kind == "mammo" else ALL_LABELS
    out = Path(args.out)
    start = args.start
    if start is None and args.append and shard_count > 1:
        raise LinopError("--append with --shard needs --start (the same first unit number for every shard)")
    if start is None:
        start = next_unit(out) if args.append else 0
    config["start"] = start
    writer = SynthSetWriter(
        out,
        config=config,
        filter="decision==pending (unreviewed batch export)",
        allow_test_split=args.allow_test_sources,
        box_label_names=box_names,
        global_label_names=global_names,
        append=args.append,
        gzip_level=args.gzip_level,
    )
    units = [u for u in range(start, start + args.n) if u % shard_count == shard_index]
    todo = [u for u in units if u not in writer.done_units]
    if len(todo) < len(units):
        print(f"{PROG}: resuming: {len(units) - len(todo)} of {len(units)} unit(s) already done", file=sys.stderr)
    progress = tqdm_progress(unit="image", enabled=not args.no_progress)
    for done, unit in enumerate(todo, start=1):
        writer.commit(unit, run_unit(job, unit))
        if progress is not None:
            progress(done, len(todo))
    manifest = writer.finish(progress=tqdm_progress(unit="unit", enabled=not args.no_progress))
    print(f"wrote {out}: {manifest['n_samples']} sample(s), sha256 {manifest['sha256']}")
    if shard_count > 1:
        print(f"shard {shard_index}/{shard_count}: merge all shards with `{PROG} merge OUT.h5 SHARD.h5 ...`")
    return 0


def next_unit(out: Path) -> int:
    """First unit number after those in an existing set (0 when there is none)."""
    if not out.exists():
        return 0
    from linop_core.synthset import SynthSet

    with SynthSet(out) as synth:
        units = synth.meta["unit"]
        return int(units.max()) + 1 if len(units) else 0


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
        decisions=("approved",) if args.approved_only else None,
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
    gen.add_argument("--resolution", type=int, help="biharmonic window side (default 256)")
    gen.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="I/N", help="run units with i %% N == I")
    gen.add_argument("--boxes", help="CSV image_id,xmin,ymin,xmax,ymax[,label]: one unit per row (Mammo)")
    gen.add_argument("--split", default="training", help="source split (default training)")
    gen.add_argument("--allow-test-sources", action="store_true", help="allow test-split sources (leakage!)")
    gen.add_argument("--append", action="store_true", help="add to an existing set (units continue after it)")
    gen.add_argument("--start", type=int, help="first unit number (default 0, or after the set with --append)")
    gen.add_argument("--size-jitter", type=float, default=0.15, help="relative mass box size jitter")
    gen.add_argument("--hole", choices=("ellipse", "rectangle"), default="ellipse", help="mass hole shape")
    gen.add_argument("--context", type=float, default=2.0, help="in-painting window side / box side")
    gen.add_argument("--feather", type=float, help="blend ramp width in source pixels (default: automatic)")
    gen.add_argument("--margin", type=float, help="CXR: source pixels kept around each finding (default 16)")
    gen.add_argument("--no-anatomy-check", action="store_true", help="do not require boxes inside the breast")
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
