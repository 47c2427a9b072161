"""Typed exceptions of medzsad.

Every message says what went wrong, where (file path, SeriesInstanceUID, tag keyword plus
``(gggg,eeee)``), the value found versus the value expected, and what to do next.
"""

from __future__ import annotations

__all__ = [
    "MedzsadError",
    "ConfigError",
    "InputError",
    "DicomError",
    "NiftiError",
    "GeometryError",
    "ModelError",
    "OutputError",
    "StudyWorkerError",
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
