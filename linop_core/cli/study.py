"""`linop-study`: blinded reader studies (visual Turing tests) of synthetic lesions against real ones.

    linop-study create --sets A.h5 [B.h5 ...] --root VINDR_ROOT --out STUDY.json [--cases N]
                [--synthetic-share 0.5] [--mode crop|whole] [--crop-size PX] [--seed S]
                [--decisions approved,pending] [--size-tolerance 1.5] [--no-density-match]
    linop-study report STUDY.json [--out DIR] [--resamples 2000] [--seed 0] [--mark-tolerance PX]
    linop-study check STUDY.json [--no-hash]
    linop-study relocate STUDY.json [--root NEW_ROOT] [--set INDEX=NEW.h5 ...]

``create`` draws a blinded, shuffled list of real and synthetic cases (see :mod:`linop_core.study.create`);
readers answer them in the GUI, one answers file per reader in ``STUDY.answers/``. ``report`` writes
``report.md``, ``report.json`` and ``roc.png`` (default folder ``STUDY.report/``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from linop_core.cli import run_subcommand
from linop_core.errors import DataError, LinopError

PROG = "linop-study"


def _decisions(text: str) -> tuple[str, ...]:
    return tuple(d.strip() for d in text.split(",") if d.strip())


def _cmd_create(args: argparse.Namespace) -> int:
    from linop_core.study import DisplayMode, StudyOptions, answers_dir, create_study

    out = Path(args.out)
    if out.exists():
        raise LinopError(f"{out} already exists (its readers' answers belong to it); choose another --out or delete it")
    options = StudyOptions(
        cases=args.cases,
        synthetic_share=args.synthetic_share,
        mode=DisplayMode(args.mode),
        crop_size=args.crop_size,
        seed=args.seed,
        decisions=_decisions(args.decisions),
        size_tolerance=args.size_tolerance,
        match_density=not args.no_density_match,
    )
    study = create_study(args.sets, args.root, options).save(out)
    sel = study.selection
    mode = f"crop {options.crop_size} px" if options.mode is DisplayMode.CROP else "whole image"
    print(f"wrote {out}: {len(study.cases)} case(s) ({sel.synthetic} synthetic, {sel.real} real), {study.task}, "
          f"{mode}, seed {options.seed}")  # fmt: skip
    print(f"  synthetic: {sel.synthetic} drawn of {sel.eligible_synthetic} eligible (decision "
          f"{'/'.join(options.decisions)}) from {len(study.sets)} set(s)")  # fmt: skip
    print(f"  real: {sel.real} matched of {sel.real_requested} requested from {sel.real_candidates} candidate "
          f"lesion(s); left out: {sel.excluded_real_sources} on images a synthetic sample was made from, "
          f"{sel.missing_real_files} without a DICOM file")  # fmt: skip
    if sel.unmatched:
        hint = "; try a larger --size-tolerance or --no-density-match" if study.task == "mammo" else ""
        print(f"  unmatched: {len(sel.unmatched)} synthetic case(s) got no real match, so the study has "
              f"{len(sel.unmatched)} real case(s) fewer; first: {sel.unmatched[0].reason} (all are in "
              f"selection.unmatched{hint})")  # fmt: skip
    print(f"  readers' answers will go to {answers_dir(out)}/<reader>.jsonl")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from linop_core.study import Study, load_all_answers, write_report

    study = Study.load(args.study)
    answers = load_all_answers(study)
    if not answers:
        raise DataError(args.study, "no reader has answered yet (no STUDY.answers/<reader>.jsonl); nothing to report")
    out = Path(args.out) if args.out else Path(args.study).with_name(Path(args.study).stem + ".report")
    report = write_report(
        study, answers, out, n_resamples=args.resamples, seed=args.seed, mark_tolerance=args.mark_tolerance
    )
    pooled = report["pooled"]
    accuracy = "–" if pooled["accuracy"] is None else f"{pooled['accuracy']:.2f}"
    print(f"{report['verdict']}")
    print(f"  {len(answers)} reader(s), {pooled['n_answers']} answer(s); pooled accuracy {accuracy} at confidence >= 3")
    print(f"wrote {out / 'report.md'}, {out / 'report.json'}, {out / 'roc.png'}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from linop_core.study import Study, check_inputs, load_all_answers

    study = Study.load(args.study)
    check_inputs(study, verify_hashes=not args.no_hash)
    answers = load_all_answers(study)
    print(f"{args.study}: {len(study.sets)} set(s) and {sum(c.source.kind == 'root' for c in study.cases)} real "
          f"DICOM file(s) in place{'' if args.no_hash else ', checksums match'}")  # fmt: skip
    for reader, given in answers.items():
        print(f"  {reader}: {len(given)} of {len(study.cases)} case(s) answered")
    return 0


def _set_override(text: str) -> tuple[int, str]:
    index, sep, path = text.partition("=")
    if not sep or not index.strip().isdigit() or not path:
        raise argparse.ArgumentTypeError(f"--set wants INDEX=PATH, e.g. 0=/new/place/a.h5 (got {text!r})")
    return int(index), path


def _cmd_relocate(args: argparse.Namespace) -> int:
    from linop_core.study import Study, missing_inputs, relocate

    if args.root is None and not args.set:
        raise LinopError("relocate needs --root NEW_ROOT and/or --set INDEX=NEW.h5")
    study = Study.load(args.study)
    moved = relocate(study, root=args.root, sets=dict(args.set))  # checks what it changes
    moved.save(args.study)
    print(f"updated {args.study}: root {moved.root}; sets {', '.join(str(s.path) for s in moved.sets)}")
    missing = missing_inputs(moved)
    if missing:
        print(f"{PROG}: note: still missing: {'; '.join(missing)}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Blinded reader studies of synthetic vs real lesions.")
    sub = parser.add_subparsers(dest="command", required=True)

    create = sub.add_parser("create", help="draw a blinded, shuffled study of real and synthetic cases")
    create.add_argument("--sets", nargs="+", required=True, metavar="SET.h5", help="synthetic set(s)")
    create.add_argument("--root", required=True, help="the VinDr-Mammo or VinDr-CXR root the real cases come from")
    create.add_argument("--out", required=True, help="the study file to write (JSON; must not exist)")
    create.add_argument("--cases", type=int, default=100, help="number of cases (default 100)")
    create.add_argument("--synthetic-share", type=float, default=0.5, help="share of synthetic cases (0.5)")
    create.add_argument("--mode", choices=("crop", "whole"), default="crop", help="show a crop or the whole image")
    create.add_argument("--crop-size", type=int, default=512, help="crop side in native pixels (512)")
    create.add_argument("--seed", type=int, default=0, help="the same seed draws the same study")
    create.add_argument(
        "--decisions", default="approved,pending", help="review decisions a synthetic sample may have"
    )
    create.add_argument(
        "--size-tolerance", type=float, default=1.5, help="mammography: real box side within this factor (1.5)"
    )
    create.add_argument(
        "--no-density-match", action="store_true", help="mammography: do not require the same breast density"
    )
    create.set_defaults(func=_cmd_create)

    report = sub.add_parser("report", help="AUC with 95 %% CI, accuracy, agreement, localisation; md + json + png")
    report.add_argument("study")
    report.add_argument("--out", help="output folder (default: STUDY.report/ next to the study)")
    report.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (2000)")
    report.add_argument("--seed", type=int, default=0, help="bootstrap seed (0)")
    report.add_argument("--mark-tolerance", type=float, default=0.0, help="px a mark may lie outside the box (0)")
    report.set_defaults(func=_cmd_report)

    check = sub.add_parser("check", help="are the study's sets and DICOMs in place and unchanged?")
    check.add_argument("study")
    check.add_argument("--no-hash", action="store_true", help="compare set sizes only, not SHA-256")
    check.set_defaults(func=_cmd_check)

    reloc = sub.add_parser("relocate", help="point a study at moved sets or a moved root")
    reloc.add_argument("study")
    reloc.add_argument("--root", help="the root's new place")
    reloc.add_argument("--set", type=_set_override, action="append", default=[], metavar="INDEX=PATH")
    reloc.set_defaults(func=_cmd_relocate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_subcommand(PROG, args)


if __name__ == "__main__":
    raise SystemExit(main())
