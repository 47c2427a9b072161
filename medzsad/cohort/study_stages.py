"""The cohort's :class:`~medzsad.cohort.executor.StudyStages`: what load, score and finish do.

``load`` runs :func:`load_study` in a worker process with the model's :class:`InputSpec` (never the
model); ``score`` runs the model on a batch (pinned memory and a non-blocking copy on CUDA);
``finish`` post-processes and writes in a writer thread; ``begin`` marks the study ``running`` in the
ledger (calling thread).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from medzsad.cohort.executor import Loaded, Scored
from medzsad.cohort.inputs import StudyInput
from medzsad.cohort.ledger import Ledger
from medzsad.cohort.loading import StudyLoader
from medzsad.cohort.scorer import InputSpec, SliceScorer
from medzsad.cohort.stages import PreparedStudy
from medzsad.cohort.study_job import StudyFinish, StudyJob, finish_study
from medzsad.config import CohortConfig

__all__ = ["CohortStages", "load_study", "record_finish"]


def load_study(
    loader: StudyLoader, study: StudyInput, config: CohortConfig, spec: InputSpec
) -> PreparedStudy:
    """Worker-side entry: load one study (picklable, module level)."""
    return loader(study, config, spec)


def _device_of(model: SliceScorer) -> torch.device | None:
    detector = getattr(model, "detector", None)
    device = getattr(detector, "device", None)
    return torch.device(device) if device is not None else None


class CohortStages:
    """Stages of a cohort run.

    Args:
        cfg: The cohort.
        model: The scorer (lives in the calling process).
        loader: Study loader; must be picklable when ``executor.workers > 0``.
        ledger: The run ledger (used in the calling thread only).
        stop: Set when the run stops after a failure (``executor.continue_on_error: false``).
    """

    def __init__(
        self,
        cfg: CohortConfig,
        model: SliceScorer,
        loader: StudyLoader,
        ledger: Ledger,
        stop: threading.Event,
    ) -> None:
        self.cfg, self.model, self.loader, self.ledger, self.stop = cfg, model, loader, ledger, stop
        self.spec = InputSpec.of(model)
        self.device = _device_of(model)

    def load_task(self, job: StudyJob) -> tuple[Callable[..., PreparedStudy], tuple[Any, ...], str]:
        """See :meth:`medzsad.cohort.executor.StudyStages.load_task`."""
        return load_study, (self.loader, job.study, self.cfg, self.spec), job.study.path

    def images(self, loaded: PreparedStudy) -> torch.Tensor:
        """The study's ``(N, 3, S, S)`` model inputs."""
        return loaded.images

    def score(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Run the model: ``(B,)`` scores and ``(B, S, S)`` raw maps, float32 numpy."""
        if self.device is not None and self.device.type == "cuda":
            batch = batch.pin_memory().to(self.device, non_blocking=True)
        res = self.model.score(batch)
        return (
            res.image_scores.detach().float().cpu().numpy(),
            res.maps.detach().float().cpu().numpy(),
        )

    def release(self, loaded: PreparedStudy) -> PreparedStudy:
        """The study without its ``(N, 3, S, S)`` model inputs (~1 GB for 300 slices at 518 px)."""
        return dataclasses.replace(loaded, images=loaded.images[:0])

    def begin(self, job: StudyJob) -> None:
        """Mark the study ``running`` (its files are about to be written)."""
        self.ledger.mark_running(job.study.study_id, job.safe_id, job.input_hash, job.config_hash)

    def finish(self, job: StudyJob, loaded: Loaded[PreparedStudy], scored: Scored | None) -> StudyFinish:
        """Post-process and write (writer thread); ``cancelled`` once the run is stopping."""
        if self.stop.is_set():
            return StudyFinish("cancelled")
        result = finish_study(job, loaded, scored, self.cfg, self.model)
        if result.status == "failed" and not self.cfg.executor.continue_on_error:
            self.stop.set()  # stop as early as possible: studies queued behind this one are not written
        return result

    def record(self, job: StudyJob, result: StudyFinish) -> None:
        """Record a finished study in the ledger (calling thread)."""
        record_finish(self.ledger, job, result)


def record_finish(ledger: Ledger, job: StudyJob, result: StudyFinish) -> None:
    """Record a finished study in the ledger: done, failed, or back to pending (cancelled)."""
    sid = job.study.study_id
    if result.status == "done":
        ledger.mark_done(sid, result.summary)
    elif result.status == "failed":
        ledger.mark_failed(sid, result.error, {"stage": result.stage, "error_type": result.error_type})
    else:
        ledger.mark_pending(sid)
