"""Send a run's DICOM outputs (SEG, Parametric Map, SR) to a PACS, once.

Objects are sent study by study (SEG first: the SR references it), retried with exponential
backoff, and recorded in the run ledger (:mod:`medzsad.cohort.push_records`): a rerun or a second
``medzsad push`` sends only what was not sent yet. A study that still fails is recorded in the
ledger and in ``errors.csv`` (stage ``push``); its local files are never touched.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom

from medzsad.cohort.ledger import LEDGER_FILE, Ledger, StudyState
from medzsad.cohort.push_records import PushFailure, SentRecords
from medzsad.cohort.tables import replace_push_errors
from medzsad.config import CohortConfig
from medzsad.config.pacs import PushConfig
from medzsad.errors import ConfigError, OutputError, PacsError, PacsRefusedError, PacsSendError
from medzsad.fileio import sha256_file
from medzsad.pacs.client import PacsClient, for_log, with_retries
from medzsad.pacs.connect import open_client
from medzsad.report.review_outputs import PMAP_FILE, SEG_FILE
from medzsad.report.sr_writer import SR_FILE
from medzsad.study.types import StudyJob

__all__ = [
    "PushReport",
    "Pusher",
    "push_run",
    "study_pusher",
    "pushing_as_done",
    "push_remaining",
    "PUSH_FILES",
]

log = logging.getLogger(__name__)

#: ``--what`` name -> file in a study folder, in sending order.
PUSH_FILES: dict[str, Path] = {"seg": SEG_FILE, "pmap": PMAP_FILE, "sr": SR_FILE}


@dataclass(frozen=True)
class PushReport:
    """What a push did.

    Attributes:
        endpoint: Destination (no credentials).
        n_sent: Objects sent now.
        n_already: Objects skipped because they were sent before.
        failures: Studies not sent (after retries), with their errors.
    """

    endpoint: str
    n_sent: int
    n_already: int
    failures: tuple[PushFailure, ...]

    @property
    def ok(self) -> bool:
        """Every study's objects are in the PACS."""
        return not self.failures


class Pusher:
    """Sends study folders to one destination and records what was sent.

    Args:
        destination: Endpoint, objects to send, retries and backoff.
        records: The run's sent-object records.
        client: Client to use instead of one built from the destination (tests).
        sleep: Wait function between attempts (tests).
    """

    def __init__(
        self,
        destination: PushConfig,
        records: SentRecords,
        client: PacsClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        endpoint = destination.dicomweb if destination.dicomweb is not None else destination.dimse
        if client is None and endpoint is None:
            raise ConfigError("output.push: give a destination, dicomweb: {url: ...} or dimse: {host: ...}")
        self.client = client if client is not None else open_client(endpoint)  # type: ignore[arg-type]
        self.config, self.records, self.sleep = destination, records, sleep
        self.n_sent = self.n_already = 0
        #: Study ids this pusher tried (sent, already sent, or failed).
        self.attempted: set[str] = set()
        #: The refusal (credentials, AE title, not DICOMweb) that stopped this pusher: no study is
        #: sent after it, since it would be refused again (and lock the account).
        self.refused: PacsRefusedError | None = None

    @property
    def endpoint(self) -> str:
        """Destination as shown in messages and records."""
        return self.client.endpoint

    def push_study(self, study_id: str, study_dir: Path) -> bool:
        """Send what is not yet sent of one study; records a failure and returns False when it fails.

        After a refusal nothing more is sent: the study is recorded as not sent, naming the refusal.
        """
        self.attempted.add(study_id)
        if self.refused is not None:
            self._failed(study_id, f"not sent: {' '.join(str(self.refused).split())}", 0)
            return False
        todo: list[tuple[str, Path, str, str]] = []
        for kind in ("seg", "pmap", "sr"):
            path = study_dir / PUSH_FILES[kind]
            if kind not in self.config.what or not path.is_file():
                continue
            sop = str(
                pydicom.dcmread(
                    path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]
                ).SOPInstanceUID
            )
            digest = sha256_file(path)
            if self.records.was_sent(sop, self.endpoint, digest):
                self.n_already += 1
            else:
                todo.append((kind, path, sop, digest))
        if not todo:
            return True
        try:
            with_retries(
                lambda: self.client.store([p for _, p, _, _ in todo]),
                retries=self.config.retries,
                backoff_s=self.config.backoff_s,
                what=f"sending a study to {self.endpoint}",
                sleep=self.sleep,
            )
        except PacsRefusedError as e:
            self.refused = e
            self._failed(study_id, " ".join(str(e).split()), 1)
            side = e.side or "server"
            log.warning("push to %s refused (%s): no further study is sent", self.endpoint, side)
            return False
        except PacsError as e:
            self._failed(study_id, " ".join(str(e).split()), self.config.retries + 1)
            log.warning("push to %s failed: %s (local files kept)", self.endpoint, for_log(e))
            return False
        for kind, path, sop, digest in todo:
            self.records.mark_sent(sop, self.endpoint, digest, study_id, kind, str(path))
        self.records.clear_failure(study_id, self.endpoint)
        self.n_sent += len(todo)
        return True

    def _failed(self, study_id: str, message: str, attempts: int) -> None:
        self.records.mark_failed(study_id, self.endpoint, message, attempts)


