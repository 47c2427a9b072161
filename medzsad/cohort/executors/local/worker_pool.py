"""A pool of worker processes that isolates each task: one crash, hang or memory bomb fails one task.

Each worker is a process of the ``forkserver`` context (``fork`` is unsafe once torch has started
threads; the fork server imports medzsad once, so a replacement worker starts in a fraction of a
second). A worker runs one task at a time, under an address-space limit (``RLIMIT_AS``) set when it
starts; the pool watches its pipe, its process sentinel and the task's deadline:

* the worker returns a value or raises an exception: the task's outcome is that value or exception
  (an exception that cannot be pickled becomes an :class:`~medzsad.errors.InputError` with its text);
* it runs out of memory (``MemoryError`` under the limit): :class:`StudyWorkerError` ``memory``;
* a library raises a ``BaseException`` that is not an ``Exception`` (a Rust ``PanicException``):
  :class:`StudyWorkerError` ``panic``;
* the process dies (segfault, abort, the kernel's OOM killer): :class:`StudyWorkerError` ``crashed``
  naming the signal, and the worker is replaced;
* the task runs past ``timeout_s``: the worker is killed and replaced, :class:`StudyWorkerError`
  ``timeout``.

Workers never outlive the run, and Ctrl-C is the main process's alone
(:mod:`medzsad.cohort.executors.local.process_life`).

Test hook (tests only): ``MEDZSAD_TEST_WORKER_FAULT="segv:MARK,hang:MARK,stuck:MARK,bomb:MARK,panic:MARK"``
makes a worker kill itself with SIGSEGV, sleep forever, block forever in a C call that holds the GIL
(as a hanging decoder does), allocate without bound, or raise a bare ``BaseException`` when the
task's description contains ``MARK``. It is read when the pool starts and does nothing unless set.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing as mp
import os
import pickle
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

import numpy as np

from medzsad.cohort.executors.local import transport
from medzsad.cohort.executors.local.process_life import die_with_the_run, ensure_forkserver, sigint_blocked
from medzsad.errors import InputError, StudyWorkerError, keep_traceback
from medzsad.process_death import FAULT_ENV

__all__ = ["WorkerPool", "TaskOutcome", "FAULT_ENV", "wait_any"]

log = logging.getLogger(__name__)

#: The fork server dies with the main process first, then imports what every worker needs.
_PRELOAD = ["medzsad.forkserver_preload", "medzsad.study.loading"]
_GIB = 1024**3


@dataclass(frozen=True)
class TaskOutcome:
    """What a task gave: ``value`` or ``error`` (exactly one is meaningful)."""

    key: int
    value: Any = None
    error: BaseException | None = None


@dataclass
class _Slot:
    process: BaseProcess
    conn: Connection
    key: int | None = None
    what: str = ""
    deadline: float = float("inf")


def _signal_name(exitcode: int | None) -> str:
    if exitcode is None or exitcode >= 0:
        return f"exit code {exitcode}"
    try:
        return f"signal {-exitcode}, {signal.Signals(-exitcode).name}"
    except ValueError:
        return f"signal {-exitcode}"


def _apply_fault(faults: str, what: str) -> None:
    """The test-only hook: misbehave on purpose when ``what`` contains a marker."""
    for item in faults.split(","):
        kind, _, mark = item.partition(":")
        if not mark or mark not in what:
            continue
        if kind == "segv":
            os.kill(os.getpid(), signal.SIGSEGV)
        elif kind == "hang":
            while True:
                time.sleep(3600)
        elif kind == "stuck":
            ctypes.PyDLL(None).pause()  # never returns; the GIL stays held (no Python code runs)
        elif kind == "bomb":
            hog = []  # address space, not touched: the limit is reached without using the machine's memory
            while True:
                hog.append(np.empty(256 * 1024 * 1024, np.uint8))
        elif kind == "panic":
            raise BaseException(f"test panic while {what}")  # noqa: TRY002 - a stand-in for PanicException


def _limit_memory(memory_gb: float | None) -> None:
    if memory_gb is None:
        return
    import resource

    limit = int(memory_gb * _GIB)
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _portable(error: BaseException, what: str) -> BaseException:
    """``error`` if it survives pickling, else an :class:`InputError` carrying its type and text."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        plain = InputError(f"{type(error).__name__}: {error}")
        keep_traceback(plain, of=error)
        return plain
    return error


def _send(conn: Connection, obj: object) -> None:
    """Worker -> main process: arrays through this worker's pool segments (set at start)."""
    transport.send(conn, obj, transport.process_prefix())


