"""`linop-data`: phantom datasets in the VinDr layouts, and inspection of DICOM files and dataset roots.

    linop-data phantom mammo|cxr --out DIR --n N --seed S [--size small|full]
    linop-data inspect PATH [--json] [--strict] [--decode] [--check-files]
    linop-data inspect --dicomweb URL [--patient ID] [--modality MG] [--study UID] [--retrieve DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from linop_core.cli import run_subcommand
from linop_core.cli.data_dicomweb import add_dicomweb_arguments, inspect_dicomweb
from linop_core.errors import LinopError
from linop_core.progress import tqdm_progress


def _cmd_phantom(args: argparse.Namespace) -> int:
    from linop_core.phantom import make_cxr_dataset, make_mammo_dataset

    make = make_mammo_dataset if args.modality == "mammo" else make_cxr_dataset
    unit = "study" if args.modality == "mammo" else "image"
    summary = make(Path(args.out), n=args.n, seed=args.seed, size=args.size, progress=tqdm_progress(unit=unit))
    print(f"wrote a phantom VinDr-{'Mammo' if args.modality == 'mammo' else 'CXR'} dataset to {summary.root}")
    print(f"  studies: {summary.n_studies}  images: {summary.n_images}")
    for key, value in summary.counts.items():
        print(f"  {key}: {value}")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from linop_core.inspect import format_inspection, inspect_path

    if args.dicomweb:
        return inspect_dicomweb(args)
    if args.path is None:
        raise LinopError("give a PATH to inspect, or --dicomweb URL to browse a PACS")

    report = inspect_path(Path(args.path), strict=args.strict, decode=args.decode, check_files=args.check_files)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=False))
    else:
        print(format_inspection(report))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="linop-data", description="Phantom datasets in the VinDr layouts, and inspection of real ones."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    ph = sub.add_parser("phantom", help="write a procedural dataset in the exact VinDr layout")
    ph.add_argument("modality", choices=["mammo", "cxr"])
    ph.add_argument("--out", required=True, help="output root (created; existing files are replaced)")
    ph.add_argument(
        "--n", type=int, default=8, help="mammo: number of studies (4 images each); cxr: number of images"
    )
    ph.add_argument("--seed", type=int, default=0, help="the same seed writes the same dataset")
    ph.add_argument(
        "--size",
        choices=["small", "full"],
        default="small",
        help="small: about 512-1024 px (fast); full: VinDr's native sizes",
    )
    ph.set_defaults(func=_cmd_phantom)

    ins = sub.add_parser("inspect", help="summarise a DICOM file, a folder of DICOM files or a VinDr dataset root")
    ins.add_argument("path", nargs="?",
                     help="a DICOM file, a folder of DICOM files, a VinDr-Mammo root or a VinDr-CXR root")
    ins.add_argument("--json", action="store_true", help="print machine-readable JSON")
    ins.add_argument("--strict", action="store_true", help="a malformed CSV row is fatal instead of skipped")
    ins.add_argument("--decode", action="store_true", help="folder: decode every image's pixels, not only headers")
    ins.add_argument("--check-files", action="store_true",
                     help="VinDr root: read every DICOM header; list unreadable files and sizes the CSV gets wrong")
    add_dicomweb_arguments(ins)
    ins.set_defaults(func=_cmd_inspect)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "phantom" and args.n < 1:
        print("linop-data: --n must be at least 1", file=sys.stderr)
        return 2
    return run_subcommand("linop-data", args)


if __name__ == "__main__":
    raise SystemExit(main())
