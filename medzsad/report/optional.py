"""Optional outputs fail on their own: a writer that raises is recorded, the study carries on.

The core outputs of a study (heat map, mask, slice and lesion tables, provenance) are what a run
promises; the review outputs (overlay, DICOM SEG, Parametric Map, Slicer bundle, review page) are
extras whose failure (an odd source header, a missing font, a full disk for one file) must not
cost the study its core outputs. :func:`attempt` runs one writer and turns an exception into an
:class:`OutputFailure` that the runner writes to ``errors.csv`` and ``studies.csv``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from medzsad.errors import traceback_text

__all__ = ["OutputFailure", "attempt"]

T = TypeVar("T")


@dataclass(frozen=True)
class OutputFailure:
    """One optional output that could not be written.

    Attributes:
        output: The output's name (an :class:`~medzsad.config.OutputKind` value, e.g. ``dicom-seg``).
        error_type: Exception class name, e.g. ``OutputError``.
        message: One-line error message.
        traceback: The writer's traceback as text; not in :meth:`to_dict` (it names files: the
            runner logs it with ``-vv --show-ids`` only, docs/privacy.md).
    """

    output: str
    error_type: str
    message: str
    traceback: str = field(default="", compare=False, repr=False)

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form (ledger, provenance)."""
        return {"output": self.output, "error_type": self.error_type, "message": self.message}

    def __str__(self) -> str:
        return f"{self.output}: {self.error_type}: {self.message}"


def attempt(output: str, write: Callable[[], T], failures: list[OutputFailure]) -> T | None:
    """Run ``write()``; on any exception append an :class:`OutputFailure` to ``failures``.

    The message is not logged here (it may hold paths named after the study); the caller logs it
    under the study's pseudonym.

    Args:
        output: Name of the output being written.
        write: The writer, called without arguments.
        failures: Where a failure is recorded.

    Returns:
        What ``write`` returned, or None when it raised.
    """
    try:
        return write()
    except Exception as e:  # an optional output never fails the study; the failure is recorded
        message = " ".join(str(e).split()) or type(e).__name__
        failures.append(OutputFailure(output, type(e).__name__, message, traceback_text(e)))
        return None
