"""The local executor: a bounded pipeline of worker processes, cross-study batches and writer threads.

::

    jobs --> [load: WorkerPool, `workers` processes] --> ready (<= workers + prefetch studies)
         --> [score: main process, batches of `batch_size` slices taken across studies in job order]
         --> [finish: `writers` threads; <= writers + write_queue studies] --> outcomes in job order

Memory is bounded by the queue sizes, never by the number of studies: a study is loaded only when
fewer than ``workers + prefetch`` are loading or waiting, a loaded study enters scoring only when the
slices waiting for the model are fewer than one batch, and a batch is scored only when fewer than
``writers + write_queue`` studies are being written. Every slice's result depends on that slice
alone, so outputs are the same whatever the number of workers or the batch composition.

``workers = 0`` loads in the calling thread (no isolation; for debugging).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
import torch

from medzsad.cohort.executor import Failed, Loaded, Ready, Scored, StudyStages
from medzsad.cohort.worker_pool import WorkerPool

__all__ = ["PipelineExecutor", "PipelineStats"]

log = logging.getLogger(__name__)

J = TypeVar("J")
P = TypeVar("P")
R = TypeVar("R")


@dataclass
class PipelineStats:
    """Seconds the main thread spent per activity in the last run (for benchmarks).

    Attributes:
        score_s: Running the model (including the host -> device copy).
        wait_load_s: Waiting for a worker to deliver a study.
        wait_write_s: Waiting for a writer (the write queue was full, or the end of the run).
        batches: Batches scored.
        slices: Slices scored.
    """

    score_s: float = 0.0
    wait_load_s: float = 0.0
    wait_write_s: float = 0.0
    batches: int = 0
    slices: int = 0


@dataclass
class _InScoring(Generic[J, P]):
    index: int
    job: J
    loaded: Loaded[P]
    images: torch.Tensor
    cursor: int = 0
    scores: list[np.ndarray] = field(default_factory=list)
    maps: list[np.ndarray] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def remaining(self) -> int:
        return int(self.images.shape[0]) - self.cursor


class PipelineExecutor:
    """Worker processes load, the calling process scores in cross-study batches, threads write.

    Args:
        workers: Worker processes (0: load in the calling thread).
        prefetch: Loaded studies allowed to wait for the model beyond those being loaded.
        writers: Writer threads.
        write_queue: Scored studies allowed to wait for a writer.
        batch_size: Slices per model call.
        timeout_s: Per-study load time limit (worker processes only).
        memory_gb: Address-space limit per worker in GiB.
    """

    def __init__(
        self,
        workers: int,
        prefetch: int,
        writers: int,
        write_queue: int,
        batch_size: int,
        timeout_s: float | None = None,
        memory_gb: float | None = None,
    ) -> None:
        self.workers = workers
        self.prefetch = prefetch
        self.writers = writers
        self.write_queue = write_queue
        self.batch_size = max(1, batch_size)
        self.timeout_s = timeout_s
        self.memory_gb = memory_gb
        self.stats = PipelineStats()

    def run(
        self, jobs: Sequence[J], stages: StudyStages[J, P, R], stop: threading.Event | None = None
    ) -> Iterator[R]:
        """See :meth:`medzsad.cohort.executor.Executor.run`."""
        self.stats = PipelineStats()
        if not jobs:
            return iter(())
        return _Run(self, jobs, stages, stop or threading.Event()).outcomes()


class _Run(Generic[J, P, R]):
    """The state of one :meth:`PipelineExecutor.run`; everything here runs in the calling thread."""

    def __init__(
        self, ex: PipelineExecutor, jobs: Sequence[J], stages: StudyStages[J, P, R], stop: threading.Event
    ) -> None:
        self.ex, self.jobs, self.stages, self.stop = ex, jobs, stages, stop
        self.pool: WorkerPool | None = None
        self.ready: dict[int, Loaded[P]] = {}
        self.scoring: list[_InScoring[J, P]] = []
        self.futures: dict[int, Future[R]] = {}
        self.next_load = self.next_score = self.next_yield = 0

    # -- the loop -------------------------------------------------------------------------------
    def outcomes(self) -> Iterator[R]:
        writer = ThreadPoolExecutor(self.ex.writers, thread_name_prefix="medzsad-write")
        try:
            if self.ex.workers > 0:
                self.pool = WorkerPool(self.ex.workers, self.ex.timeout_s, self.ex.memory_gb)
            while self.next_yield < self._end():
                self._dispatch_loads()
                progressed = self._admit(writer)
                progressed = self._score_batch(writer) or progressed
                yield from self._drain(block=False)
                if not progressed:
                    yield from self._wait(writer)
        finally:
            for f in self.futures.values():
                f.cancel()
            writer.shutdown(wait=True)
            if self.pool is not None:
                self.pool.close()

    def _end(self) -> int:
        """Jobs that will be yielded: all, or those started before ``stop`` was set."""
        return self.next_load if self.stop.is_set() else len(self.jobs)

    # -- load -----------------------------------------------------------------------------------
    def _dispatch_loads(self) -> None:
        pool = self.pool
        if pool is None or self.stop.is_set():
            return
        limit = self.ex.workers + self.ex.prefetch
        while self.next_load < len(self.jobs) and pool.idle() and pool.busy() + len(self.ready) < limit:
            fn, args, what = self.stages.load_task(self.jobs[self.next_load])
            pool.submit(self.next_load, fn, args, what)
            self.next_load += 1

    def _load_inline(self) -> None:
        """``workers = 0``: load the next study in this thread."""
        i = self.next_load
        fn, args, _what = self.stages.load_task(self.jobs[i])
        try:
            self.ready[i] = Ready(fn(*args))
        except Exception as e:  # recorded by finish() as the study's failure
            self.ready[i] = Failed(e)
        self.next_load += 1

    def _collect(self, timeout: float | None) -> bool:
        assert self.pool is not None  # noqa: S101 - only called with a pool
        t = time.perf_counter()
        done = self.pool.wait(timeout)
        self.ex.stats.wait_load_s += time.perf_counter() - t
        for o in done:
            self.ready[o.key] = Failed(o.error) if o.error is not None else Ready(o.value)
        return bool(done)

    # -- score ----------------------------------------------------------------------------------
    def _pending_slices(self) -> int:
        return sum(s.remaining for s in self.scoring)

    def _write_full(self) -> bool:
        return len(self.futures) >= self.ex.writers + self.ex.write_queue

    def _admit(self, writer: ThreadPoolExecutor) -> bool:
        """Move loaded studies, in job order, into scoring while less than a batch is waiting."""
        moved = False
        while self._pending_slices() < self.ex.batch_size and not self._write_full():
            i = self.next_score
            if i >= self._end():
                break
            if i not in self.ready and self.pool is None and i == self.next_load and not self.stop.is_set():
                self._load_inline()
            if i not in self.ready:
                break
            loaded = self.ready.pop(i)
            self.next_score += 1
            moved = True
            images = self._images(loaded)
            if images is None or images.shape[0] == 0 or self.stop.is_set():
                self._submit(writer, i, loaded, None)  # finish() reports the failure or empty study
            else:
                self.scoring.append(_InScoring(i, self.jobs[i], loaded, images))
        return moved

    def _images(self, loaded: Loaded[P]) -> torch.Tensor | None:
        try:
            return self.stages.images(loaded.result())
        except Exception:  # the load failed: finish() records it
            return None

    def _score_batch(self, writer: ThreadPoolExecutor) -> bool:
        pending = self._pending_slices()
        no_more = self.next_score >= self._end()
        if pending == 0 or self._write_full() or (pending < self.ex.batch_size and not no_more):
            return False
        pieces: list[tuple[_InScoring[J, P], int, int]] = []
        need = self.ex.batch_size
        for s in self.scoring:
            take = min(need, s.remaining)
            if take:
                pieces.append((s, s.cursor, s.cursor + take))
                need -= take
            if need == 0:
                break
        batch = (
            torch.cat([s.images[a:b] for s, a, b in pieces])
            if len(pieces) > 1
            else pieces[0][0].images[pieces[0][1] : pieces[0][2]]
        )
        t = time.perf_counter()
        try:
            scores, maps = self.stages.score(batch)
        except Exception as e:  # a model failure fails the studies in this batch
            for s, _a, _b in pieces:
                self.scoring.remove(s)
                self._submit(writer, s.index, Failed(e), None)
            return True
        dt = time.perf_counter() - t
        self.ex.stats.score_s += dt
        self.ex.stats.batches += 1
        self.ex.stats.slices += int(batch.shape[0])
        offset = 0
        for s, a, b in pieces:
            s.scores.append(scores[offset : offset + b - a])
            s.maps.append(maps[offset : offset + b - a])
            s.seconds += dt * (b - a) / int(batch.shape[0])
            s.cursor = b
            offset += b - a
        for s in [s for s in self.scoring if s.remaining == 0]:
            self.scoring.remove(s)
            scored = Scored(np.concatenate(s.scores), np.concatenate(s.maps), s.seconds)
            self._submit(writer, s.index, Ready(self.stages.release(s.loaded.result())), scored)
        return True

    # -- finish ---------------------------------------------------------------------------------
    def _submit(self, writer: ThreadPoolExecutor, i: int, loaded: Loaded[P], scored: Scored | None) -> None:
        job = self.jobs[i]
        self.stages.begin(job)
        self.futures[i] = writer.submit(self.stages.finish, job, loaded, scored)

    def _drain(self, block: bool) -> Iterator[R]:
        """Yield finished studies in job order (waiting for the next one when ``block``)."""
        while self.next_yield in self.futures:
            f = self.futures[self.next_yield]
            if not f.done() and not block:
                return
            t = time.perf_counter()
            result = f.result()
            self.ex.stats.wait_write_s += time.perf_counter() - t
            del self.futures[self.next_yield]
            self.next_yield += 1
            block = False
            yield result

    def _wait(self, writer: ThreadPoolExecutor) -> Iterator[Any]:
        """Nothing moved: wait for whichever stage can unblock the pipeline."""
        loading = self.pool is not None and self.pool.busy() > 0
        if self.futures and (self._write_full() or not loading):
            yield from self._drain(block=True)
        elif loading:
            self._collect(0.05 if self.futures else None)
        elif self.pool is not None and self.next_load < self._end() and not self.pool.idle():
            self._collect(None)
        elif not self.futures and self.next_yield < self._end():
            # nothing is loading or writing: the dispatcher is blocked by the ready bound, which
            # _admit() drains; reaching here means a stage is stuck, which would be a bug
            raise RuntimeError(
                f"pipeline stalled at study {self.next_yield} (loaded {sorted(self.ready)}, "
                f"scoring {[s.index for s in self.scoring]})"
            )
