"""The executor seam: where the stages of each study run.

A study goes through four stages; the runner (:mod:`medzsad.cohort.runner`) says *what* each stage
does by giving a :class:`StudyStages`, an executor decides *where and when* it runs:

1. **load** (CPU, may crash): read, decode, select the series, preprocess. ``load_task(job)`` returns
   a *picklable* function with its arguments, so it can run in another process or machine.
2. **score** (device): ``score(batch)`` runs the model on ``(B, 3, S, S)`` slices that may come from
   several studies; ``images(loaded)`` gives a loaded study's slices.
3. **finish** (CPU, may crash): ``finish_task(job, loaded, scored)`` returns a *picklable* call that
   post-processes and writes one study and returns its outcome; it never touches the ledger.
4. **record** (calling thread): the executor yields outcomes *in job order*; ``begin(job)`` is called
   in the calling thread just before a study's finish call starts (the runner marks it ``running``).

:class:`medzsad.cohort.pipeline.PipelineExecutor` is the local implementation (worker processes,
cross-study batches, writer processes). A distributed executor (Ray, Dask) implements the same
:class:`Executor` protocol: it may run ``load_task`` on remote workers and ``finish_task`` anywhere
that sees the output folder, but must call ``score`` on the process that holds the model, call ``begin``
and yield outcomes in the calling thread, in job order, one per job it started.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import torch

__all__ = ["Executor", "Loaded", "Ready", "Failed", "Scored", "StudyStages"]

J = TypeVar("J")
P = TypeVar("P")
R = TypeVar("R")
P_co = TypeVar("P_co", covariant=True)
J_contra = TypeVar("J_contra", contravariant=True)
R_co = TypeVar("R_co", covariant=True)


class Loaded(Protocol[P_co]):
    """The result of loading a job: call ``result()`` to get it or raise the loading error."""

    def result(self) -> P_co:
        """The loaded value, or raise what loading raised."""
        ...


class Ready(Generic[P]):
    """A load that succeeded."""

    def __init__(self, value: P) -> None:
        self._value = value

    def result(self) -> P:
        """The loaded value."""
        return self._value


class Failed:
    """A load that failed: ``result()`` raises its error."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def result(self) -> Any:
        """Raise the loading error."""
        raise self.error


@dataclass(frozen=True)
class Scored:
    """Raw model outputs of one study's slices, in slice order.

    Attributes:
        image_scores: ``(N,)`` float32 in [0, 1].
        maps: ``(N, S, S)`` float32 in [0, n_layers] (as the model returns them).
        seconds: Model time attributed to this study (its share of each batch).
    """

    image_scores: np.ndarray
    maps: np.ndarray
    seconds: float


class StudyStages(Protocol[J_contra, P, R_co]):
    """What each stage of a study does (see the module docstring)."""

    def load_task(self, job: J_contra) -> tuple[Callable[..., P], tuple[Any, ...], str]:
        """A picklable call that loads ``job``: ``(function, args, description)``.

        The description names the input in error messages (``while reading <description>``).
        """
        ...

    def images(self, loaded: P) -> torch.Tensor:
        """``(N, 3, S, S)`` float32 slices of a loaded study (``N`` may be 0)."""
        ...

    def positions(self, loaded: P) -> torch.Tensor | None:
        """``(N,)`` per-slice inputs the model also needs (body coordinates), or ``None``."""
        ...

    def score(self, batch: torch.Tensor, positions: torch.Tensor | None) -> tuple[np.ndarray, np.ndarray]:
        """Model outputs for ``(B, 3, S, S)`` slices: ``(B,)`` scores and ``(B, S, S)`` maps."""
        ...

    def release(self, loaded: P) -> P:
        """The loaded study without its model inputs (called once it is scored, to free memory)."""
        ...

    def begin(self, job: J_contra) -> None:
        """Called in the calling thread before ``finish`` is scheduled."""
        ...

    def finish_task(
        self, job: J_contra, loaded: Loaded[P], scored: Scored | None
    ) -> tuple[Callable[..., R_co], tuple[Any, ...], str]:
        """A picklable call that post-processes and writes one study and returns its outcome.

        ``scored`` is ``None`` when loading failed or the study has no slice.
        """
        ...

    def finish_failed(self, job: J_contra, error: BaseException) -> R_co:
        """The outcome of a study whose finishing call itself died (a crashed writer process)."""
        ...

    def cancelled(self, job: J_contra) -> R_co:
        """The outcome of a loaded study that is not finished because the run stops."""
        ...


class Executor(Protocol):
    """Runs every job through the stages, yielding one outcome per started job, in job order."""

    def run(
        self, jobs: Sequence[J], stages: StudyStages[J, P, R], stop: threading.Event | None = None
    ) -> Iterator[R]:
        """Process ``jobs``; once ``stop`` is set no new job starts (started ones are still yielded)."""
        ...
