"""Processes that die with the run's main process (Linux ``prctl(PR_SET_PDEATHSIG)``); stdlib only.

Light on purpose: the fork server imports it first of its preload modules
(:mod:`medzsad.forkserver_preload`), so that it is killed with the main process from its first
second, not only once torch and MONAI are imported (seconds). The pool's use of it is described
in :mod:`medzsad.cohort.executors.local.process_life`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal

__all__ = ["FAULT_ENV", "PARENT_ENV", "killed_with_parent", "forkserver_dies_with_the_run"]

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
#: The main process's pid, in the environment of the fork server it starts (and only there).
PARENT_ENV = "MEDZSAD_FORKSERVER_PARENT"
#: Environment variable of the worker pool's test-only fault hook (``worker_pool`` module docstring).
FAULT_ENV = "MEDZSAD_TEST_WORKER_FAULT"


def killed_with_parent() -> None:
    """Ask the kernel to kill this process (SIGKILL) when its parent exits; Linux only."""
    with contextlib.suppress(Exception):  # elsewhere the pipes' end-of-file is the watch
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def forkserver_dies_with_the_run() -> None:
    """In the fork server: be killed by the kernel when the main process dies.

    A no-op in any other process: only the fork server has the main process's pid in
    :data:`PARENT_ENV` as its parent's.
    """
    if os.environ.get(PARENT_ENV) == str(os.getppid()):
        killed_with_parent()
