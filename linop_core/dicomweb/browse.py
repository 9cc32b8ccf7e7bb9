"""QIDO-RS: find studies (by patient id or name, study UID, modality, date) and list their series.

This is what a PACS browser shows, so patient id and name are read here; they are displayed, never exported
(a DICOM export writes only pseudonyms, see :mod:`linop_core.dicom_export`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from linop_core.dicomweb.connection import DicomwebServer

STUDY_FIELDS = ("StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances")
SERIES_FIELDS = ("SeriesDescription", "SeriesNumber", "Modality", "NumberOfSeriesRelatedInstances")
DEFAULT_LIMIT = 100


@dataclass(frozen=True)
class StudyQuery:
    """QIDO-RS study filters; None matches anything. ``patient_name`` may use ``*`` and ``?`` wildcards;
    ``date`` is ``YYYYMMDD`` or a range ``YYYYMMDD-YYYYMMDD``."""

    patient_id: str | None = None
    patient_name: str | None = None
    study_uid: str | None = None
    modality: str | None = None
    date: str | None = None
    limit: int = DEFAULT_LIMIT

    def filters(self) -> dict[str, str]:
        pairs = {
            "PatientID": self.patient_id,
            "PatientName": self.patient_name,
            "StudyInstanceUID": self.study_uid,
            "ModalitiesInStudy": self.modality,
            "StudyDate": self.date,
        }
        return {key: value for key, value in pairs.items() if value}


@dataclass(frozen=True)
class SeriesSummary:
    series_uid: str
    modality: str
    number: int | None
    description: str
    n_instances: int | None


@dataclass(frozen=True)
class StudySummary:
    study_uid: str
    patient_id: str
    patient_name: str
    date: str
    description: str
    modalities: tuple[str, ...]
    n_series: int | None
    n_instances: int | None
    series: tuple[SeriesSummary, ...] = ()


def search_studies(server: DicomwebServer, query: StudyQuery, *, with_series: bool = True) -> list[StudySummary]:
    """Studies matching ``query`` (at most ``query.limit``), each with its series when ``with_series``."""
    with server.request("searching studies (QIDO-RS)"):
        found = server.client.search_for_studies(
            fields=list(STUDY_FIELDS), limit=query.limit, search_filters=query.filters()
        )
    studies = [_study(Dataset.from_json(item)) for item in found]
    if not with_series:
        return studies
    return [replace(study, series=tuple(search_series(server, study.study_uid))) for study in studies]


def search_series(server: DicomwebServer, study_uid: str) -> list[SeriesSummary]:
    with server.request(f"listing the series of study {study_uid} (QIDO-RS)"):
        found = server.client.search_for_series(study_instance_uid=study_uid, fields=list(SERIES_FIELDS))
    series = [_series(Dataset.from_json(item)) for item in found]
    return sorted(series, key=lambda s: (s.number is None, s.number or 0, s.series_uid))


def _study(ds: Dataset) -> StudySummary:
    modalities = ds.get("ModalitiesInStudy") or []
    return StudySummary(
        study_uid=str(ds.get("StudyInstanceUID", "")),
        patient_id=str(ds.get("PatientID", "")),
        patient_name=str(ds.get("PatientName", "")),
        date=str(ds.get("StudyDate", "")),
        description=str(ds.get("StudyDescription", "")),
        modalities=tuple(str(m) for m in (modalities if isinstance(modalities, MultiValue | list) else [modalities])),
        n_series=_int(ds.get("NumberOfStudyRelatedSeries")),
        n_instances=_int(ds.get("NumberOfStudyRelatedInstances")),
    )


def _series(ds: Dataset) -> SeriesSummary:
    return SeriesSummary(
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        modality=str(ds.get("Modality", "")),
        number=_int(ds.get("SeriesNumber")),
        description=str(ds.get("SeriesDescription", "")),
        n_instances=_int(ds.get("NumberOfSeriesRelatedInstances")),
    )


def _int(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None
