"""The local executor's engine: a bounded pipeline of worker processes, cross-study batches, writers.

::

    jobs --> [load: WorkerPool, `workers` processes] --> ready (<= workers + prefetch studies)
         --> [score: DeviceStage thread, batches of `batch_size` slices taken across studies in
              job order, two batches deep]
         --> [finish: WorkerPool, `writers` processes; <= writers + write_queue studies]
         --> outcomes in job order

The model runs in its own thread (:mod:`.device_stage`) so that the main thread's work (receiving
loaded studies, building the next batch, passing scored studies on, the ledger) overlaps the model
instead of adding to it. Post-processing and writing run in processes, not threads: they cost ~8
CPU s per 512x512x300 CT with the default outputs, mostly holding the GIL (bench/RESULTS.md).
Studies travel between processes through shared memory (:mod:`.transport`): a volume received
from a loader goes on to a writer by a hard link to the same segment, and each batch's maps are
written straight into the study's segment as the batch comes back, so the main process holds a
study's maps once and copies neither on.

Memory is bounded by the queue sizes, never by the number of studies: a study is loaded only when
fewer than ``workers + prefetch`` are loading or waiting, a loaded study enters scoring only when the
slices waiting for the model are fewer than one batch, and a batch is scored only when fewer than
``writers + write_queue`` studies are being written. Every slice's result depends on that slice
alone, so outputs are the same whatever the number of workers or the batch composition.

``workers = 0`` loads and writes in the calling thread (no isolation; for debugging).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
import torch

from medzsad.cohort.executors.local import transport
from medzsad.cohort.executors.local.device_stage import DeviceStage
from medzsad.cohort.executors.local.stage_protocol import Stages
from medzsad.cohort.executors.local.worker_pool import WorkerPool, wait_any
from medzsad.study.types import Failed, Loaded, Ready, Scored

__all__ = ["StagePipeline", "PipelineStats"]

log = logging.getLogger(__name__)

J = TypeVar("J")
P = TypeVar("P")
R = TypeVar("R")


@dataclass
class PipelineStats:
    """Seconds the main thread spent per activity in the last run (for benchmarks).

    Attributes:
        score_s: Running the model (including the host -> device copy).
        wait_s: Waiting for a worker (loading) or a writer process (finishing).
        batches: Batches scored.
        slices: Slices scored.
    """

    score_s: float = 0.0
    wait_s: float = 0.0
    batches: int = 0
    slices: int = 0


@dataclass(eq=False)  # identity: a study is removed from the scoring list by identity
class _InScoring(Generic[J, P]):
    index: int
    job: J
    loaded: Loaded[P]
    images: torch.Tensor
    positions: torch.Tensor
    cursor: int = 0  # slices given to the model stage so far
    done: int = 0  # slices scored so far
    outstanding: int = 0  # batches with slices of this study still in the model stage
    failed: bool = False
    scores: list[np.ndarray] = field(default_factory=list)
    maps: np.ndarray | None = None  # (N, S, S), made on the first result; batches are written into it
    seconds: float = 0.0

    @property
    def remaining(self) -> int:
        return int(self.images.shape[0]) - self.cursor


_Piece = tuple[_InScoring[J, P], int, int]  # a study and the slices [a, b) of it in one batch


class StagePipeline:
    """Worker processes load, the calling process scores in cross-study batches, writer processes write.

    Args:
        workers: Worker processes (0: load in the calling thread).
        prefetch: Loaded studies allowed to wait for the model beyond those being loaded.
        writers: Writer processes.
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
        self, jobs: Sequence[J], stages: Stages[J, P, R], stop: threading.Event | None = None
    ) -> Iterator[R]:
        """See :meth:`medzsad.cohort.executors.base.Executor.run`."""
        self.stats = PipelineStats()
        if not jobs:
            return iter(())
        return _Run(self, jobs, stages, stop or threading.Event()).outcomes()


