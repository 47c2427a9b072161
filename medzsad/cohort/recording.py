"""The calling thread's part of a run, whatever the executor: mark studies running, record outcomes.

:class:`StudyRecorder` is the :class:`~medzsad.cohort.executors.base.RunHooks` every executor calls
before a study's files are written, and the runner's record of what came back (ledger and log).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from medzsad.cohort.ledger import Ledger
from medzsad.config import CohortConfig
from medzsad.study.types import FinishPlace, StudyFinish, StudyJob

__all__ = ["StudyRecorder", "log_failed_outputs"]

log = logging.getLogger(__name__)


def log_failed_outputs(log_id: str, failed: list[dict[str, str]], show_ids: bool) -> None:
    """Log the optional outputs of a study that failed (``OutputFailure.to_dict`` records)."""
    for f in failed:
        # messages name files: shown with show_ids only, never text-replaced (docs/privacy.md)
        shown = f["message"][:300] if show_ids else "message hidden (--show-ids shows it)"
        log.warning(
            "study %s: optional output %s failed (study kept): %s: %s",
            log_id,
            f["output"],
            f["error_type"],
            shown,
        )


class StudyRecorder:
    """Marks studies running and records how they ended (ledger, log); calling thread only.

    Args:
        cfg: The run's cohort.
        ledger: The run ledger.
    """

    def __init__(self, cfg: CohortConfig, ledger: Ledger) -> None:
        self.cfg, self.ledger = cfg, ledger
        self._places: dict[str, FinishPlace] = {}

    def begin(self, job: StudyJob, partial: Path) -> FinishPlace:
        """Mark the study ``running`` and claim ``partial``, the folder its files are written in."""
        self.ledger.mark_running(job.study.study_id, job.safe_id, job.input_hash, job.config_hash)
        where = FinishPlace(partial, self.ledger.owns_study_folder(job.safe_id))
        self.ledger.claim(f"studies/{where.partial.name}", "partial")
        self._places[job.study.study_id] = where
        return where

    def record(self, job: StudyJob, result: StudyFinish) -> None:
        """Record a finished study in the ledger and the log."""
        sid = job.study.study_id
        where = self._places.pop(sid, None)
        show = self.cfg.output.show_ids
        if result.status == "done":
            self.ledger.claim(f"studies/{job.safe_id}", "study")
            if where is not None:
                self.ledger.release(f"studies/{where.partial.name}")
            log_failed_outputs(job.log_id, result.summary.get("output_failures", []), show)
            self.ledger.mark_done(sid, result.summary)
            log.info("study %s done: score %.4f, %s lesions", job.log_id, result.score,
                     result.summary.get("lesion_count"))  # fmt: skip
        elif result.status == "failed":
            if where is not None:
                with contextlib.suppress(Exception):
                    self.ledger.release(f"studies/{where.partial.name}")
            self.ledger.mark_failed(
                sid, result.error, {"stage": result.stage, "error_type": result.error_type}
            )
            # without show_ids the message (paths, file names) stays in errors.csv, never in the log
            shown = result.error[:300] if show else "message in errors.csv"
            log.warning("study %s failed at %s: %s: %s", job.log_id, result.stage, result.error_type, shown)
