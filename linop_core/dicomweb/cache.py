"""WADO-RS retrieval of a study into a local cache folder that LINOP opens like any folder of DICOM files.

Layout: ``<cache>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``. Each file is written to a
temporary name and renamed, so a file in the cache is complete and is never fetched again; an interrupted
retrieval continues where it stopped. Only image instances are fetched (LINOP reads radiographs; SEGs, SRs and
presentation states are skipped and counted): a study without any image is refused with its SOP classes named.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import UID

from linop_core.dicomweb.connection import DicomwebError, DicomwebServer
from linop_core.fileio import atomic_open
from linop_core.progress import Progress

INSTANCE_FIELDS = ("SOPClassUID", "SeriesInstanceUID", "Rows", "Columns")
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


@dataclass(frozen=True)
class RetrievedStudy:
    """One study in the cache: ``folder`` holds its image files (``files``)."""

    study_uid: str
    folder: Path
    files: tuple[Path, ...]
    n_downloaded: int
    n_cached: int  # already in the cache, not fetched again
    n_not_images: int  # instances skipped because they hold no image


def default_cache_dir(server: DicomwebServer, cache_root: Path) -> Path:
    """The cache folder of one server under ``cache_root`` (e.g. ``~/.cache/linop/dicomweb``)."""
    return cache_root / server.cache_key


def retrieve_study(
    server: DicomwebServer, study_uid: str, cache_dir: str | os.PathLike[str], *, progress: Progress | None = None
) -> RetrievedStudy:
    """Fetch the image instances of ``study_uid`` that are not in ``cache_dir`` yet; ``progress(done, total)``."""
    cache = Path(cache_dir)
    _check_uid(server, study_uid, "study")
    with server.request(f"listing the instances of study {study_uid} (QIDO-RS)"):
        found = server.client.search_for_instances(study_instance_uid=study_uid, fields=list(INSTANCE_FIELDS))
    instances = [Dataset.from_json(item) for item in found]
    if not instances:
        raise DicomwebError(
            server.url, f"study {study_uid} is not on the server (or has no instances); list the studies with "
            f"`linop-data inspect --dicomweb {server.url}`"
        )
    images = [ds for ds in instances if _is_image(ds)]
    if not images:
        classes = Counter(_sop_class_name(ds) for ds in instances)
        what = ", ".join(f"{n} {name}" for name, n in classes.most_common())
        raise DicomwebError(
            server.url, f"study {study_uid} holds no image ({what}); LINOP opens radiographs (MG, DX, CR): pick "
            f"another study (`linop-data inspect --dicomweb {server.url} --study UID` lists what a study holds)"
        )
    folder = cache / study_uid
    files: list[Path] = []
    downloaded = cached = 0
    for done, ds in enumerate(images, start=1):
        series_uid, sop_uid = str(ds.get("SeriesInstanceUID", "")), str(ds.get("SOPInstanceUID", ""))
        _check_uid(server, series_uid, "series")
        _check_uid(server, sop_uid, "instance")
        path = folder / series_uid / f"{sop_uid}.dcm"
        if path.is_file():
            cached += 1
        else:
            with server.request(f"retrieving instance {sop_uid} (WADO-RS)"):
                instance = server.client.retrieve_instance(study_uid, series_uid, sop_uid)
            with atomic_open(path) as handle:
                instance.save_as(handle, enforce_file_format=True)
            downloaded += 1
        files.append(path)
        if progress is not None:
            progress(done, len(images))
    return RetrievedStudy(study_uid, folder, tuple(files), downloaded, cached, len(instances) - len(images))


def _is_image(ds: Dataset) -> bool:
    """An image LINOP can open: an image SOP class (not a SEG, SR, presentation state...); a class this
    pydicom does not know counts as an image when it has Rows."""
    sop_class = str(ds.get("SOPClassUID", ""))
    name = UID(sop_class).name if sop_class else ""
    if name and name != sop_class:  # a known SOP class
        return "Image Storage" in name
    return bool(ds.get("Rows"))


def _sop_class_name(ds: Dataset) -> str:
    sop_class = str(ds.get("SOPClassUID", ""))
    return UID(sop_class).name if sop_class else "instance(s) of unknown SOP class"


def _check_uid(server: DicomwebServer, uid: str, what: str) -> None:
    # UIDs become folder and file names: refuse anything that is not digits and dots (e.g. "../")
    if not _UID.match(uid) or len(uid) > 64:
        raise DicomwebError(server.url, f"{what} UID {uid!r} is not a valid DICOM UID; check the UID given")
