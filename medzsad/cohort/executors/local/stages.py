"""The local executor: the study of :mod:`medzsad.study`, split into the pipeline's stages.

:class:`LocalExecutor` builds the model in this process and runs the generic
:class:`~medzsad.cohort.executors.local.pipeline.StagePipeline` with :class:`StudyStages`, which only
name the study functions each stage calls: ``load`` runs :func:`medzsad.study.finish.load` in a
worker process (model input allocated in shared memory, so it reaches this process uncopied);
``score`` is :func:`medzsad.study.scoring.score_batch` on batches that may mix studies; ``finish``
is :func:`medzsad.study.finish.finish_study` in a writer process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from medzsad.cohort.executors.base import RunHooks, StudyWork
from medzsad.cohort.executors.local import transport
from medzsad.cohort.executors.local.pipeline import StagePipeline
from medzsad.config import LocalExecutorConfig
from medzsad.study.finish import ModelFacts, finish_study, load
from medzsad.study.loading import InputSpec
from medzsad.study.outputs import partial_dir
from medzsad.study.scorer import ScorerInfo, SliceScorer
from medzsad.study.scoring import device_of, score_batch, slice_positions
from medzsad.study.types import FinishPlace, Loaded, PreparedStudy, Scored, StudyFinish, StudyJob

__all__ = ["LocalExecutor", "StudyStages", "load_in_worker"]

log = logging.getLogger(__name__)


def _shared_images(shape: tuple[int, ...]) -> torch.Tensor | None:
    """In a worker process: the model input in shared memory, so it reaches the main process uncopied."""
    arr = transport.shared_empty(shape, np.float32, transport.process_prefix())
    return torch.from_numpy(arr) if arr is not None else None


def load_in_worker(work: StudyWork, job: StudyJob, spec: InputSpec) -> PreparedStudy:
    """Worker-side entry (module level, picklable): load one study, or raise its loading error."""
    return load(work.loader, job, work.cfg, spec, _shared_images).result()


class StudyStages:
    """What each stage of the local pipeline does with a study (all of it in :mod:`medzsad.study`).

    Args:
        work: The cohort, loader and model source.
        hooks: The ledger (calling thread).
        model: The scorer, in this process.
    """

    def __init__(self, work: StudyWork, hooks: RunHooks, model: SliceScorer) -> None:
        self.work, self.hooks, self.model = work, hooks, model
        self.spec = InputSpec.of(model)
        self.facts = ModelFacts.of(model)
        self.device = device_of(model)
        self._places: dict[str, FinishPlace] = {}

    def load_task(self, job: StudyJob) -> tuple[Callable[..., PreparedStudy], tuple[Any, ...], str]:
        """:func:`load_in_worker` with its arguments (a worker process runs it)."""
        return load_in_worker, (self.work, job, self.spec), f"reading {job.study.path}"

    def images(self, loaded: PreparedStudy) -> torch.Tensor:
        """The study's ``(N, 1, S, S)`` model-size slices."""
        return loaded.images

    def positions(self, loaded: PreparedStudy) -> torch.Tensor:
        """The study's ``(N, 2)`` slice positions (every batch carries them)."""
        return slice_positions(loaded)

    def score(self, batch: torch.Tensor, positions: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """:func:`~medzsad.study.scoring.score_batch` on one batch."""
        return score_batch(self.model, batch, positions, self.device)

    def progress(self, job: StudyJob, done: int, total: int) -> None:
        """Tell the run how far the study's scoring is (its progress bar)."""
        self.hooks.scored(job, done, total)

    def release(self, loaded: PreparedStudy) -> PreparedStudy:
        """The study without its model inputs, once scored."""
        return loaded.without_images()

    def begin(self, job: StudyJob) -> None:
        """Claim the study's partial folder in the ledger (calling thread)."""
        partial = partial_dir(self.work.cfg.out_dir / "studies", job.safe_id)
        self._places[job.study.study_id] = self.hooks.begin(job, partial)

    def finish_task(
        self, job: StudyJob, loaded: Loaded[PreparedStudy], scored: Scored | None
    ) -> tuple[Callable[..., StudyFinish], tuple[Any, ...], str]:
        """:func:`~medzsad.study.finish.finish_study` with its arguments (a writer process runs it)."""
        where = self._places.pop(job.study.study_id)
        args = (job, loaded, scored, self.work.cfg, self.facts, where)
        return finish_study, args, f"writing study {job.log_id}"

    def finish_failed(self, job: StudyJob, error: BaseException) -> StudyFinish:
        """A writer process died while finishing the study."""
        return StudyFinish.failure(error, "write")

    def cancelled(self, job: StudyJob) -> StudyFinish:
        """The run stopped before the study was finished (its ledger row is untouched)."""
        return StudyFinish("cancelled")


class LocalExecutor:
    """Worker processes load, this process scores in cross-study batches, writer processes write.

    Args:
        settings: The cohort's ``executor`` section (kind ``local``).
        batch_size: Slices per model call.
    """

    def __init__(self, settings: LocalExecutorConfig, batch_size: int) -> None:
        self.settings = settings
        if settings.n_workers == 0 and settings.study_timeout_s is not None:
            # a load in this process cannot be stopped (a decoder may hold the GIL): say so, once
            log.warning(
                "executor.workers: 0 loads every study in the main process: executor.study_timeout_s "
                "(%g s) and worker_memory_gb do not apply, a load that hangs hangs the run; set "
                "workers >= 1 (the default) for a deadline per study",
                settings.study_timeout_s,
            )
        self.pipeline = StagePipeline(
            workers=settings.n_workers,
            prefetch=settings.prefetch,
            writers=settings.n_writers,
            write_queue=settings.write_queue,
            batch_size=batch_size,
            timeout_s=settings.study_timeout_s,
            memory_gb=settings.worker_memory_gb,
        )
        self.model_info: ScorerInfo | None = None

    def run(
        self,
        jobs: Sequence[StudyJob],
        work: StudyWork,
        hooks: RunHooks,
        stop: threading.Event | None = None,
    ) -> Iterator[StudyFinish]:
        """See :meth:`medzsad.cohort.executors.base.Executor.run` (the model is built here, once)."""
        model = work.model.get()
        self.model_info = getattr(model, "info", None)
        return self.pipeline.run(jobs, StudyStages(work, hooks, model), stop)
