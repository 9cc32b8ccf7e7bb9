"""PACS access over DICOMweb: QIDO-RS search, WADO-RS retrieval into a local cache, STOW-RS store.

Front doors build a :class:`DicomwebServer` (credentials: ``DicomwebAuth.from_env(os.environ)``), then call
:func:`search_studies`, :func:`retrieve_study` and :func:`store_files`. Every failure is a
:class:`DicomwebError` with one line naming the URL and the fix.
"""

from linop_core.dicomweb.browse import SeriesSummary, StudyQuery, StudySummary, search_series, search_studies
from linop_core.dicomweb.cache import RetrievedStudy, default_cache_dir, retrieve_study
from linop_core.dicomweb.connection import (
    PASSWORD_ENV,
    TOKEN_ENV,
    USER_ENV,
    DicomwebAuth,
    DicomwebError,
    DicomwebServer,
)
from linop_core.dicomweb.stow import StowResult, store_files

__all__ = [
    "PASSWORD_ENV",
    "TOKEN_ENV",
    "USER_ENV",
    "DicomwebAuth",
    "DicomwebError",
    "DicomwebServer",
    "RetrievedStudy",
    "SeriesSummary",
    "StowResult",
    "StudyQuery",
    "StudySummary",
    "default_cache_dir",
    "retrieve_study",
    "search_series",
    "search_studies",
    "store_files",
]
