"""Pull studies from a PACS into a local folder: resumable, bounded in parallelism.

Layout: ``<dest>/<StudyInstanceUID>/<SOPInstanceUID>.dcm``, each file written atomically. A study
whose pull stopped half-way (server down, timeout) keeps the instances it has; the next pull asks
the PACS for the study's instance list and fetches only the missing ones. A study is complete when
``.medzsad-pull.json`` is written; a complete study is not asked for again (delete its folder to
refresh it). The folders are then read by the normal discovery (:mod:`medzsad.io.discovery`).

A dry run (``dry_run=True``, or inside :func:`query_only`) only asks: the study search and each
study's instance list, nothing retrieved and nothing written. A refusal (wrong credentials, an
unknown AE title, no DICOMweb server: :class:`~medzsad.errors.PacsRefusedError`) stops the whole
pull at once: the first study is asked for alone, and no other study is tried after a refusal,
so that a wrong password costs one failed login, not one per study and retry.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pydicom

from medzsad.config.pacs import DicomWebInput, DimseInput
from medzsad.errors import PacsError, PacsRefusedError, PacsUnreachableError
from medzsad.fileio import write_bytes, write_json
from medzsad.io.discovery import PULL_RECORD
from medzsad.pacs.client import InstanceRef, PacsClient, for_log, with_retries
from medzsad.pacs.connect import open_client

__all__ = ["PulledStudy", "PullReport", "pull_studies", "pulled_before", "query_only", "COMPLETE_MARK"]

log = logging.getLogger(__name__)

COMPLETE_MARK = PULL_RECORD
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_QUERY_ONLY: ContextVar[bool] = ContextVar("medzsad_pacs_query_only", default=False)


@contextmanager
def query_only(on: bool = True) -> Iterator[None]:
    """Inside the block :func:`pull_studies` only asks (a dry run): nothing retrieved or written.

    ``medzsad run --dry-run`` on a cohort with PACS inputs lists the studies through this.
    """
    token = _QUERY_ONLY.set(on)
    try:
        yield
    finally:
        _QUERY_ONLY.reset(token)


@dataclass(frozen=True)
class PulledStudy:
    """One study's pull.

    Attributes:
        study_uid: StudyInstanceUID.
        folder: Its local folder.
        n_instances: Instances the PACS lists for it (0 when that list could not be had).
        n_fetched: Instances fetched by this pull (the rest were there already).
        error: One-line error when the pull failed (the folder may hold part of the study).
        n_present: Instances of the list already in the folder before this pull.
        unreachable: The endpoint could not be reached for this study: the pull stopped here.
    """

    study_uid: str
    folder: Path
    n_instances: int
    n_fetched: int
    error: str = ""
    n_present: int = 0
    unreachable: bool = False

    @property
    def ok(self) -> bool:
        """The study is complete in its folder."""
        return not self.error


@dataclass(frozen=True)
class PullReport:
    """Result of :func:`pull_studies`: the endpoint (no credentials) and one entry per study.

    Attributes:
        endpoint: The endpoint's identity (:func:`medzsad.pacs.auth.display_url`).
        dest: The local folder.
        studies: One entry per study, in query order.
        dry_run: Nothing was retrieved: the entries say what a pull would fetch.
        offline: Why the PACS was not asked (its study query failed: it is down); ``studies`` are
            then the ones an earlier pull completed in ``dest`` from this endpoint. ``""`` normally.
    """

    endpoint: str
    dest: Path
    studies: tuple[PulledStudy, ...]
    dry_run: bool = False
    offline: str = ""

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


def _present(folder: Path) -> set[str]:
    """SOP Instance UIDs of the instances already in a study folder (none if it does not exist)."""
    return {p.name[: -len(".dcm")] for p in folder.glob("*.dcm")}


def _list_instances(client: PacsClient, study_uid: str, retries: int) -> list[InstanceRef]:
    """The study's instances on the PACS, retried on transient failures."""
    return with_retries(
        lambda: client.list_instances(study_uid),
        retries=retries,
        backoff_s=1.0,
        what=f"listing a study on {client.endpoint}",
    )


