"""How the pool's processes live and die with the run: parent death and Ctrl-C.

Workers never outlive the run: each asks the kernel to kill it when its parent (the fork server)
exits (``prctl(PR_SET_PDEATHSIG, SIGKILL)``, Linux; it works while a library call holds the
worker), and closes its copy of the fork server's "alive" pipe (:func:`die_with_the_run`). The fork
server asks the same of the kernel for the main process, from its preload
(:mod:`medzsad.forkserver_preload`, imported first, before torch: :mod:`medzsad.process_death`):
on the alive pipe's end-of-file alone it took seconds to exit (its interpreter's shutdown, torch's
included), and meanwhile writers finished their studies and renamed them into place after a
``kill -9`` of the run. The resource tracker then sees its pipe close and exits too.

Ctrl-C is the main process's alone: it stops the run and closes the pools. A terminal's Ctrl-C
signals the whole process group, so the fork server is started with SIGINT blocked (a blocked signal
mask is inherited through fork and exec; :func:`ensure_forkserver`): otherwise a Ctrl-C while it
imports its preload modules (torch, monai: seconds), before it sets SIGINT to ``SIG_IGN`` itself,
printed a ``KeyboardInterrupt`` traceback from it after ``medzsad: interrupted``. The workers it
forks inherit the mask, and ignore SIGINT from their first line. None of them needs SIGINT to exit.
"""

from __future__ import annotations

import contextlib
import multiprocessing.forkserver as mp_forkserver
import multiprocessing.resource_tracker as mp_resource_tracker
import os
import signal
from collections.abc import Iterator

from medzsad.process_death import PARENT_ENV, killed_with_parent

__all__ = ["die_with_the_run", "sigint_blocked", "ensure_forkserver"]


def die_with_the_run() -> None:
    """In a worker: exit when the run's main process dies (see the module docstring)."""
    killed_with_parent()  # the fork server; it dies with the main process
    server = getattr(mp_forkserver, "_forkserver", None)
    alive = getattr(server, "_forkserver_alive_fd", None)
    if isinstance(alive, int):  # a forkserver child: the server must not wait for this worker
        with contextlib.suppress(OSError):
            os.close(alive)
        server._forkserver_alive_fd = None  # type: ignore[union-attr]


@contextlib.contextmanager
def sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread: a process started meanwhile inherits the blocked mask.

    A Ctrl-C meanwhile is not lost: another thread of this process takes it, or this one when the
    mask is restored (``KeyboardInterrupt`` is raised then).
    """
    if not hasattr(signal, "pthread_sigmask"):  # not POSIX
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def ensure_forkserver() -> None:
    """Start the fork server if it is not running, deaf to Ctrl-C (see the module docstring).

    Only the start is covered: the first worker's start then waits (seconds) for the server's
    preload imports, and a Ctrl-C must interrupt that wait.
    """
    mp_resource_tracker.ensure_running()  # first: its own start unblocks SIGINT in this thread
    before = os.environ.get(PARENT_ENV)
    os.environ[PARENT_ENV] = str(os.getpid())  # inherited by the fork server only (started now)
    try:
        with sigint_blocked():
            mp_forkserver.ensure_running()
    finally:
        if before is None:
            os.environ.pop(PARENT_ENV, None)
        else:
            os.environ[PARENT_ENV] = before