class _Run(Generic[J, P, R]):
    """The state of one :meth:`StagePipeline.run`; everything here runs in the calling thread."""

    def __init__(
        self, ex: StagePipeline, jobs: Sequence[J], stages: Stages[J, P, R], stop: threading.Event
    ) -> None:
        self.ex, self.jobs, self.stages, self.stop = ex, jobs, stages, stop
        self.pool: WorkerPool | None = None
        self.writer: WorkerPool | None = None
        self.device: DeviceStage[list[_Piece[J, P]]] | None = None
        self.ready: dict[int, Loaded[P]] = {}
        self.scoring: list[_InScoring[J, P]] = []
        self.to_finish: deque[tuple[int, Loaded[P], Scored | None]] = deque()
        self.finished: dict[int, R] = {}
        self.next_load = self.next_score = self.next_yield = 0

    # -- the loop -------------------------------------------------------------------------------
    def outcomes(self) -> Iterator[R]:
        try:
            self.device = DeviceStage(self.stages.score, depth=2)
            if self.ex.workers > 0:
                self.pool = WorkerPool(self.ex.workers, self.ex.timeout_s, self.ex.memory_gb)
                self.writer = WorkerPool(self.ex.writers, None, None)
            while self.next_yield < self._end():
                yield from self._drain()
                self._dispatch_finishes()  # after draining: a stop set by the caller is seen here
                self._dispatch_loads()
                progressed = self._admit()
                progressed = self._collect_scored() or progressed
                progressed = self._score_batch() or progressed
                if not progressed and self.next_yield < self._end() and self.next_yield not in self.finished:
                    self._wait()
        except BaseException:  # Ctrl-C or an error: do not wait for the batch the model is running
            if self.device is not None:
                self.device.close(wait=False)
                self.device = None
            raise
        finally:
            if self.device is not None:
                self.device.close()
            for pool in (self.pool, self.writer):
                if pool is not None:
                    pool.close()

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
        except Exception as e:  # recorded by the finish call as the study's failure
            self.ready[i] = Failed(e)
        self.next_load += 1

    def _collect(self, timeout: float | None) -> bool:
        assert self.pool is not None  # noqa: S101 - only called with a pool
        t = time.perf_counter()
        done = self.pool.wait(timeout)
        self.ex.stats.wait_s += time.perf_counter() - t
        for o in done:
            self.ready[o.key] = Failed(o.error) if o.error is not None else Ready(o.value)
        return bool(done)

    # -- score ----------------------------------------------------------------------------------
    def _pending_slices(self) -> int:
        return sum(s.remaining for s in self.scoring)

    def _write_full(self) -> bool:
        return self._writing() >= self.ex.writers + self.ex.write_queue

    def _admit(self) -> bool:
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
                self._submit(i, loaded, None)  # the finish call reports the failure or empty study
            else:
                positions = self.stages.positions(loaded.result())
                self.scoring.append(_InScoring(i, self.jobs[i], loaded, images, positions))
        return moved

    def _images(self, loaded: Loaded[P]) -> torch.Tensor | None:
        try:
            return self.stages.images(loaded.result())
        except Exception:  # the load failed: finish() records it
            return None

    def _score_batch(self) -> bool:
        """Give the model stage the next batch: ``batch_size`` slices across studies in job order."""
        assert self.device is not None  # noqa: S101 - created by outcomes()
        pending = self._pending_slices()
        no_more = self.next_score >= self._end()
        if not self.device.free() or pending == 0 or self._write_full():
            return False
        if pending < self.ex.batch_size and not no_more:
            return False
        pieces: list[_Piece[J, P]] = []
        need = self.ex.batch_size
        for s in self.scoring:
            take = min(need, s.remaining)
            if take:
                pieces.append((s, s.cursor, s.cursor + take))
                need -= take
            if need == 0:
                break
        if len(pieces) == 1:  # one study fills most batches: its slices are then a view, not a copy
            first, a, b = pieces[0]
            batch = first.images[a:b]
        else:
            batch = torch.cat([s.images[a:b] for s, a, b in pieces])
        positions = torch.cat([s.positions[a:b] for s, a, b in pieces])
        for s, _a, b in pieces:
            s.cursor = b
            s.outstanding += 1
        self.device.submit(pieces, batch, positions)
        return True

    def _collect_scored(self) -> bool:
        """Take the model stage's results (in batch order); pass on the studies that are complete."""
        assert self.device is not None  # noqa: S101 - created by outcomes()
        results = self.device.done()
        for r in results:
            pieces = r.tag
            for s, _a, _b in pieces:
                s.outstanding -= 1
            if r.error is not None:  # a model failure fails the studies in this batch
                for s, _a, _b in pieces:
                    if not s.failed:
                        s.failed = True
                        self.scoring.remove(s)
                        self._submit(s.index, Failed(r.error, stage="score"), None)
                continue
            scores, maps = r.value
            n = sum(b - a for _s, a, b in pieces)
            self.ex.stats.score_s += r.seconds
            self.ex.stats.batches += 1
            self.ex.stats.slices += n
            offset = 0
            for s, a, b in pieces:
                if not s.failed:
                    s.scores.append(scores[offset : offset + b - a])
                    self._maps_of(s, maps)[a:b] = maps[offset : offset + b - a]
                    # batches come back in order and a scored slice is not read again: free the
                    # study's model input up to here (a 512x512x300 CT's is 0.3 GB at 518 px), so
                    # that it and the study's maps are not both held whole
                    transport.discard(s.images[:b].numpy())
                    s.seconds += r.seconds * (b - a) / n
                    s.done += b - a
                    self.stages.progress(s.job, s.done, int(s.images.shape[0]))
                offset += b - a
        for s in [s for s in self.scoring if s.remaining == 0 and s.outstanding == 0]:
            self.scoring.remove(s)
            assert s.maps is not None  # noqa: S101 - a study in scoring has at least one slice
            scored = Scored(np.concatenate(s.scores), s.maps, s.seconds)
            self._submit(s.index, Ready(self.stages.release(s.loaded.result())), scored)
        return bool(results)

    def _maps_of(self, s: _InScoring[J, P], batch_maps: np.ndarray) -> np.ndarray:
        """The study's maps array, made when its first batch comes back; each batch is written into it.

        In shared memory when a writer process will receive it, so the study's maps exist once in
        this process (not once per batch and again concatenated) and go on to the writer uncopied.
        """
        if s.maps is None:
            shape = (int(s.images.shape[0]), *batch_maps.shape[1:])
            prefix = self.writer.prefix if self.writer is not None else None
            out = transport.shared_empty(shape, batch_maps.dtype, prefix)
            s.maps = np.empty(shape, batch_maps.dtype) if out is None else out
        return s.maps

    # -- finish -------------------------------------------------------------------------------
    def _submit(self, i: int, loaded: Loaded[P], scored: Scored | None) -> None:
        self.to_finish.append((i, loaded, scored))

    def _writing(self) -> int:
        return len(self.to_finish) + (self.writer.busy() if self.writer is not None else 0)

    def _dispatch_finishes(self) -> None:
        while self.to_finish and (self.writer is None or self.writer.idle()):
            i, loaded, scored = self.to_finish.popleft()
            job = self.jobs[i]
            if self.stop.is_set():
                self.finished[i] = self.stages.cancelled(job)
                continue
            self.stages.begin(job)
            fn, args, what = self.stages.finish_task(job, loaded, scored)
            if self.writer is None:
                self.finished[i] = fn(*args)
            else:
                self.writer.submit(i, fn, args, what)

    def _collect_finishes(self) -> None:
        if self.writer is None:
            return
        for o in self.writer.wait(0):
            job = self.jobs[o.key]
            self.finished[o.key] = self.stages.finish_failed(job, o.error) if o.error is not None else o.value

    def _drain(self) -> Iterator[R]:
        """Yield finished studies in job order."""
        self._collect_finishes()
        while self.next_yield in self.finished:
            result = self.finished.pop(self.next_yield)
            self.next_yield += 1
            yield result

    def _wait(self) -> None:
        """Nothing moved: wait for a worker (loading) or a writer to finish a task."""
        pools = [p for p in (self.pool, self.writer) if p is not None and p.busy()]
        model = [self.device.handle] if self.device is not None and self.device.busy() else []
        if not pools and not model:
            if self.to_finish or self.ready or self.scoring:
                return  # more work on the next turn (inline mode, or a stop that cancels)
            raise RuntimeError(
                f"pipeline stalled at study {self.next_yield} of {len(self.jobs)} "
                f"(loaded {sorted(self.ready)})"
            )
        t = time.perf_counter()
        wait_any(pools, None, model)
        dt = time.perf_counter() - t
        if self.pool is not None and self.pool.busy():
            self._collect(0.0)
        self.ex.stats.wait_s += dt
