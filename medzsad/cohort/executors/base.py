"""The executor seam: every executor runs the same study (:mod:`medzsad.study`), only elsewhere.

A run hands an executor its jobs, a :class:`StudyWork` (the cohort, the loader and where the model
comes from; picklable, so it can travel to other processes and machines) and :class:`RunHooks`
(the calling thread's ledger). The executor decides *where and when* each part of a study runs:

- :class:`~medzsad.cohort.executors.local.pipeline.LocalExecutor`: worker processes load, the
  calling process scores batches that mix studies, writer processes finish;
- :class:`~medzsad.cohort.executors.ray_executor.RayExecutor`: Ray actors that each hold a model
  run whole studies (:func:`medzsad.study.finish.run_study`).

Both call only :mod:`medzsad.study` for a study's work, so their outputs are equal by
construction. An executor calls ``hooks.begin`` in the calling thread just before a study's files
are written (the runner marks it ``running`` and claims its partial folder) and yields one
:class:`~medzsad.study.types.StudyFinish` per job it started, in job order, in the calling thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from medzsad.config import CohortConfig
from medzsad.study.build import build_scorer
from medzsad.study.loading import StudyLoader
from medzsad.study.scorer import ScorerInfo, SliceScorer
from medzsad.study.types import FinishPlace, StudyFinish, StudyJob

__all__ = ["ModelSource", "BuildModel", "GivenModel", "StudyWork", "RunHooks", "Executor"]


class ModelSource(Protocol):
    """Where a process that scores gets its model (picklable: sent to Ray actors)."""

    def get(self) -> SliceScorer:
        """The scorer (built on first use in this process)."""
        ...


@dataclass(frozen=True)
class BuildModel:
    """The model of the cohort's ``model`` section, built where it is needed."""

    cfg: CohortConfig

    def get(self) -> SliceScorer:
        """Build the scorer (:func:`medzsad.study.build.build_scorer`)."""
        return build_scorer(self.cfg)


@dataclass(frozen=True)
class GivenModel:
    """A scorer made by the caller (tests, notebooks); pickled to the processes that score."""

    scorer: SliceScorer

    def get(self) -> SliceScorer:
        """The given scorer."""
        return self.scorer


@dataclass(frozen=True)
class StudyWork:
    """What every executor does with each study.

    Attributes:
        cfg: The run's cohort (options applied; absolute output folder).
        loader: Loads one study (picklable).
        model: Where the model comes from.
    """

    cfg: CohortConfig
    loader: StudyLoader
    model: ModelSource


class RunHooks(Protocol):
    """The calling thread's part of a run: its ledger."""

    def begin(self, job: StudyJob, partial: Path) -> FinishPlace:
        """Mark the study running and claim ``partial``, the folder its files are about to be written in."""
        ...

    def scored(self, job: StudyJob, done: int, total: int) -> None:
        """``done`` of the study's ``total`` slices are scored (progress only; it may never be called)."""
        ...


class Executor(Protocol):
    """Runs every job through :mod:`medzsad.study`, yielding one outcome per started job, in job order.

    Attributes:
        model_info: What the model built for this run is (``None`` until one was built, or for a
            scorer without a description).
    """

    model_info: ScorerInfo | None

    def run(
        self,
        jobs: Sequence[StudyJob],
        work: StudyWork,
        hooks: RunHooks,
        stop: threading.Event | None = None,
    ) -> Iterator[StudyFinish]:
        """Process ``jobs``; once ``stop`` is set no new job starts (started ones are still yielded)."""
        ...