def _run_one(
    conn: Connection, task: tuple[Callable[..., Any], tuple[Any, ...], str], faults: str, limit: str
) -> None:
    # Every outcome is sent after the ``except`` blocks, from an error whose tracebacks are dropped:
    # a traceback keeps the task's frames, and all they allocated, alive, so that reporting a task
    # that had filled the memory limit in small pieces ran out of memory too and the worker died
    # ("crashed (exit code 1)"), also when a reader had turned the MemoryError into a typed error.
    fn, args, what = task
    error: BaseException | None = None
    try:
        if faults:
            _apply_fault(faults, what)
        value = fn(*args)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # a library panic (pyo3 PanicException) must not take the worker down
        error = e
    if error is None:
        try:
            _send(conn, ("ok", value))
            return
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            error = InputError(f"the result of {what} cannot be sent to the main process: {e}")
        except MemoryError:
            error = StudyWorkerError(f"worker ran out of memory{limit} sending the result ({what})", "memory")
        del value
    _send(conn, ("err", _reported(error, what, limit)))


def _reported(error: BaseException, what: str, limit: str) -> BaseException:
    """What the main process is told of a task's exception, once its frames are released."""
    keep_traceback(error)  # the text, for -vv --show-ids in the main process
    chain: list[BaseException | None] = [error]
    seen: set[int] = set()
    while chain:
        e = chain.pop()
        if e is not None and id(e) not in seen:
            seen.add(id(e))
            e.__traceback__ = None
            chain += [e.__cause__, e.__context__]
    if isinstance(error, MemoryError):
        return StudyWorkerError(f"worker ran out of memory{limit} while {what}", "memory")
    if isinstance(error, Exception):
        return _portable(error, what)
    return StudyWorkerError(f"a library panicked while {what}: {type(error).__name__}: {error}", "panic")