@contextlib.contextmanager
def study_pusher(run_dir: str | Path, destination: PushConfig) -> Iterator[Pusher]:
    """A :class:`Pusher` on the run's records, for sending studies as they finish (``output.push``)."""
    with SentRecords(Path(run_dir) / LEDGER_FILE) as records:
        yield Pusher(destination, records)


def push_run(
    run_dir: str | Path,
    destination: PushConfig,
    *,
    client: PacsClient | None = None,
    skip: frozenset[str] = frozenset(),
    refused: PacsRefusedError | None = None,
) -> PushReport:
    """Send the DICOM outputs of every finished study of a run folder.

    Args:
        run_dir: A run's output folder (holds ``ledger.sqlite`` and ``studies/``).
        destination: Where and what to send.
        client: Client to use instead of one built from ``destination`` (tests).
        skip: Study ids not to try again (sent or failed moments ago, as they finished).
        refused: A refusal of this destination moments ago (the run's own pushes): nothing is tried.

    Returns:
        Counts of sent and already-sent objects, and the studies that failed (also in ``errors.csv``),
        when some or all studies were sent.

    Raises:
        PacsRefusedError: The destination refused us (credentials, AE title, not DICOMweb): the
            push stopped at the first refusal (exit code 7).
        PacsSendError: No study could be sent (the endpoint is down or wrong), errors.csv says why
            for each (exit code 6); some sent and some not is a report, not an error.
        OutputError: ``run_dir`` is not a run folder or its ledger cannot be used.
        ConfigError: An environment variable named by ``auth`` is not set.
    """
    run = Path(run_dir)
    db = run / LEDGER_FILE
    if not db.is_file():
        raise OutputError(f"{run}: no ledger.sqlite here; give the output folder of a 'medzsad run'")
    with Ledger(db) as ledger:
        done = [r for r in ledger.rows() if r.state is StudyState.DONE]
    with SentRecords(db) as records:
        pusher = Pusher(destination, records, client)
        pusher.refused = refused
        tried = [r for r in done if r.study_id not in skip]
        for row in tried:
            pusher.push_study(row.study_id, run / "studies" / row.safe_id)
        failures = [f for f in records.failures() if f.endpoint == pusher.endpoint]
        replace_push_errors(run, records.failures())
    log.info("push to %s: %d sent, %d already there", pusher.endpoint, pusher.n_sent, pusher.n_already)
    if pusher.refused is not None:
        raise pusher.refused
    report = PushReport(pusher.endpoint, pusher.n_sent, pusher.n_already, tuple(failures))
    if tried and report.n_sent == report.n_already == 0 and len(failures) >= len(tried):
        raise PacsSendError(
            f"{pusher.endpoint}: nothing could be sent ({len(failures)} studies failed, e.g. "
            f"{failures[0].error}); check the endpoint, then run medzsad push again (see errors.csv)",
            endpoint=pusher.endpoint,
        )
    return report


#: ``(outcome, index, total)`` callback after each study (the runner's ``on_study``).
_OnStudy = Callable[[Any, int, int], None]


@contextlib.contextmanager
def pushing_as_done(
    cfg: CohortConfig, todo: list[StudyJob], on_study: _OnStudy | None
) -> Iterator[tuple[_OnStudy | None, Pusher | None]]:
    """``output.push``: a per-study callback sending each study's DICOM outputs as soon as it is done.

    Yields:
        The callback to give the runner (it calls ``on_study`` too) and the pusher (what it tried,
        and a refusal that stopped it), or ``None`` without ``output.push``.
    """
    if cfg.output.push is None:
        yield on_study, None
        return
    safe = {job.study.study_id: job.safe_id for job in todo}
    with study_pusher(cfg.out_dir, cfg.output.push) as pusher:

        def notify(outcome: Any, index: int, total: int) -> None:
            if outcome.status == "done":
                pusher.push_study(outcome.study_id, cfg.out_dir / "studies" / safe[outcome.study_id])
            if on_study is not None:
                on_study(outcome, index, total)

        yield notify, pusher


def push_remaining(out: Path, destination: PushConfig, during: Pusher | None) -> None:
    """Send what earlier runs finished and did not send; rewrite errors.csv's push rows.

    Args:
        out: The run folder.
        destination: ``output.push``.
        during: The pusher that sent studies as they finished in this run (``None``: none did).

    Raises:
        PacsRefusedError: The destination refused us (during the run or now).
        PacsSendError: No study could be sent.
    """
    pushed = frozenset(during.attempted) if during is not None else frozenset()
    refused = during.refused if during is not None else None
    report = push_run(out, destination, skip=pushed, refused=refused)
    log.info("pushed to %s: %d sent, %d sent before", report.endpoint, report.n_sent, report.n_already)
    if report.failures:
        n = len(report.failures)
        log.warning("%d studies could not be sent to %s; see errors.csv", n, report.endpoint)
