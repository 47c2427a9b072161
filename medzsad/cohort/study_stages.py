"""The cohort's :class:`~medzsad.cohort.executor.StudyStages`: what load, score and finish do.

``load`` runs :func:`load_study` in a worker process with the model's :class:`InputSpec` (never the
model); ``score`` runs the model on a batch (pinned memory and a non-blocking copy on CUDA);
``finish_task`` post-processes and writes in a writer process; ``begin`` marks the study ``running``
in the ledger and ``record`` its outcome (calling thread).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medzsad.cohort.executor import Loaded, Scored
from medzsad.cohort.inputs import StudyInput
from medzsad.cohort.ledger import Ledger
from medzsad.cohort.loading import StudyLoader
from medzsad.cohort.scorer import InputSpec, SliceScorer
from medzsad.cohort.stages import PreparedStudy, study_positions
from medzsad.cohort.study_job import (
    FinishPlace,
    ModelFacts,
    StudyFinish,
    StudyJob,
    finish_study,
    log_failed_outputs,
)
from medzsad.cohort.study_writer import partial_dir
from medzsad.config import CohortConfig

__all__ = ["CohortStages", "LedgerStages", "load_study"]

log = logging.getLogger(__name__)


def load_study(
    loader: StudyLoader, study: StudyInput, config: CohortConfig, spec: InputSpec
) -> PreparedStudy:
    """Worker-side entry: load one study (picklable, module level)."""
    return loader(study, config, spec)


def _device_of(model: SliceScorer) -> torch.device | None:
    detector = getattr(model, "detector", None)
    device = getattr(detector, "device", None)
    return torch.device(device) if device is not None else None


class LedgerStages:
    """The calling thread's part of every executor: mark studies running, record what comes back.

    Args:
        cfg: The cohort.
        ledger: The run ledger (used in the calling thread only).
    """

    def __init__(self, cfg: CohortConfig, ledger: Ledger) -> None:
        self.cfg, self.ledger = cfg, ledger
        self._places: dict[str, FinishPlace] = {}

    def begin(self, job: StudyJob) -> None:
        """Mark the study ``running`` and claim its partial folder (its files are about to be written)."""
        self.begin_at(job, partial_dir(self.cfg.out_dir / "studies", job.safe_id))

    def begin_at(self, job: StudyJob, partial: Path) -> FinishPlace:
        """Mark the study ``running`` and claim ``partial``, the folder another process will write."""
        self.ledger.mark_running(job.study.study_id, job.safe_id, job.input_hash, job.config_hash)
        where = FinishPlace(partial, self.ledger.owns_study_folder(job.safe_id))
        self.ledger.claim(f"studies/{where.partial.name}", "partial")
        self._places[job.study.study_id] = where
        return where

    def record(self, job: StudyJob, result: StudyFinish) -> None:
        """Record a finished study in the ledger and the log (calling thread)."""
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


class CohortStages(LedgerStages):
    """Stages of a cohort run.

    Args:
        cfg: The cohort.
        model: The scorer (lives in the calling process).
        loader: Study loader; must be picklable when ``executor.workers > 0``.
        ledger: The run ledger (used in the calling thread only).
    """

    def __init__(
        self,
        cfg: CohortConfig,
        model: SliceScorer,
        loader: StudyLoader,
        ledger: Ledger,
    ) -> None:
        super().__init__(cfg, ledger)
        self.model, self.loader = model, loader
        self.spec = InputSpec.of(model)
        self.facts = ModelFacts.of(model)
        self.device = _device_of(model)

    def load_task(self, job: StudyJob) -> tuple[Callable[..., PreparedStudy], tuple[Any, ...], str]:
        """See :meth:`medzsad.cohort.executor.StudyStages.load_task`."""
        return load_study, (self.loader, job.study, self.cfg, self.spec), f"reading {job.study.path}"

    def images(self, loaded: PreparedStudy) -> torch.Tensor:
        """The study's ``(N, 3, S, S)`` model inputs."""
        return loaded.images

    def positions(self, loaded: PreparedStudy) -> torch.Tensor | None:
        """Body coordinates of the scored slices when the model uses references."""
        return study_positions(loaded, self.model)

    def score(self, batch: torch.Tensor, positions: torch.Tensor | None) -> tuple[np.ndarray, np.ndarray]:
        """Run the model: ``(B,)`` scores and ``(B, S, S)`` raw maps, float32 numpy."""
        if self.device is not None and self.device.type == "cuda":
            batch = batch.pin_memory().to(self.device, non_blocking=True)
        if positions is None:
            res = self.model.score(batch)
        else:
            res = self.model.score(batch, positions)  # type: ignore[call-arg]
        return (
            res.image_scores.detach().float().cpu().numpy(),
            res.maps.detach().float().cpu().numpy(),
        )

    def release(self, loaded: PreparedStudy) -> PreparedStudy:
        """The study without its ``(N, 3, S, S)`` model inputs (~1 GB for 300 slices at 518 px)."""
        return dataclasses.replace(loaded, images=loaded.images[:0])

    def finish_task(
        self, job: StudyJob, loaded: Loaded[PreparedStudy], scored: Scored | None
    ) -> tuple[Callable[..., StudyFinish], tuple[Any, ...], str]:
        """:func:`finish_study` with its arguments (a writer process runs it)."""
        where = self._places[job.study.study_id]
        args = (job, loaded, scored, self.cfg, self.facts, where)
        return finish_study, args, f"writing study {job.log_id}"

    def finish_failed(self, job: StudyJob, error: BaseException) -> StudyFinish:
        """A writer process died while finishing the study."""
        message = " ".join(str(error).split()) or type(error).__name__
        return StudyFinish("failed", error=message, stage="write", error_type=type(error).__name__)

    def cancelled(self, job: StudyJob) -> StudyFinish:
        """The run stopped before the study was finished (its ledger row is untouched)."""
        return StudyFinish("cancelled")