def _worker_main(
    conn: Connection, memory_gb: float | None, faults: str, env: dict[str, str], prefix: str
) -> None:
    """Entry of a worker process: run tasks until the pool closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    die_with_the_run()
    # the fork server's environment is the one it started with: use the pool owner's, as spawn would
    os.environ.clear()
    os.environ.update(env)
    # the main process reports every outcome; without this, library warnings would reach stderr
    # through logging's last-resort handler, bypassing the CLI's --quiet and format
    logging.getLogger().addHandler(logging.NullHandler())
    _limit_memory(memory_gb)
    transport.set_process_prefix(prefix)  # results built in shared memory are sent without a copy
    limit = f" (executor.worker_memory_gb: {memory_gb:g})" if memory_gb is not None else ""
    with contextlib.suppress(Exception):
        import torch

        torch.set_num_threads(1)  # one core per worker: the pool is the parallelism
    while True:
        try:
            msg = transport.recv(conn)
        except (EOFError, OSError):
            return  # the main process is gone
        if msg is None:
            return
        try:
            _run_one(conn, msg, faults, limit)
        except (BrokenPipeError, EOFError, OSError):
            return


class WorkerPool:
    """``n`` isolated worker processes running one task each.

    Args:
        n: Number of workers (>= 1).
        timeout_s: Seconds a task may run before its worker is killed (``None``: no limit).
        memory_gb: Address-space limit of every worker in GiB (``None``: no limit).
        context: ``multiprocessing`` start method (``forkserver`` or ``spawn``).
    """

    def __init__(
        self, n: int, timeout_s: float | None, memory_gb: float | None, context: str = "forkserver"
    ) -> None:
        self.timeout_s = timeout_s
        self.memory_gb = memory_gb
        self._faults = os.environ.get(FAULT_ENV, "")
        transport.sweep_stale()
        self.prefix = transport.new_prefix()  # this pool's shared-memory segments, both directions
        self._ctx = mp.get_context(context)
        if context == "forkserver":
            self._ctx.set_forkserver_preload(_PRELOAD)  # type: ignore[attr-defined]
        self._slots: list[_Slot] = []
        try:
            for _ in range(max(1, n)):
                self._slots.append(self._start())
        except BaseException:  # Ctrl-C while the workers start: stop those started
            self.close()
            raise

    def _start(self) -> _Slot:
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(  # type: ignore[attr-defined]
            target=_worker_main,
            args=(child, self.memory_gb, self._faults, dict(os.environ), self.prefix),
            name="medzsad-worker",
            daemon=True,
        )
        if self._ctx.get_start_method() == "forkserver":
            ensure_forkserver()  # (re)started deaf to Ctrl-C; the wait for its preload is not
            process.start()
        else:
            with sigint_blocked():  # spawn and fork do not wait for the child: a short block
                process.start()
        child.close()
        return _Slot(process, parent)

    @property
    def size(self) -> int:
        """Number of workers."""
        return len(self._slots)

    def idle(self) -> int:
        """Workers without a task."""
        return sum(s.key is None for s in self._slots)

    def busy(self) -> int:
        """Workers running a task."""
        return self.size - self.idle()

    def handles(self) -> tuple[list[Any], float]:
        """Pipes and process sentinels of the busy workers, and the earliest task deadline."""
        busy = [s for s in self._slots if s.key is not None]
        deadline = min((s.deadline for s in busy), default=float("inf"))
        return [s.conn for s in busy] + [s.process.sentinel for s in busy], deadline

    def submit(self, key: int, fn: Callable[..., Any], args: tuple[Any, ...], what: str) -> None:
        """Give ``fn(*args)`` to an idle worker. ``what`` names the input in error messages.

        Raises:
            RuntimeError: No worker is idle.
        """
        slot = next((s for s in self._slots if s.key is None), None)
        if slot is None:
            raise RuntimeError("no idle worker")
        slot.key, slot.what = key, what
        slot.deadline = time.monotonic() + self.timeout_s if self.timeout_s is not None else float("inf")
        try:
            transport.send(slot.conn, (fn, args, what), self.prefix)
        except (BrokenPipeError, OSError):
            pass  # the worker died; wait() reports it as a crash

    def wait(self, timeout: float | None = None) -> list[TaskOutcome]:
        """Block until a task finishes or fails (or ``timeout`` seconds); returns those outcomes."""
        busy = [s for s in self._slots if s.key is not None]
        if not busy:
            return []
        now = time.monotonic()
        limit = min(s.deadline for s in busy) - now
        t = max(0.0, min(limit, timeout) if timeout is not None else limit)
        handles: list[Any] = [s.conn for s in busy] + [s.process.sentinel for s in busy]
        wait(handles, timeout=None if t == float("inf") else t)
        return [o for s in busy if (o := self._check(s)) is not None]

    def _check(self, slot: _Slot) -> TaskOutcome | None:
        key = slot.key
        assert key is not None  # noqa: S101 - only busy slots are checked
        outcome: TaskOutcome | None = None
        if slot.conn.poll():
            try:
                status, payload = transport.recv(slot.conn, keep_names=True)  # may be passed on
                outcome = TaskOutcome(
                    key, payload if status == "ok" else None, None if status == "ok" else payload
                )
            except (EOFError, OSError):
                outcome = None  # died while sending: a crash, below
            except Exception as e:  # an unpicklable value
                outcome = TaskOutcome(key, error=InputError(f"cannot receive the result of {slot.what}: {e}"))
        if outcome is None and not slot.process.is_alive():
            slot.process.join()
            reason = _signal_name(slot.process.exitcode)
            outcome = TaskOutcome(key, error=StudyWorkerError(f"worker crashed ({reason}) while {slot.what}"))
            self._replace(slot)
        elif outcome is None and time.monotonic() > slot.deadline:
            message = (
                f"worker stopped after {self.timeout_s:g} s (executor.study_timeout_s) while {slot.what}"
            )
            outcome = TaskOutcome(key, error=StudyWorkerError(message, "timeout"))
            self._replace(slot)
        if outcome is not None:
            slot.key, slot.what, slot.deadline = None, "", float("inf")
        return outcome

    def _replace(self, slot: _Slot) -> None:
        self._stop(slot)
        fresh = self._start()
        slot.process, slot.conn = fresh.process, fresh.conn

    @staticmethod
    def _stop(slot: _Slot) -> None:
        if slot.process.is_alive():
            slot.process.kill()
        slot.process.join(timeout=10)
        slot.conn.close()

    def close(self) -> None:
        """Stop every worker (idle ones are asked to exit, busy ones are killed)."""
        for s in self._slots:
            if s.key is None:
                with contextlib.suppress(OSError):
                    transport.send(s.conn, None, None)
        deadline = time.monotonic() + 5
        for s in self._slots:
            if s.key is None:
                s.process.join(timeout=max(0.0, deadline - time.monotonic()))
            self._stop(s)
        transport.remove_segments(self.prefix)  # sent by a worker that died before they were read

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_any(pools: list[WorkerPool], timeout: float | None, extra: Sequence[Any] = ()) -> None:
    """Block until a task of ``pools`` ends, a deadline passes, ``extra`` is readable, or ``timeout``.

    ``extra``: file descriptors or connections to wait on too (the model stage's wake-up pipe).
    """
    handles: list[Any] = list(extra)
    deadline = float("inf")
    for p in pools:
        h, d = p.handles()
        handles += h
        deadline = min(deadline, d)
    if not handles:
        return
    t = deadline - time.monotonic()
    if timeout is not None:
        t = min(t, timeout)
    wait(handles, timeout=None if t == float("inf") else max(0.0, t))
