"""The PACS browser's state and jobs, without Qt: which DICOMweb server, with which credentials, the search form,
the studies found, the selected study, what is running and the one line the user should read.

:class:`PacsBrowser` is observed by :class:`linop_gui.pacs_dialog.PacsDialog` (typed callback lists, as the
workspace); its rules (what a search may ask, what may be retrieved while something runs, where the cache is)
are tested without a screen. The job functions run on a worker thread and call the core
(:mod:`linop_core.dicomweb`): QIDO-RS search, WADO-RS retrieval into the local cache.

Credentials are never typed into the app or saved: they come from the environment the app was started in
(``LINOP_DICOMWEB_TOKEN``, or ``LINOP_DICOMWEB_USER`` + ``LINOP_DICOMWEB_PASSWORD``); the browser says which is
in use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from linop_core.dicomweb import (
    PASSWORD_ENV,
    TOKEN_ENV,
    USER_ENV,
    DicomwebAuth,
    DicomwebServer,
    RetrievedStudy,
    SeriesSummary,
    StudyQuery,
    StudySummary,
    default_cache_dir,
    retrieve_study,
    search_series,
    search_studies,
)
from linop_core.errors import LinopError
from linop_gui.workspace import MessageLevel, Observers

if TYPE_CHECKING:  # the jobs run in linop_gui.worker's threads; this module stays free of Qt
    from linop_gui.worker import JobContext

# QIDO date matching (PS3.18 8.3.4.1): one date, or a range with either end open
_DATE = re.compile(r"^(\d{8})?(-)?(\d{8})?$")
MODALITIES = ("", "MG", "DX", "CR", "CT", "MR", "US", "OT")  # "" = any


class PacsActivity(StrEnum):
    """What the browser is doing; one thing at a time."""

    IDLE = "idle"
    SEARCHING = "searching"
    RETRIEVING = "retrieving"


@dataclass(frozen=True)
class PacsSearch:
    """The search form as typed; :meth:`query` checks it and turns it into the core's QIDO filters."""

    patient_id: str = ""
    patient_name: str = ""  # * and ? are wildcards
    modality: str = ""
    date: str = ""  # YYYYMMDD, YYYYMMDD-YYYYMMDD, -YYYYMMDD or YYYYMMDD-
    study_uid: str = ""

    def query(self) -> StudyQuery:
        date = self.date.strip().replace(" ", "")
        if date and (not _DATE.match(date) or date == "-" or (date.count("-") == 0 and len(date) != 8)):
            raise LinopError(f"study date {self.date!r}: write YYYYMMDD, or a range YYYYMMDD-YYYYMMDD "
                             "(either end may be left open)")  # fmt: skip
        uid = self.study_uid.strip()
        if uid and not re.match(r"^[0-9]+(\.[0-9]+)*$", uid):
            raise LinopError(f"study UID {uid!r} is not a DICOM UID (digits and dots); paste the Study Instance "
                             "UID, or leave the field empty")  # fmt: skip
        return StudyQuery(
            patient_id=self.patient_id.strip() or None,
            patient_name=self.patient_name.strip() or None,
            study_uid=uid or None,
            modality=self.modality.strip().upper() or None,
            date=date or None,
        )


@dataclass(frozen=True)
class SearchRequest:
    server: DicomwebServer
    query: StudyQuery


@dataclass(frozen=True)
class RetrieveRequest:
    server: DicomwebServer
    study: StudySummary
    cache: Path


def credentials_text(auth: DicomwebAuth) -> str:
    """Which credentials the environment gives, and how to give others (never the secret itself)."""
    if auth.token or auth.user:
        return f"Credentials from the environment (read when LINOP Studio started): {auth.describe()}"
    return (f"Credentials: none (anonymous). For a server that needs them, start LINOP Studio with {TOKEN_ENV} "
            f"set, or {USER_ENV} and {PASSWORD_ENV}")  # fmt: skip