class _StudyPull:
    """Fetch the missing instances of one study into its folder."""

    def __init__(
        self, client: PacsClient, study_uid: str, folder: Path, on_instance: Callable[[Path], None] | None
    ):
        self.client, self.study_uid, self.folder, self.on_instance = client, study_uid, folder, on_instance
        self.expected: dict[str, InstanceRef] = {}
        self.fetched = 0

    def present(self) -> set[str]:
        return _present(self.folder)

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
        return PulledStudy(study_uid, folder, len(_present(folder)), 0)
    job = _StudyPull(client, study_uid, folder, on_instance)
    n_present = 0
    try:
        _check_uid(study_uid, "StudyInstanceUID", client.endpoint, study_uid)
        folder.mkdir(parents=True, exist_ok=True)
        refs = _list_instances(client, study_uid, retries)
        if not refs:
            raise PacsError(
                f"{client.endpoint}: study {study_uid} has no instances there",
                endpoint=client.endpoint,
                study_uid=study_uid,
            )
        job.expected = {_check_uid(r.sop_uid, "SOPInstanceUID", client.endpoint, study_uid): r for r in refs}
        n_present = len(set(job.expected) & job.present())
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
    except PacsRefusedError:
        raise
    except PacsError as e:
        log.warning("pull from %s failed: %s", client.endpoint, for_log(e))
        error = " ".join(str(e).split())
        down = isinstance(e, PacsUnreachableError)
        return PulledStudy(study_uid, folder, len(job.expected), job.fetched, error, n_present, down)
    log.info(
        "pulled a study from %s: %d instances, %d fetched now",
        client.endpoint,
        len(job.expected),
        job.fetched,
    )
    return PulledStudy(study_uid, folder, len(job.expected), job.fetched, n_present=n_present)


def _plan_one(client: PacsClient, study_uid: str, dest: Path, retries: int) -> PulledStudy:
    """What a pull of one study would fetch (a dry run): its instance list against the folder."""
    folder = dest / study_uid
    present = _present(folder)
    if (folder / COMPLETE_MARK).is_file():
        return PulledStudy(study_uid, folder, len(present), 0, n_present=len(present))
    try:
        _check_uid(study_uid, "StudyInstanceUID", client.endpoint, study_uid)
        refs = _list_instances(client, study_uid, retries)
    except PacsRefusedError:
        raise
    except PacsError as e:
        down = isinstance(e, PacsUnreachableError)
        return PulledStudy(study_uid, folder, 0, 0, " ".join(str(e).split()), unreachable=down)
    here = sum(r.sop_uid in present for r in refs)
    return PulledStudy(study_uid, folder, len(refs), 0, n_present=here)


def _each_study(
    uids: list[str], one: Callable[[str], PulledStudy], parallel: int, dest: Path
) -> list[PulledStudy]:
    """``one`` for every study: the first alone, the rest ``parallel`` at a time, none after a halt.

    A refusal (:class:`PacsRefusedError`) or an endpoint that cannot be reached
    (:class:`PulledStudy.unreachable`) halts the pull: studies not started by then are not tried
    and fail with a note. A refusal is raised.

    Raises:
        PacsRefusedError: The PACS refused a request.
    """
    refused: list[PacsRefusedError] = []
    stop = threading.Event()

    def guarded(uid: str) -> PulledStudy | None:
        if stop.is_set():
            return None
        try:
            result = one(uid)
        except PacsRefusedError as e:
            stop.set()
            refused.append(e)
            return None
        if result.unreachable:
            stop.set()
        return result

    done = [guarded(uids[0])] if uids else []  # a refusal here costs one request, not one per study
    if len(uids) > 1 and not stop.is_set():
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            done += list(pool.map(guarded, uids[1:]))
    if refused:
        raise refused[0]
    done += [None] * (len(uids) - len(done))
    note = "not tried: the pull stopped when the PACS could not be reached"
    return [
        r if r is not None else PulledStudy(uid, dest / uid, 0, 0, note)
        for uid, r in zip(uids, done, strict=True)
    ]


