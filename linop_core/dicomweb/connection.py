"""A DICOMweb server (QIDO-RS, WADO-RS, STOW-RS) through ``dicomweb-client``, with credentials from the
environment and every failure turned into one line that names the URL and the fix.

Credentials never live in a file of the repository: a bearer token in ``LINOP_DICOMWEB_TOKEN``, or basic
auth in ``LINOP_DICOMWEB_USER`` and ``LINOP_DICOMWEB_PASSWORD`` (the front doors read the environment and pass
a :class:`DicomwebAuth` in).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from dicomweb_client.api import DICOMwebClient

from linop_core.errors import LinopError

TOKEN_ENV = "LINOP_DICOMWEB_TOKEN"
USER_ENV = "LINOP_DICOMWEB_USER"
PASSWORD_ENV = "LINOP_DICOMWEB_PASSWORD"
DEFAULT_TIMEOUT_S = 30.0
RETRY_ATTEMPTS = 3  # waits 0.5 s, then 1 s between them
RETRY_WAIT_MS = 250
EXAMPLE_URL = "http://localhost:8042/dicom-web"


class DicomwebError(LinopError):
    """A DICOMweb server cannot be reached, refuses us, or rejects what we send."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = " ".join(str(reason).split())
        super().__init__(f"{url}: {self.reason}")


@dataclass(frozen=True)
class DicomwebAuth:
    """How to authenticate: a bearer token, or a user and password (basic auth), or nothing."""

    token: str | None = field(default=None, repr=False)
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> DicomwebAuth:
        token = environ.get(TOKEN_ENV) or None
        user = environ.get(USER_ENV) or None
        return cls(token=token, user=user, password=environ.get(PASSWORD_ENV) if user else None)

    def describe(self) -> str:
        if self.token:
            return f"the bearer token in {TOKEN_ENV}"
        if self.user:
            return f"user {self.user!r} ({USER_ENV} / {PASSWORD_ENV})"
        return "anonymous access"


class _QidoSession(requests.Session):
    """Sends the QIDO wildcards ``*`` and ``?`` as themselves rather than percent-encoded.

    Both are legal in a URL query (RFC 3986 3.4), and servers that decode the query see no difference; but
    some do not decode it (Orthanc 1.10 with DICOMweb 1.7, Debian 12's), and there ``PatientName=DOE%2A``
    matches nothing while ``PatientName=DOE*`` matches.
    """

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if isinstance(url, str) and "?" in url:
            path, query = url.split("?", 1)
            url = f"{path}?{query.replace('%2A', '*').replace('%3F', '?')}"
        return super().request(method, url, *args, **kwargs)


class DicomwebServer:
    """One server root (e.g. ``http://localhost:8042/dicom-web``); use :meth:`request` around every call."""

    def __init__(self, url: str, auth: DicomwebAuth | None = None, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.auth = auth or DicomwebAuth()
        self.timeout_s = timeout_s
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DicomwebError(url, f"not an http(s) URL; give the server's DICOMweb root, e.g. {EXAMPLE_URL}")
        session = _QidoSession()
        if self.auth.token:
            session.headers["Authorization"] = f"Bearer {self.auth.token}"
        elif self.auth.user:
            session.auth = (self.auth.user, self.auth.password or "")
        try:
            self.client = DICOMwebClient(self.url, session=session, timeout=timeout_s)
        except ValueError as exc:
            raise DicomwebError(url, f"{exc}; give the DICOMweb root, e.g. {EXAMPLE_URL}") from exc
        # dicomweb-client retries every failed request (connection refused included) 5 times over ~30 s; a few
        # quick retries still ride out a busy server (429/503) without keeping a user waiting for a wrong URL
        self.client.set_http_retry_params(max_attempts=RETRY_ATTEMPTS, wait_exponential_multiplier=RETRY_WAIT_MS)

    @property
    def cache_key(self) -> str:
        """A folder name for this server's cache: host, port and path, filesystem-safe."""
        parts = urlsplit(self.url)
        text = f"{parts.hostname}_{parts.port or ''}{parts.path}"
        return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")

    @contextmanager
    def request(self, what: str) -> Iterator[None]:
        """Runs a client call; any network or HTTP failure becomes a :class:`DicomwebError` saying ``what`` failed."""
        try:
            yield
        except requests.exceptions.HTTPError as exc:
            raise self.http_error(exc.response, what) from exc
        except requests.exceptions.Timeout as exc:
            raise DicomwebError(
                self.url, f"no answer within {self.timeout_s:g} s while {what}; check that the server is up and not "
                "overloaded, and any proxy in between"
            ) from exc
        except requests.exceptions.ConnectionError as exc:
            raise DicomwebError(
                self.url, f"cannot connect while {what} ({_root_cause(exc)}); check the URL (host, port, "
                "http/https) and that the DICOMweb server is running and reachable from here"
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise DicomwebError(self.url, f"request failed while {what} ({exc}); check the URL") from exc

    def http_error(self, response: requests.Response | None, what: str) -> DicomwebError:
        status = response.status_code if response is not None else 0
        if status == 401:
            if self.auth.token or self.auth.user:
                fix = f"the server refused {self.auth.describe()}; check or renew it"
            else:
                fix = (f"the server needs credentials; set {TOKEN_ENV} to a bearer token, or {USER_ENV} and "
                       f"{PASSWORD_ENV} for basic auth")  # fmt: skip
            return DicomwebError(self.url, f"HTTP 401 Unauthorized while {what}: {fix}")
        if status == 403:
            return DicomwebError(
                self.url, f"HTTP 403 Forbidden while {what}: {self.auth.describe()} is not allowed to do this; ask "
                "the PACS administrator for the permission"
            )
        if status == 404:
            return DicomwebError(
                self.url, f"HTTP 404 Not Found while {what}; is this the DICOMweb root (Orthanc: {EXAMPLE_URL}) and "
                "is the UID right?"
            )
        reason = response.reason if response is not None else "no response"
        return DicomwebError(self.url, f"HTTP {status} {reason} while {what}; see the server's log")


def _root_cause(exc: BaseException) -> str:
    """The innermost reason of a requests error (e.g. "[Errno 111] Connection refused"), on one line."""
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    return match.group(0).strip() if match else text.split(":")[-1].strip(" )'\"") or type(exc).__name__
