"""The PACS client interface shared by DICOMweb and DIMSE, and retries with exponential backoff."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import pydicom

from medzsad.errors import PacsError, PacsRefusedError, PacsUnreachableError
from medzsad.ids import hashed_id

__all__ = ["InstanceRef", "PacsClient", "with_retries", "for_log"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class InstanceRef:
    """One instance held by the PACS.

    Attributes:
        study_uid: StudyInstanceUID.
        series_uid: SeriesInstanceUID.
        sop_uid: SOPInstanceUID.
        sop_class_uid: SOPClassUID when the PACS reported it, else ``""``.
    """

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str = ""


class PacsClient(Protocol):
    """What pull and push need from a PACS; every method raises :class:`PacsError` on failure."""

    #: The endpoint as shown in messages (never with credentials).
    endpoint: str

    def find_studies(self, query: dict[str, str]) -> list[str]:
        """StudyInstanceUIDs matching a study-level query."""
        ...

    def list_instances(self, study_uid: str) -> list[InstanceRef]:
        """The instances of a study."""
        ...

    def retrieve(
        self,
        refs: Sequence[InstanceRef],
        sink: Callable[[pydicom.Dataset], None],
        *,
        whole_study: bool = False,
    ) -> None:
        """Fetch ``refs`` (of one study; ``whole_study``: all of it), handing each dataset to ``sink``."""
        ...

    def store(self, files: Iterable[Path]) -> None:
        """Send DICOM files (all of one study)."""
        ...


def with_retries(
    action: Callable[[], T],
    *,
    retries: int,
    backoff_s: float,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``action``; retry a :class:`PacsError` up to ``retries`` times, waiting 1, 2, 4 x ``backoff_s``.

    A :class:`PacsRefusedError` (wrong credentials, unknown AE title, not a DICOMweb server) is
    never retried: another attempt would only count as one more failed login. Neither is a
    :class:`PacsUnreachableError` (nothing listens there): it would not answer seconds later.

    Raises:
        PacsError: The last attempt's error, or the refusal at once.
    """
    for attempt in range(retries + 1):
        try:
            return action()
        except (PacsRefusedError, PacsUnreachableError):
            raise
        except PacsError as e:
            if attempt == retries:
                raise
            wait = backoff_s * (2**attempt)
            log.warning(
                "%s failed (attempt %d of %d): %s; retrying in %.1f s",
                what,
                attempt + 1,
                retries + 1,
                for_log(e),
                wait,
            )
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def for_log(error: PacsError) -> str:
    """The error's message, its StudyInstanceUID replaced by the study's log pseudonym (no PHI in logs)."""
    text = " ".join(str(error).split())
    return text.replace(error.study_uid, hashed_id(error.study_uid)) if error.study_uid else text