def pulled_before(dest: str | Path, endpoint: str) -> tuple[PulledStudy, ...]:
    """The studies an earlier pull completed in ``dest`` from ``endpoint`` (read offline).

    A study counts when its folder holds the completion mark naming this endpoint's identity.
    """
    found = []
    for mark in sorted(Path(dest).glob(f"*/{COMPLETE_MARK}")):
        try:
            info = json.loads(mark.read_text())
        except (OSError, ValueError):
            continue  # not ours, or damaged: never guessed from
        if (
            isinstance(info, dict)
            and info.get("endpoint") == endpoint
            and info.get("study_uid") == mark.parent.name
        ):
            found.append(PulledStudy(mark.parent.name, mark.parent, len(_present(mark.parent)), 0))
    return tuple(found)


def _partial(dest: Path, why: str) -> tuple[PulledStudy, ...]:
    """Study folders a pull left incomplete, as failed studies (the PACS cannot finish them now)."""
    folders = sorted(d for d in dest.iterdir() if d.is_dir() and _UID.match(d.name))
    note = f"not completely pulled before, and the PACS cannot be asked now: {why}"
    return tuple(PulledStudy(d.name, d, 0, 0, note) for d in folders if not (d / COMPLETE_MARK).is_file())


def _study_uids(source: DicomWebInput | DimseInput, pacs: PacsClient) -> list[str]:
    """The studies to pull: the UID list, or what the study query matches (asked of the PACS)."""
    if source.studies:
        return list(dict.fromkeys(source.studies))
    uids = with_retries(
        lambda: pacs.find_studies(dict(source.query)),
        retries=source.retries,
        backoff_s=1.0,
        what=f"searching {pacs.endpoint}",
    )
    log.info("%s: the query matched %d studies", pacs.endpoint, len(uids))
    return uids


def pull_studies(
    source: DicomWebInput | DimseInput,
    dest: str | Path,
    *,
    client: PacsClient | None = None,
    on_instance: Callable[[Path], None] | None = None,
    dry_run: bool | None = None,
    reuse_when_down: bool = False,
) -> PullReport:
    """Fetch the studies ``source`` names (UID list or query) into ``dest``.

    Args:
        source: Endpoint and selection (``studies`` or ``query``), parallelism and retries.
        dest: Folder receiving one sub-folder per StudyInstanceUID (created).
        client: Client to use instead of one built from ``source`` (tests).
        on_instance: Called with each file as it is written (progress, tests).
        dry_run: Only ask what would be fetched; nothing is retrieved or written (default: inside
            :func:`query_only`).
        reuse_when_down: When the study query fails (the PACS is down, slow or failing; not a
            refusal), report the studies an earlier pull completed in ``dest`` from this endpoint
            (:func:`pulled_before`, :attr:`PullReport.offline` says why) instead of raising, if
            there are any. A cohort's rerun uses it: finished studies need no PACS.

    Returns:
        One :class:`PulledStudy` per study; failed studies carry their error and are not raised.

    Raises:
        PacsError: The study query itself failed (nothing is known to pull).
        PacsRefusedError: The PACS refused us (credentials, AE title, not DICOMweb): the pull stops.
        ConfigError: An environment variable named by ``auth`` is not set.
    """
    dry = _QUERY_ONLY.get() if dry_run is None else dry_run
    out = Path(dest)
    if not dry:
        out.mkdir(parents=True, exist_ok=True)
    pacs = client if client is not None else open_client(source)
    try:
        uids = _study_uids(source, pacs)
    except PacsRefusedError:
        raise
    except PacsError as e:
        before = pulled_before(out, pacs.endpoint) if reuse_when_down else ()
        if not before:
            raise
        why = " ".join(str(e).split())
        return PullReport(pacs.endpoint, out, before + _partial(out, why), dry, offline=why)
    if dry:
        results = _each_study(
            uids, lambda uid: _plan_one(pacs, uid, out, source.retries), source.parallel, out
        )
    else:
        results = _each_study(
            uids, lambda uid: _pull_one(pacs, uid, out, source.retries, on_instance), source.parallel, out
        )
    return PullReport(pacs.endpoint, out, tuple(results), dry)
