"""`linop-data inspect --dicomweb URL [--patient ID] [--patient-name NAME] [--study UID] [--modality MG]
[--date D] [--json] [--retrieve DIR]`: browse a PACS over DICOMweb, and fetch studies into a local folder.

Credentials come from LINOP_DICOMWEB_TOKEN (bearer), or LINOP_DICOMWEB_USER and LINOP_DICOMWEB_PASSWORD.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from typing import Any

from linop_core.progress import tqdm_progress


def add_dicomweb_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "DICOMweb (PACS)",
        "list the studies of a DICOMweb server instead of a local path; credentials from LINOP_DICOMWEB_TOKEN, "
        "or LINOP_DICOMWEB_USER and LINOP_DICOMWEB_PASSWORD",
    )
    group.add_argument("--dicomweb", metavar="URL", help="DICOMweb root, e.g. http://localhost:8042/dicom-web")
    group.add_argument("--patient", metavar="ID", help="Patient ID (wildcards * and ? allowed)")
    group.add_argument("--patient-name", metavar="NAME", help="Patient's Name (wildcards * and ? allowed)")
    group.add_argument("--study", metavar="UID", help="Study Instance UID")
    group.add_argument("--modality", help="a modality in the study, e.g. MG, DX, CR")
    group.add_argument("--date", help="study date YYYYMMDD or range YYYYMMDD-YYYYMMDD")
    group.add_argument("--limit", type=int, default=100, help="at most this many studies (default 100)")
    group.add_argument("--retrieve", metavar="DIR", help="fetch the image instances of the listed studies into DIR")


def inspect_dicomweb(args: argparse.Namespace) -> int:
    from linop_core.dicomweb import DicomwebAuth, DicomwebServer, StudyQuery, retrieve_study, search_studies

    server = DicomwebServer(args.dicomweb, DicomwebAuth.from_env(os.environ))
    query = StudyQuery(patient_id=args.patient, patient_name=args.patient_name, study_uid=args.study,
                       modality=args.modality, date=args.date, limit=args.limit)  # fmt: skip
    studies = search_studies(server, query)
    retrieved = []
    if args.retrieve:
        for study in studies:
            progress = tqdm_progress(unit="image", desc=study.study_uid[-12:], enabled=not args.json)
            retrieved.append(retrieve_study(server, study.study_uid, args.retrieve, progress=progress))
    if args.json:
        report: dict[str, Any] = {"url": server.url, "query": asdict(query), "studies": [asdict(s) for s in studies]}
        if args.retrieve:
            report["retrieved"] = [{**asdict(r), "folder": str(r.folder), "files": [str(f) for f in r.files]}
                                   for r in retrieved]  # fmt: skip
        print(json.dumps(report, indent=2))
        return 0
    print(format_studies(server.url, studies))
    for r in retrieved:
        print(f"retrieved study {r.study_uid} into {r.folder}: {r.n_downloaded} fetched, {r.n_cached} already "
              f"cached, {r.n_not_images} non-image instance(s) skipped")  # fmt: skip
    return 0


def format_studies(url: str, studies: list[Any]) -> str:
    if not studies:
        return f"{url}: no study matches"
    lines = [f"{url}: {len(studies)} study(ies)"]
    for s in studies:
        modalities = "/".join(s.modalities) or "-"
        patient = f"patient {s.patient_id or '-'} ({s.patient_name or '-'})"
        lines.append(f"study {s.study_uid}  {s.date or '-'}  {patient}  {modalities}  {s.n_series} series, "
                     f"{s.n_instances} instance(s)  {s.description}".rstrip())  # fmt: skip
        for series in s.series:
            number = "-" if series.number is None else series.number
            lines.append(f"  series {series.series_uid}  #{number}  {series.modality or '-'}  "
                         f"{series.n_instances} instance(s)  {series.description}".rstrip())  # fmt: skip
    return "\n".join(lines)
