"""DICOMweb client over ``dicomweb-client``: QIDO-RS search, WADO-RS retrieve, STOW-RS store.

Every failure becomes a :class:`medzsad.errors.PacsError` naming the endpoint and the study:
connection refused (server down), timeout (slow server), HTTP 4xx/5xx, and an instance whose
StudyInstanceUID or SOPInstanceUID is not the one asked for. Retries are ours
(:func:`medzsad.pacs.client.with_retries`), so the library's own retrying is switched off.
Wrong credentials (HTTP 401/403) and an HTML answer (an SSO login page, a web portal: no DICOMweb
server at that URL) are a :class:`medzsad.errors.PacsRefusedError`, never retried.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from urllib3.exceptions import NewConnectionError

from medzsad.config.pacs import DicomWebEndpoint
from medzsad.errors import (
    ConfigError,
    PacsError,
    PacsRefusedError,
    PacsSendError,
    PacsSendRefusedError,
    PacsUnreachableError,
)
from medzsad.pacs.auth import display_url, http_session
from medzsad.pacs.client import InstanceRef

__all__ = ["DicomWebClient"]

_STUDY, _SERIES, _SOP, _SOP_CLASS = "0020000D", "0020000E", "00080018", "00080016"


class _HtmlAnswer(Exception):
    """A response that is a web page, not DICOM or DICOM JSON (raised by the session's hook)."""


def _refuse_html(response: requests.Response, *args: object, **kwargs: object) -> None:
    """Response hook: a successful answer in HTML means the URL is no DICOMweb service."""
    kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if response.ok and kind in ("text/html", "application/xhtml+xml"):
        raise _HtmlAnswer(kind)


def _connect_url(url: str) -> str:
    """The URL to send requests to: as given, but scheme in lower case and no repeated or final slash."""
    parts = urlsplit(url.strip())
    path = re.sub(r"/{2,}", "/", parts.path).rstrip("/")
    return urlunsplit((parts.scheme.lower(), parts.netloc, path, parts.query, ""))


def _value(item: dict[str, Any], tag: str) -> str:
    values = item.get(tag, {}).get("Value", [])
    return str(values[0]) if values else ""


def _pages(search: Callable[[int, int], list[dict[str, Any]]], limit: int = 1000) -> list[dict[str, Any]]:
    """All results of a QIDO-RS search, page by page.

    Stops at a short page, or when a page repeats the previous one (servers that ignore ``offset``;
    ``dicomweb-client``'s own ``get_remaining`` loops forever on those).
    """
    found: list[dict[str, Any]] = []
    offset = 0
    previous: list[dict[str, Any]] = []
    while True:
        page = search(limit, offset)
        if not page or page == previous:
            return found
        found += page
        previous = page
        if len(page) < limit:
            return found
        offset += len(page)


class DicomWebClient:
    """A DICOMweb server.

    Args:
        endpoint: URL, authentication (from the environment), CA bundle and timeout.
    """

    def __init__(self, endpoint: DicomWebEndpoint) -> None:
        self.endpoint = display_url(endpoint.url)
        self._timeout = endpoint.timeout_s
        session = http_session(endpoint)
        session.hooks["response"].append(_refuse_html)
        try:
            self._client = DICOMwebClient(
                _connect_url(endpoint.url), session=session, timeout=endpoint.timeout_s
            )
        except ValueError as e:
            raise ConfigError(f"DICOMweb URL {self.endpoint!r}: {e}; give e.g. https://pacs/dicom-web") from e
        self._client.set_http_retry_params(retry=False)

    @contextlib.contextmanager
    def _errors(self, doing: str, study_uid: str = "", send: bool = False) -> Iterator[None]:
        try:
            yield
        except (
            _HtmlAnswer,
            requests.exceptions.RequestException,
            ValueError,
            KeyError,
            pydicom.errors.InvalidDicomError,
        ) as e:
            raise self._typed(e, doing, study_uid, send) from e

    def _typed(self, e: Exception, doing: str, study_uid: str, send: bool) -> PacsError:
        """The typed error for a failed request (send: an output error too)."""
        kind = PacsSendError if send else PacsError
        refused = PacsSendRefusedError if send else PacsRefusedError
        where = self.endpoint + (f", study {study_uid}" if study_uid else "") + f": {doing}"
        ids = {"endpoint": self.endpoint, "study_uid": study_uid}
        if isinstance(e, requests.exceptions.Timeout):
            why = f"no answer within {self._timeout:g} s; the server is slow or down"
            return kind(f"{where}: {why} (raise timeout_s or retry later)", **ids)
        if isinstance(e, requests.exceptions.ConnectionError):
            cause = getattr(e.args[0] if e.args else None, "reason", None)
            if isinstance(cause, NewConnectionError) and not send:
                return PacsUnreachableError(
                    f"{where}: cannot connect ({type(cause).__name__}: nothing answers there); is the server "
                    "up and the URL right?",
                    **ids,
                )
            return kind(
                f"{where}: cannot connect ({type(e).__name__}); is the server up and the URL right?", **ids
            )
        if isinstance(e, _HtmlAnswer):
            return refused(
                f"{where}: the server answered with a web page ({e}), not DICOM: this URL is not a DICOMweb "
                "server (an SSO login page or a web portal?); give the DICOMweb root, e.g. "
                "https://pacs/dicom-web, and its credentials",
                side="server",
                **ids,
            )
        if isinstance(e, requests.exceptions.HTTPError):
            status = e.response.status_code if e.response is not None else "?"
            reason = e.response.reason if e.response is not None else ""
            if status in (401, 403):
                return refused(
                    f"{where}: HTTP {status} {reason}: the server refused us; check the credentials (user "
                    "name, password or token variable); not retried, so the account is not locked",
                    side="credentials",
                    **ids,
                )
            return kind(f"{where}: HTTP {status} {reason}".rstrip(), **ids)
        return kind(f"{where}: {e}", **ids)

    def find_studies(self, query: dict[str, str]) -> list[str]:
        """StudyInstanceUIDs matching a QIDO-RS study-level query (all pages)."""
        with self._errors("QIDO-RS study search"):
            found = _pages(
                lambda limit, offset: self._client.search_for_studies(
                    search_filters=dict(query), limit=limit, offset=offset
                )
            )
        return sorted({_value(s, _STUDY) for s in found if _value(s, _STUDY)})

    def list_instances(self, study_uid: str) -> list[InstanceRef]:
        """The instances of a study (QIDO-RS instance search)."""
        with self._errors("QIDO-RS instance search", study_uid):
            found = _pages(
                lambda limit, offset: self._client.search_for_instances(
                    study_instance_uid=study_uid, fields=[_SOP_CLASS], limit=limit, offset=offset
                )
            )
        refs = [
            InstanceRef(
                _value(i, _STUDY) or study_uid, _value(i, _SERIES), _value(i, _SOP), _value(i, _SOP_CLASS)
            )
            for i in found
        ]
        other = {r.study_uid for r in refs} - {study_uid}
        if other:
            raise PacsError(
                f"{self.endpoint}: asked for the instances of study {study_uid}, "
                f"got study {sorted(other)[0]}",
                endpoint=self.endpoint,
                study_uid=study_uid,
            )
        return refs

    def retrieve(
        self,
        refs: Sequence[InstanceRef],
        sink: Callable[[pydicom.Dataset], None],
        *,
        whole_study: bool = False,
    ) -> None:
        """WADO-RS each instance (stored transfer syntax) and hand it to ``sink`` (``whole_study`` unused)."""
        for ref in refs:
            with self._errors(f"WADO-RS instance {ref.sop_uid}", ref.study_uid):
                ds = self._client.retrieve_instance(
                    ref.study_uid, ref.series_uid, ref.sop_uid, media_types=(("application/dicom", "*"),)
                )
            sink(ds)

    def store(self, files: Iterable[Path]) -> None:
        """STOW-RS the files in one request; any Failed SOP Sequence item fails the whole send."""
        datasets = [pydicom.dcmread(f) for f in files]
        if not datasets:
            return
        study_uid = str(datasets[0].StudyInstanceUID)
        with self._errors("STOW-RS", study_uid, send=True):
            answer = self._client.store_instances(datasets)
        failed = getattr(answer, "FailedSOPSequence", None) or []
        if failed:
            reasons = sorted({str(getattr(f, "FailureReason", "?")) for f in failed})
            raise PacsSendError(
                f"{self.endpoint}, study {study_uid}: STOW-RS refused {len(failed)} of {len(datasets)} "
                f"instance(s) (failure reason {', '.join(reasons)})",
                endpoint=self.endpoint,
                study_uid=study_uid,
            )
