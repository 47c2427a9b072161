"""The calling thread's part of a run, whatever the executor: mark studies running, record outcomes.

:class:`StudyRecorder` is the :class:`~medzsad.cohort.executors.base.RunHooks` every executor calls
before a study's files are written, and the runner's record of what came back (ledger and log).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from medzsad.cohort.ledger import Ledger
from medzsad.config import CohortConfig
from medzsad.study.types import FinishPlace, StudyFinish, StudyJob

__all__ = ["StudyRecorder", "log_failed_outputs", "shown_error"]

log = logging.getLogger(__name__)


def shown_error(cfg: CohortConfig, job: StudyJob, result: StudyFinish) -> str:
    """A failure as the terminal shows it: error type, stage and the reason.

    The study's path and its own folder (:attr:`StudyInput.source`; for a DICOMDIR, also the
    folder it sits in) become its visible id (``<s-...>``) in the message, unless ids are shown
    (``show_ids``) or the path is the one typed on the command line (``run -i``): input folders
    can be named after patients, file names below them are the reason a user needs.
    """
    if not result.error:
        return ""
    message = result.error
    if not (cfg.output.show_ids or cfg.from_command_line):
        given, own = Path(job.study.path), Path(job.study.source)  # own: of a study among others
        paths = {str(p) for p in (given, given.resolve(), own, own.resolve())}
        if given.name.upper() == "DICOMDIR":  # its files lie in the folder it sits in
            paths |= {str(given.parent), str(given.resolve().parent)}
        for path in sorted(paths, key=len, reverse=True):
            message = message.replace(path, f"<{job.log_id}>")
        # the study's output folder is named after its id too (studies/<id>, studies/<id>.partial-N)
        message = message.replace(f"studies/{job.safe_id}", f"studies/<{job.log_id}>")
    return f"{result.error_type or 'error'} at {result.stage or 'load'}: {message}"


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
        on_scored: Told how many of a study's slices are scored (the progress bar).
    """

    def __init__(
        self, cfg: CohortConfig, ledger: Ledger, on_scored: Callable[[StudyJob, int, int], None] | None = None
    ) -> None:
        self.cfg, self.ledger = cfg, ledger
        self._places: dict[str, FinishPlace] = {}
        self._unpublished: set[str] = set()  # final folders claimed at begin, not published yet
        self._on_scored = on_scored

    def begin(self, job: StudyJob, partial: Path) -> FinishPlace:
        """Mark the study ``running`` and claim ``partial``, the folder its files are written in.

        A final folder that does not exist yet is claimed now too, before a writer can publish it:
        a writer (or Ray actor) that outlives a killed main process may still rename its partial
        folder into place, and the next run must know that folder as its own (it recomputes it).
        """
        sid = job.study.study_id
        self.ledger.mark_running(sid, job.safe_id, job.input_hash, job.config_hash)
        where = FinishPlace(partial, self.ledger.owns_study_folder(job.safe_id))
        self.ledger.claim(f"studies/{where.partial.name}", "partial")
        final = self.cfg.out_dir / "studies" / job.safe_id
        if not where.may_replace and not (final.exists() or final.is_symlink()):
            self.ledger.claim(f"studies/{job.safe_id}", "study")
            self._unpublished.add(sid)
        self._places[sid] = where
        return where

    def scored(self, job: StudyJob, done: int, total: int) -> None:
        """``done`` of the study's ``total`` slices are scored."""
        if self._on_scored is not None:
            self._on_scored(job, done, total)

    def record(self, job: StudyJob, result: StudyFinish) -> None:
        """Record a finished study in the ledger and the log."""
        sid = job.study.study_id
        where = self._places.pop(sid, None)
        show = self.cfg.output.show_ids
        final = self.cfg.out_dir / "studies" / job.safe_id
        if sid in self._unpublished and result.status != "done" and not final.exists():
            with contextlib.suppress(Exception):  # claimed at begin, never published
                self.ledger.release(f"studies/{job.safe_id}")
        self._unpublished.discard(sid)
        if result.status == "done":
            self.ledger.claim(f"studies/{job.safe_id}", "study")
            if where is not None:
                self.ledger.release(f"studies/{where.partial.name}")
            log_failed_outputs(job.log_id, result.summary.get("output_failures", []), show)
            self.ledger.mark_done(sid, result.summary)
            log.info("study %s done: score %.4f, %s lesions", job.log_id, result.score,
                     result.summary.get("lesion_count"))  # fmt: skip
            for warning in result.summary.get("warnings", ()):  # gaps, spacing, a series fallback
                log.warning("study %s: %s", job.log_id, warning)
        elif result.status == "failed":
            if where is not None:
                with contextlib.suppress(Exception):
                    self.ledger.release(f"studies/{where.partial.name}")
            self.ledger.mark_failed(
                sid, result.error, {"stage": result.stage, "error_type": result.error_type}
            )
            log.warning("study %s failed: %s", job.log_id, shown_error(self.cfg, job, result)[:400])
        if show and result.traceback:  # it names files: with --show-ids only (docs/privacy.md)
            log.debug("traceback of study %s:\n%s", job.log_id, result.traceback.rstrip())