class PacsBrowser:
    """State of the PACS browser (see the module docstring). Observers:

    - ``changed()``: the URL, the studies, the selection, the activity or the message changed;
    - ``series_listed(study_uid, series)``: the series of a study arrived;
    - ``retrieved(study)``: a study is in the cache and should be opened.
    """

    def __init__(self, cache_root: Path, environ: Mapping[str, str], url: str = "") -> None:
        self.cache_root = Path(cache_root)
        self.auth = DicomwebAuth.from_env(environ)
        self.url = url.strip()
        self.studies: tuple[StudySummary, ...] = ()
        self.series: dict[str, tuple[SeriesSummary, ...]] = {}
        self.selected: StudySummary | None = None
        self.activity = PacsActivity.IDLE
        self.message = ""
        self.level = MessageLevel.INFO
        self.last_query: StudyQuery | None = None
        self.changed: Observers[[]] = Observers()
        self.series_listed: Observers[[str, tuple[SeriesSummary, ...]]] = Observers()
        self.retrieved: Observers[[RetrievedStudy]] = Observers()

    # -- the server ------------------------------------------------------------------------------------------
    def server(self) -> DicomwebServer:
        """The server of the URL in use; a URL that is not one raises a one-line :class:`LinopError`."""
        if not self.url:
            raise LinopError("type the DICOMweb root of the PACS, e.g. http://localhost:8042/dicom-web")
        return DicomwebServer(self.url, self.auth)

    def cache_folder(self) -> Path | None:
        """Where this server's studies are cached (``<cache root>/<host_port_path>``); None without a valid URL."""
        try:
            return default_cache_dir(self.server(), self.cache_root)
        except LinopError:
            return None

    def set_url(self, url: str) -> None:
        url = url.strip()
        if url != self.url:
            self.url = url
            self.studies, self.series, self.selected, self.last_query = (), {}, None, None
            self._say("")

    @property
    def credentials(self) -> str:
        return credentials_text(self.auth)

    @property
    def busy(self) -> bool:
        return self.activity is not PacsActivity.IDLE

    # -- search ----------------------------------------------------------------------------------------------
    def begin_search(self, form: PacsSearch) -> SearchRequest | None:
        """The search to run for ``form``, or None (and the reason as the message) when it cannot run."""
        if self.busy:
            self._say(f"Still {self.activity}: wait, or cancel it first", MessageLevel.WARNING)
            return None
        try:
            request = SearchRequest(self.server(), form.query())
        except LinopError as exc:
            self._say(str(exc), MessageLevel.ERROR)
            return None
        self.activity = PacsActivity.SEARCHING
        self._say(f"Searching {self.url}…")
        return request

    def search_done(self, query: StudyQuery, studies: list[StudySummary]) -> None:
        self.activity = PacsActivity.IDLE
        self.last_query = query
        self.studies = tuple(studies)
        self.series = {}
        self.selected = None
        more = " (the server's limit: narrow the search to see the others)" if len(studies) >= query.limit else ""
        self._say(f"{len(studies)} stud{'y' if len(studies) == 1 else 'ies'} found{more}")

    def select(self, study_uid: str | None) -> StudySummary | None:
        """Selects a study of the results (None: nothing); returns it."""
        found = next((s for s in self.studies if s.study_uid == study_uid), None)
        if found != self.selected:
            self.selected = found
            self.changed.notify()
        return found

    def series_done(self, study_uid: str, series: list[SeriesSummary]) -> None:
        self.series[study_uid] = tuple(series)
        self.series_listed.notify(study_uid, tuple(series))

    # -- retrieve --------------------------------------------------------------------------------------------
    def begin_retrieve(self) -> RetrieveRequest | None:
        """The retrieval of the selected study, or None (and the reason as the message)."""
        if self.busy:
            self._say(f"Still {self.activity}: wait, or cancel it first", MessageLevel.WARNING)
            return None
        if self.selected is None:
            self._say("Select a study in the results first", MessageLevel.WARNING)
            return None
        try:
            server = self.server()
        except LinopError as exc:
            self._say(str(exc), MessageLevel.ERROR)
            return None
        self.activity = PacsActivity.RETRIEVING
        self._say(f"Retrieving study {self.selected.study_uid} from {self.url}…")
        return RetrieveRequest(server, self.selected, default_cache_dir(server, self.cache_root))

    def retrieve_done(self, result: RetrievedStudy) -> None:
        self.activity = PacsActivity.IDLE
        skipped = f"; {result.n_not_images} non-image instance(s) skipped" if result.n_not_images else ""
        self._say(f"Retrieved {len(result.files)} image(s) ({result.n_downloaded} downloaded, {result.n_cached} "
                  f"already in the cache{skipped}) into {result.folder} and opened it")  # fmt: skip
        self.retrieved.notify(result)

    # -- the end of a job that did not finish ----------------------------------------------------------------
    def failed(self, message: str) -> None:
        self.activity = PacsActivity.IDLE
        self._say(message, MessageLevel.ERROR)

    def cancelled(self) -> None:
        what = self.activity
        self.activity = PacsActivity.IDLE
        if what is PacsActivity.RETRIEVING:
            self._say("Retrieval cancelled; the images fetched so far stay in the cache and are not fetched again",
                      MessageLevel.WARNING)
        else:
            self._say("Search cancelled", MessageLevel.WARNING)

    def _say(self, text: str, level: MessageLevel = MessageLevel.INFO) -> None:
        self.message, self.level = text, level
        self.changed.notify()


# ----------------------------------------------------------------------------------------------- jobs (worker thread)


def search_job(ctx: JobContext, request: SearchRequest) -> tuple[StudyQuery, list[StudySummary]]:
    """QIDO-RS study search; the series come later, for the selected study only (one request per study)."""
    studies = search_studies(request.server, request.query, with_series=False)
    ctx.check()
    return request.query, studies


def series_job(ctx: JobContext, server: DicomwebServer, study_uid: str) -> tuple[str, list[SeriesSummary]]:
    return study_uid, search_series(server, study_uid)


def retrieve_job(ctx: JobContext, request: RetrieveRequest) -> RetrievedStudy:
    """WADO-RS retrieval into the cache; ``ctx.progress`` reports each instance and is the cancellation point
    (the files fetched before a cancel stay in the cache)."""
    ctx.progress(0, max(request.study.n_instances or 0, 1))
    return retrieve_study(request.server, request.study.study_uid, request.cache, progress=ctx.progress)


__all__ = [
    "MODALITIES",
    "PacsActivity",
    "PacsBrowser",
    "PacsSearch",
    "RetrieveRequest",
    "SearchRequest",
    "credentials_text",
    "retrieve_job",
    "search_job",
    "series_job",
]
