"""Typed exceptions of medzsad.

Every message says what went wrong, where (file path, SeriesInstanceUID, tag keyword plus
``(gggg,eeee)``), the value found versus the value expected, and what to do next.
"""

from __future__ import annotations

import traceback

__all__ = [
    "one_line",
    "keep_traceback",
    "traceback_text",
    "MedzsadError",
    "ConfigError",
    "InputError",
    "DicomError",
    "NiftiError",
    "ImageError",
    "ArchiveError",
    "ResourceLimitError",
    "UnsupportedInputError",
    "UnsafePathError",
    "SourceChangedError",
    "DecoderError",
    "GeometryError",
    "ModelError",
    "OutputError",
    "StudyWorkerError",
    "LedgerError",
    "PacsError",
    "PacsSendError",
    "PacsRefusedError",
    "PacsSendRefusedError",
    "PacsUnreachableError",
]


class MedzsadError(Exception):
    """Base class of every error raised by medzsad."""


class ConfigError(MedzsadError):
    """A cohort file, preset or command-line option is invalid."""


class InputError(MedzsadError):
    """A scan or input file cannot be read or is not usable."""


class DicomError(InputError):
    """A DICOM file or series is unreadable or inconsistent."""


class NiftiError(InputError):
    """A NIfTI (or other volume) file is unreadable or inconsistent."""


class ImageError(InputError):
    """A 2D image file (PNG, JPEG, TIFF, BMP) is unreadable or unusable."""


class ArchiveError(InputError):
    """A ``.zip`` archive or one of its members cannot be read (corrupt, encrypted, unsupported)."""


class ResourceLimitError(InputError):
    """A header claims (or decompression yields) more voxels, bytes or frames than the read limits allow.

    Raised before the memory is allocated; see :class:`medzsad.io.limits.ReadLimits`.
    """


class UnsupportedInputError(InputError):
    """A well-formed file of a kind medzsad does not read (CIFTI, unknown NIfTI datatype, ...)."""


class UnsafePathError(InputError):
    """A header points at data outside the input folder (``../`` escapes, ``/dev/zero``)."""


class SourceChangedError(InputError):
    """Input files changed or disappeared between discovery and loading."""


class DecoderError(InputError):
    """A third-party decoder failed in an unexpected way (crash-like errors, panics, recursion)."""


class GeometryError(MedzsadError):
    """Geometry (affine, orientation, spacing) is inconsistent or cannot be inverted."""


class ModelError(MedzsadError):
    """Model weights, configuration or checkpoint are missing or invalid."""


class OutputError(MedzsadError):
    """An output file cannot be written."""


class StudyWorkerError(InputError):
    """The worker process reading a study crashed, hung past its time limit or ran out of memory.

    Attributes:
        reason: ``"crashed"``, ``"timeout"``, ``"memory"`` or ``"panic"``.
    """

    def __init__(self, message: str, reason: str = "crashed") -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self) -> tuple[type[StudyWorkerError], tuple[str, str]]:
        return (StudyWorkerError, (str(self), self.reason))


class LedgerError(OutputError):
    """The run ledger (``<output dir>/ledger.sqlite``) is empty, corrupt or not a medzsad ledger."""


class PacsError(InputError):
    """A PACS (DICOMweb or DIMSE) cannot be reached, refuses a request or answers wrongly.

    Attributes:
        endpoint: The endpoint, without credentials (``http://host/dicom-web``, ``AE@host:port``).
        study_uid: The StudyInstanceUID concerned, or ``""`` for a search.
    """

    def __init__(self, message: str, *, endpoint: str = "", study_uid: str = "") -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.study_uid = study_uid


class PacsSendError(PacsError, OutputError):
    """Sending results to a PACS failed (after retries); the local files are kept."""


class PacsRefusedError(PacsError):
    """The PACS refused us in a way no retry can fix: never retried, and the whole pull stops.

    Wrong credentials (HTTP 401/403), an AE title the peer does not know (ours, the calling AE, or
    the one we called), or an endpoint that is no DICOMweb server (an HTML page such as an SSO
    login). Retrying would only lock the account.

    Attributes:
        side: What was refused: ``credentials``, ``calling AE``, ``called AE`` or ``server``.
    """

    def __init__(self, message: str, *, endpoint: str = "", study_uid: str = "", side: str = "") -> None:
        super().__init__(message, endpoint=endpoint, study_uid=study_uid)
        self.side = side


class PacsSendRefusedError(PacsRefusedError, PacsSendError):
    """Sending was refused (credentials, AE titles, not a DICOMweb server): an output error, never retried."""


class PacsUnreachableError(PacsError):
    """Nothing answers at the endpoint (connection refused, unknown host name): not retried.

    Unlike a slow or failing server, a closed port or a wrong host does not recover in seconds;
    the pull reports it at once for every study instead of waiting through retries.
    """


def one_line(error: BaseException) -> str:
    """The error's message on one line (multi-line messages joined with ' | '; "" when empty)."""
    return " | ".join(part.strip() for part in str(error).strip().splitlines() if part.strip())


#: Where a worker process keeps an exception's traceback text before it drops the frames.
_KEPT_TRACEBACK = "medzsad_traceback"


def keep_traceback(error: BaseException, of: BaseException | None = None) -> None:
    """Store ``error``'s formatted traceback on it (pickled with it), before its frames are dropped.

    A worker process sends its exceptions to the main process without their tracebacks (they would
    keep the failed task's memory alive); the text is what ``-vv --show-ids`` shows there.

    Args:
        error: The exception to keep the text on.
        of: The exception whose traceback it is, when ``error`` stands in for it (default ``error``).
    """
    if getattr(error, _KEPT_TRACEBACK, ""):
        return
    try:
        setattr(error, _KEPT_TRACEBACK, traceback_text(of if of is not None else error))
    except Exception:  # noqa: S110 - a traceback that cannot be formatted is left out, never raised
        pass


def traceback_text(error: BaseException) -> str:
    """``error``'s traceback as text: the one kept where it was raised, else formatted here."""
    kept = getattr(error, _KEPT_TRACEBACK, "")
    if isinstance(kept, str) and kept:
        return kept
    return "".join(traceback.format_exception(error))
