"""One line per finished study when stderr is not a terminal (logs, CI, ``nohup``), with time and ETA.

On a terminal the run shows a progress bar instead (:mod:`medzsad.cohort.run_progress`).
"""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["StudyLines"]


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class StudyLines:
    """``[3/6] s-8bb6458d3c done score=0.8921 (4.1 s) [1 warning: ...] elapsed 0:00:12 ETA 0:00:12``."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self, outcome: Any, i: int, n: int) -> None:
        """Write the line of the ``i``-th of ``n`` studies."""
        elapsed = time.monotonic() - self.start
        eta = elapsed / i * (n - i) if i else 0.0
        sys.stderr.write(f"[{i}/{n}] {outcome.line()} elapsed {_clock(elapsed)} ETA {_clock(eta)}\n")
