"""Pull studies from a PACS into a local folder: resumable, bounded in parallelism.

Layout: ``<dest>/<StudyInstanceUID>/<SOPInstanceUID>.dcm``, each file written atomically. A study
whose pull stopped half-way (server down, timeout) keeps the instances it has; the next pull asks
the PACS for the study's instance list and fetches only the missing ones. A study is complete when
``.medzsad-pull.json`` is written; a complete study is not asked for again (delete its folder to
refresh it). The folders are then read by the normal discovery (:mod:`medzsad.io.discovery`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pydicom

from medzsad.config.pacs import DicomWebInput, DimseInput
from medzsad.errors import PacsError
from medzsad.fileio import write_bytes, write_json
from medzsad.pacs.client import InstanceRef, PacsClient, for_log, with_retries
from medzsad.pacs.connect import open_client

__all__ = ["PulledStudy", "PullReport", "pull_studies", "COMPLETE_MARK"]

log = logging.getLogger(__name__)

COMPLETE_MARK = ".medzsad-pull.json"
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


@dataclass(frozen=True)
class PulledStudy:
    """One study's pull.

    Attributes:
        study_uid: StudyInstanceUID.
        folder: Its local folder.
        n_instances: Instances the PACS lists for it (0 when that list could not be had).
        n_fetched: Instances fetched by this pull (the rest were there already).
        error: One-line error when the pull failed (the folder may hold part of the study).
    """

    study_uid: str
    folder: Path
    n_instances: int
    n_fetched: int
    error: str = ""

    @property
    def ok(self) -> bool:
        """The study is complete in its folder."""
        return not self.error


@dataclass(frozen=True)
class PullReport:
    """Result of :func:`pull_studies`: the endpoint (no credentials) and one entry per study."""

    endpoint: str
    dest: Path
    studies: tuple[PulledStudy, ...]

    @property
    def failed(self) -> tuple[PulledStudy, ...]:
        """Studies whose pull failed."""
        return tuple(s for s in self.studies if not s.ok)


def _check_uid(uid: str, what: str, endpoint: str, study_uid: str) -> str:
    if not _UID.match(uid) or len(uid) > 64:
        raise PacsError(
            f"{endpoint}: {what} {uid[:80]!r} is not a valid DICOM UID",
            endpoint=endpoint,
            study_uid=study_uid,
        )
    return uid


class _StudyPull:
    """Fetch the missing instances of one study into its folder."""

    def __init__(
        self, client: PacsClient, study_uid: str, folder: Path, on_instance: Callable[[Path], None] | None
    ):
        self.client, self.study_uid, self.folder, self.on_instance = client, study_uid, folder, on_instance
        self.expected: dict[str, InstanceRef] = {}
        self.fetched = 0

    def present(self) -> set[str]:
        return {p.name[: -len(".dcm")] for p in self.folder.glob("*.dcm")}

    def sink(self, ds: pydicom.Dataset) -> None:
        study, sop = str(ds.get("StudyInstanceUID", "")), str(ds.get("SOPInstanceUID", ""))
        if study != self.study_uid or sop not in self.expected:
            raise PacsError(
                f"{self.client.endpoint}: asked for study {self.study_uid}, received instance {sop[:64]} "
                f"of study {study[:64]}; the PACS answered with another study",
                endpoint=self.client.endpoint,
                study_uid=self.study_uid,
            )
        buf = BytesIO()
        try:
            ds.save_as(buf, enforce_file_format=True)
        except (ValueError, TypeError, AttributeError, KeyError) as e:
            raise PacsError(
                f"{self.client.endpoint}: study {self.study_uid}: instance {sop} cannot be stored as a DICOM "
                f"file ({e})",
                endpoint=self.client.endpoint,
                study_uid=self.study_uid,
            ) from e
        path = write_bytes(self.folder / f"{sop}.dcm", buf.getvalue())
        self.fetched += 1
        if self.on_instance is not None:
            self.on_instance(path)

    def fetch_missing(self) -> None:
        have = self.present()
        missing = [r for sop, r in sorted(self.expected.items()) if sop not in have]
        if missing:
            self.client.retrieve(missing, self.sink, whole_study=not have)


def _pull_one(
    client: PacsClient, study_uid: str, dest: Path, retries: int, on_instance: Callable[[Path], None] | None
) -> PulledStudy:
    folder = dest / study_uid
    if (folder / COMPLETE_MARK).is_file():
        n = sum(1 for _ in folder.glob("*.dcm"))
        return PulledStudy(study_uid, folder, n, 0)
    job = _StudyPull(client, study_uid, folder, on_instance)
    try:
        _check_uid(study_uid, "StudyInstanceUID", client.endpoint, study_uid)
        folder.mkdir(parents=True, exist_ok=True)
        refs = with_retries(
            lambda: client.list_instances(study_uid),
            retries=retries,
            backoff_s=1.0,
            what=f"listing a study on {client.endpoint}",
        )
        if not refs:
            raise PacsError(
                f"{client.endpoint}: study {study_uid} has no instances there",
                endpoint=client.endpoint,
                study_uid=study_uid,
            )
        job.expected = {_check_uid(r.sop_uid, "SOPInstanceUID", client.endpoint, study_uid): r for r in refs}
        with_retries(
            job.fetch_missing,
            retries=retries,
            backoff_s=1.0,
            what=f"retrieving a study from {client.endpoint}",
        )
        still = set(job.expected) - job.present()
        if still:
            raise PacsError(
                f"{client.endpoint}: study {study_uid}: {len(still)} of {len(refs)} "
                "instance(s) were not sent",
                endpoint=client.endpoint,
                study_uid=study_uid,
            )
        write_json(
            folder / COMPLETE_MARK,
            {"study_uid": study_uid, "endpoint": client.endpoint, "instances": len(refs)},
        )
    except PacsError as e:
        log.warning("pull from %s failed: %s", client.endpoint, for_log(e))
        return PulledStudy(study_uid, folder, len(job.expected), job.fetched, " ".join(str(e).split()))
    log.info(
        "pulled a study from %s: %d instances, %d fetched now",
        client.endpoint,
        len(job.expected),
        job.fetched,
    )
    return PulledStudy(study_uid, folder, len(job.expected), job.fetched)


def pull_studies(
    source: DicomWebInput | DimseInput,
    dest: str | Path,
    *,
    client: PacsClient | None = None,
    on_instance: Callable[[Path], None] | None = None,
) -> PullReport:
    """Fetch the studies ``source`` names (UID list or query) into ``dest``.

    Args:
        source: Endpoint and selection (``studies`` or ``query``), parallelism and retries.
        dest: Folder receiving one sub-folder per StudyInstanceUID (created).
        client: Client to use instead of one built from ``source`` (tests).
        on_instance: Called with each file as it is written (progress, tests).

    Returns:
        One :class:`PulledStudy` per study; failed studies carry their error and are not raised.

    Raises:
        PacsError: The study query itself failed (nothing is known to pull).
        ConfigError: An environment variable named by ``auth`` is not set.
    """
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    pacs = client if client is not None else open_client(source)
    if source.studies:
        uids = list(dict.fromkeys(source.studies))
    else:
        uids = with_retries(
            lambda: pacs.find_studies(dict(source.query)),
            retries=source.retries,
            backoff_s=1.0,
            what=f"searching {pacs.endpoint}",
        )
        log.info("%s: the query matched %d studies", pacs.endpoint, len(uids))
    with ThreadPoolExecutor(max_workers=source.parallel) as pool:
        results = list(pool.map(lambda uid: _pull_one(pacs, uid, out, source.retries, on_instance), uids))
    return PullReport(pacs.endpoint, out, tuple(results))
