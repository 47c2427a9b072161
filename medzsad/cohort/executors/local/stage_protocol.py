"""What the local pipeline asks of the work it runs: four stages per job (see :mod:`.pipeline`).

1. **load** (CPU, may crash): ``load_task(job)`` returns a *picklable* function with its arguments,
   run in a worker process.
2. **score** (device): ``score(batch, positions)`` runs the model on ``(B, 1, S, S)`` slices that may
   come from several jobs; ``images(loaded)`` and ``positions(loaded)`` give a loaded job's slices.
3. **finish** (CPU, may crash): ``finish_task(job, loaded, scored)`` returns a *picklable* call run in
   a writer process; it returns the job's outcome.
4. **record** (calling thread): outcomes are yielded *in job order*; ``begin(job)`` is called in the
   calling thread just before a job's finish call starts.

The engine is generic (tests drive it with stand-in stages); the cohort's stages are
:class:`medzsad.cohort.executors.local.stages.StudyStages`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import numpy as np
import torch

from medzsad.study.types import Loaded, Scored

__all__ = ["Stages"]

P = TypeVar("P")
J_contra = TypeVar("J_contra", contravariant=True)
R_co = TypeVar("R_co", covariant=True)


class Stages(Protocol[J_contra, P, R_co]):
    """What each stage of a job does (see the module docstring)."""

    def load_task(self, job: J_contra) -> tuple[Callable[..., P], tuple[Any, ...], str]:
        """A picklable call that loads ``job``: ``(function, args, description)``."""
        ...

    def images(self, loaded: P) -> torch.Tensor:
        """``(N, 1, S, S)`` float32 slices of a loaded job (``N`` may be 0)."""
        ...

    def positions(self, loaded: P) -> torch.Tensor:
        """``(N, ...)`` float32 positions of the same slices (the study's: body coordinate, axis code)."""
        ...

    def score(self, batch: torch.Tensor, positions: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Model outputs for ``(B, 1, S, S)`` slices: ``(B,)`` scores and ``(B, S, S)`` maps."""
        ...

    def progress(self, job: J_contra, done: int, total: int) -> None:
        """``done`` of a job's ``total`` slices are scored (calling thread; for progress display)."""
        ...

    def release(self, loaded: P) -> P:
        """The loaded job without its model inputs (called once it is scored, to free memory)."""
        ...

    def begin(self, job: J_contra) -> None:
        """Called in the calling thread before ``finish`` is scheduled."""
        ...

    def finish_task(
        self, job: J_contra, loaded: Loaded[P], scored: Scored | None
    ) -> tuple[Callable[..., R_co], tuple[Any, ...], str]:
        """A picklable call that finishes one job and returns its outcome (``scored`` None: not scored)."""
        ...

    def finish_failed(self, job: J_contra, error: BaseException) -> R_co:
        """The outcome of a job whose finishing call itself died (a crashed writer process)."""
        ...

    def cancelled(self, job: J_contra) -> R_co:
        """The outcome of a loaded job that is not finished because the run stops."""
        ...
