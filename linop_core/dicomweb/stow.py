"""STOW-RS: store DICOM files on a server, in batches, and report any instance it rejects.

The server answers with a Failed SOP Sequence naming each rejected instance and a failure reason (PS3.18
10.5.3, the C-STORE status codes of PS3.4); that becomes one line naming the URL, the first rejected file and
what to do. The files themselves are never changed or removed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
import requests
from pydicom.dataset import Dataset

from linop_core.dicomweb.connection import DicomwebError, DicomwebServer
from linop_core.progress import Progress

DEFAULT_BATCH_BYTES = 64 * 1024 * 1024
# C-STORE failure statuses (PS3.4 Table B.2-1, PS3.18 Table 10.5.3-1)
FAILURE_REASONS = {
    0x0110: "processing failure",
    0x0122: "SOP class not supported",
    0x0124: "not authorised",
    0xA700: "out of resources",
    0xA900: "data set does not match its SOP class",
    0xC000: "cannot understand (missing or invalid attributes)",
    0xC122: "transfer syntax not supported",
}


@dataclass(frozen=True)
class StowResult:
    n_stored: int
    study_uids: tuple[str, ...]  # the studies the stored instances belong to, in file order


def store_files(
    server: DicomwebServer,
    paths: Sequence[str | os.PathLike[str]],
    *,
    progress: Progress | None = None,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
) -> StowResult:
    """Store ``paths`` (DICOM files) on the server; raises :class:`DicomwebError` at the first rejection."""
    files = [Path(p) for p in paths]
    stored = 0
    studies: dict[str, None] = {}
    batch: list[tuple[Path, Dataset]] = []
    size = 0
    for done, path in enumerate(files, start=1):
        try:
            ds = pydicom.dcmread(path)
        except Exception as exc:
            raise DicomwebError(server.url, f"cannot read {path} to store it ({exc}); nothing of it was sent") from exc
        batch.append((path, ds))
        size += path.stat().st_size
        if size >= batch_bytes or done == len(files):
            stored += _store_batch(server, batch)
            studies.update(dict.fromkeys(str(ds.StudyInstanceUID) for _p, ds in batch if "StudyInstanceUID" in ds))
            batch, size = [], 0
        if progress is not None:
            progress(done, len(files))
    return StowResult(stored, tuple(studies))


def _store_batch(server: DicomwebServer, batch: list[tuple[Path, Dataset]]) -> int:
    what = f"storing {len(batch)} instance(s) (STOW-RS)"
    try:
        with server.request(what):
            response = server.client.store_instances([ds for _path, ds in batch])
    except DicomwebError as exc:
        cause = exc.__cause__
        if isinstance(cause, requests.exceptions.HTTPError):
            failed = _failed_from_body(cause.response)
            if failed:
                raise _rejection(server, batch, failed, stored=0) from exc
        raise
    failed = list(response.get("FailedSOPSequence", []))
    if failed:
        raise _rejection(server, batch, failed, stored=len(batch) - len(failed))
    return len(batch)


def _failed_from_body(response: requests.Response | None) -> list[Dataset]:
    """The Failed SOP Sequence of an error answer (400 / 409), whatever Content-Type the server gave it."""
    if response is None or not response.content:
        return []
    try:
        body = json.loads(response.content)
        return list(Dataset.from_json(body).get("FailedSOPSequence", []))
    except (ValueError, TypeError, KeyError):  # not DICOM JSON (e.g. an HTML error page): no details to give
        return []


def _rejection(
    server: DicomwebServer, batch: list[tuple[Path, Dataset]], failed: list[Dataset], stored: int
) -> DicomwebError:
    by_uid = {str(ds.get("SOPInstanceUID", "")): path for path, ds in batch}
    first = failed[0]
    uid = str(first.get("ReferencedSOPInstanceUID", ""))
    code = int(first.get("FailureReason", 0) or 0)
    reason = FAILURE_REASONS.get(code, "unknown reason")
    where = by_uid.get(uid, Path("?"))
    kept = f"{stored} other instance(s) of the batch were stored; " if stored else ""
    return DicomwebError(
        server.url,
        f"rejected {len(failed)} of {len(batch)} instance(s) (first: {where.name}, SOP Instance UID {uid or '?'}: "
        f"0x{code:04X} {reason}); {kept}the local files are kept: check the file "
        f"(`linop-data inspect {where}`) and the server's log, then store again",
    )
