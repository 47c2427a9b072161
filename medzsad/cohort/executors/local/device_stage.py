"""The model stage of the pipeline: one thread that runs the model on batches, in submission order.

The main thread prepares batch ``k + 1`` (and receives loaded studies, passes scored ones to the
writers, updates the ledger) while this thread runs batch ``k``: on a GPU the model is then never
left waiting for that bookkeeping. At most ``depth`` batches are in the stage at once (one running,
the next ready), which bounds the memory they hold. Results come back in submission order through
:meth:`DeviceStage.done`; a wake-up pipe lets the main thread wait for a result together with its
worker processes (:func:`multiprocessing.connection.wait` on :attr:`DeviceStage.handle`).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["DeviceStage", "BatchResult"]

T = TypeVar("T")


@dataclass(frozen=True)
class BatchResult(Generic[T]):
    """One batch's outcome: ``value`` (the scorer's return) or ``error``; ``seconds`` it ran."""

    tag: T
    value: Any = None
    error: BaseException | None = None
    seconds: float = 0.0


class DeviceStage(Generic[T]):
    """Runs ``fn(*args)`` for each submitted batch in one background thread, in order.

    Args:
        fn: The scorer call (``(batch, positions) -> (scores, maps)``).
        depth: Batches allowed in the stage at once (running or waiting to run).
    """

    def __init__(self, fn: Callable[..., Any], depth: int = 2) -> None:
        self.fn = fn
        self.depth = max(1, depth)
        self._todo: queue.Queue[tuple[T, tuple[Any, ...]] | None] = queue.Queue()
        self._done: deque[BatchResult[T]] = deque()
        self._lock = threading.Lock()
        self._in_stage = 0
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        self._thread = threading.Thread(target=self._loop, name="medzsad-model", daemon=True)
        self._thread.start()

    @property
    def handle(self) -> int:
        """A file descriptor that becomes readable when a result is ready."""
        return self._read_fd

    def free(self) -> bool:
        """Whether another batch may be submitted."""
        with self._lock:
            return self._in_stage < self.depth

    def busy(self) -> int:
        """Batches submitted and not yet taken back with :meth:`done`."""
        with self._lock:
            return self._in_stage

    def submit(self, tag: T, *args: Any) -> None:
        """Queue ``fn(*args)``; its result comes back tagged ``tag``."""
        with self._lock:
            self._in_stage += 1
        self._todo.put((tag, args))

    def done(self) -> list[BatchResult[T]]:
        """Results ready now, in submission order (never blocks)."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read_fd, 4096):
                pass
        out: list[BatchResult[T]] = []
        with self._lock:
            while self._done:
                out.append(self._done.popleft())
            self._in_stage -= len(out)
        return out

    def close(self, wait: bool = True) -> None:
        """Stop the thread after the batch it is running (queued batches are dropped).

        ``wait=False`` (an interrupted run) returns at once; the thread finishes its batch on its
        own, then closes the wake-up pipe (it alone closes it, so it never writes to a reused fd).
        """
        with contextlib.suppress(queue.Empty):
            while True:
                self._todo.get_nowait()
        self._todo.put(None)
        if wait:
            self._thread.join()

    def _loop(self) -> None:
        while True:
            item = self._todo.get()
            if item is None:
                for fd in (self._read_fd, self._write_fd):
                    with contextlib.suppress(OSError):
                        os.close(fd)
                return
            tag, args = item
            t = time.perf_counter()
            try:
                result = BatchResult(tag, value=self.fn(*args), seconds=time.perf_counter() - t)
            except Exception as e:  # a model failure fails the studies of this batch, not the run
                result = BatchResult(tag, error=e, seconds=time.perf_counter() - t)
            with self._lock:
                self._done.append(result)
            with contextlib.suppress(OSError):
                os.write(self._write_fd, b"x")
