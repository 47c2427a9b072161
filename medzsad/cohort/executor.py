"""Executors: where studies run. ``local`` loads study n+1 in a thread while study n is scored.

The seam for a distributed executor is :class:`Executor`: it receives the jobs, a ``load``
function (CPU: read, select, preprocess) and a ``process`` function (model, post-processing,
writing, ledger), and yields one outcome per job in job order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol, TypeVar

__all__ = ["Executor", "LocalExecutor", "Loaded"]

J = TypeVar("J")
P = TypeVar("P")
P_co = TypeVar("P_co", covariant=True)
R = TypeVar("R")


class Loaded(Protocol[P_co]):
    """The result of loading a job: call ``result()`` to get it or raise the loading error."""

    def result(self) -> P_co:
        """The loaded value, or raise what loading raised."""
        ...


class _Done:
    def __init__(self, fn: Callable[[], object]) -> None:
        self._value: object = None
        self._error: Exception | None = None
        try:
            self._value = fn()
        except Exception as e:  # handed to process(), which records the failed study
            self._error = e

    def result(self) -> object:
        if self._error is not None:
            raise self._error
        return self._value


class Executor(Protocol):
    """Runs ``process(job, loaded)`` for every job, in order, yielding the outcomes."""

    def run(
        self,
        jobs: Sequence[J],
        load: Callable[[J], P],
        process: Callable[[J, Loaded[P]], R],
    ) -> Iterator[R]:
        """Process every job; ``loaded.result()`` raises if loading failed."""
        ...


class LocalExecutor:
    """One process; ``prefetch`` studies are loaded ahead in a background thread.

    Args:
        prefetch: Studies loaded ahead of the one being scored (0 loads inline).
    """

    def __init__(self, prefetch: int = 1) -> None:
        self.prefetch = prefetch

    def run(
        self,
        jobs: Sequence[J],
        load: Callable[[J], P],
        process: Callable[[J, Loaded[P]], R],
    ) -> Iterator[R]:
        """See :meth:`Executor.run`."""
        if self.prefetch <= 0:
            for job in jobs:
                yield process(job, _Done(lambda job=job: load(job)))  # type: ignore[arg-type, misc]
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="medzsad-load") as pool:
            futures: dict[int, Future[P]] = {}
            try:
                for i, job in enumerate(jobs):
                    for ahead in range(i, min(i + self.prefetch + 1, len(jobs))):
                        if ahead not in futures:
                            futures[ahead] = pool.submit(load, jobs[ahead])
                    yield process(job, futures.pop(i))
            finally:
                for f in futures.values():
                    f.cancel()
