"""`linop-export dicom SET OUT_DIR [--stow URL] [--approved-only]`: a synthetic set as DICOM, optionally stored
on a PACS (STOW-RS). Credentials for ``--stow`` come from LINOP_DICOMWEB_TOKEN, or LINOP_DICOMWEB_USER and
LINOP_DICOMWEB_PASSWORD.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from linop_core.errors import LinopError
from linop_core.progress import tqdm_progress


def add_dicom_parser(sub: Any) -> None:
    """Register the ``dicom`` subcommand on ``linop-export``'s subparsers."""
    dicom = sub.add_parser(
        "dicom",
        help="write each sample as a DICOM image (Secondary Capture) + a SEG of the generated region",
        description="Write each sample as a DICOM Secondary Capture image of the source's modality and a binary "
        "DICOM SEG of the generated region, plus VinDr-style CSVs; an interrupted export resumes in the same "
        "folder. --stow stores the result on a DICOMweb server (credentials: LINOP_DICOMWEB_TOKEN, or "
        "LINOP_DICOMWEB_USER and LINOP_DICOMWEB_PASSWORD).",
    )
    dicom.add_argument("set", help="synthetic set (.h5)")
    dicom.add_argument("out_dir", help="output folder (created; rerun into it to resume)")
    dicom.add_argument("--approved-only", action="store_true", help="only samples a reviewer approved")
    dicom.add_argument("--stow", metavar="URL", help="then store the files on this DICOMweb root (STOW-RS)")
    dicom.add_argument("--no-progress", action="store_true", help="no progress bar")
    dicom.set_defaults(func=_cmd_dicom)


def _cmd_dicom(args: argparse.Namespace) -> int:
    from linop_core.dicom_export import export_dicom

    server = _server(args.stow) if args.stow else None  # a malformed URL fails before any work
    result = export_dicom(
        args.set,
        args.out_dir,
        decisions=("approved",) if args.approved_only else None,
        progress=tqdm_progress(unit="sample", enabled=not args.no_progress),
    )
    print(f"wrote {result.out_dir}: {result.n_samples} sample(s) as {len(result.image_files)} image(s) + "
          f"{len(result.seg_files)} SEG(s); {result.n_written} written now, {result.n_kept} kept from an earlier "
          f"run, {result.n_replaced} replaced")  # fmt: skip
    if result.n_unreferenced:
        print(f"note: {result.n_unreferenced} sample(s) have no Source Image Sequence: the set predates LINOP "
              "recording source UIDs (said in their Derivation Description)")  # fmt: skip
    for path in result.csv_files:
        print(f"wrote {path}")
    if result.n_written:
        print(f"DICOM export: {result.files_per_second:.1f} files/s ({2 * result.n_written} files in "
              f"{result.seconds:.2f} s)")  # fmt: skip
    if server is not None:
        _stow(server, result, args)
    return 0


def _server(url: str) -> Any:
    from linop_core.dicomweb import DicomwebAuth, DicomwebServer

    return DicomwebServer(url, DicomwebAuth.from_env(os.environ))


def _stow(server: Any, result: Any, args: argparse.Namespace) -> None:
    from linop_core.dicomweb import DicomwebError, store_files

    try:
        stored = store_files(server, result.files, progress=tqdm_progress(unit="file", enabled=not args.no_progress))
    except DicomwebError as exc:
        raise LinopError(f"{exc} (the export in {result.out_dir} is complete and kept; rerun the same command to "
                         "store it again: finished files are not rewritten)") from exc  # fmt: skip
    print(f"stored {stored.n_stored} instance(s) on {server.url} in study(ies) {', '.join(stored.study_uids)}")
