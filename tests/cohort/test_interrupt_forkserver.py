"""Ctrl-C while the local pipeline's workers start: one line from the main process, no traceback.

A terminal's Ctrl-C signals the whole process group. The fork server imports its preload modules
(torch, monai: seconds) before it sets SIGINT to ``SIG_IGN``; a Ctrl-C in that window printed a
40-70 line ``KeyboardInterrupt`` traceback from the fork server after ``medzsad: interrupted``.
Here the window is made deterministic: a stand-in preload module tells the test it is being
imported, then waits for the test's go-ahead; the test sends SIGINT to the process group meanwhile.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import session_processes

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

_PRELOAD = """
import os, pathlib, time
pathlib.Path(os.environ["PRELOAD_STARTED"]).write_text(str(os.getpid()))
release = pathlib.Path(os.environ["PRELOAD_RELEASE"])
deadline = time.monotonic() + 60
while not release.exists() and time.monotonic() < deadline:  # "importing torch"
    time.sleep(0.02)
"""

# the main process: a pool started with the stand-in preload; Ctrl-C ends it as the CLI does
_MAIN = """
import sys
import types

import medzsad.cohort

# the pool needs none of what medzsad.cohort.executors/__init__.py imports (the model stack, seconds):
# an empty package in its place keeps this test fast (here and in the worker, which runs this file)
executors = types.ModuleType("medzsad.cohort.executors")
executors.__path__ = [medzsad.cohort.__path__[0] + "/executors"]
sys.modules[executors.__name__] = executors

from medzsad.cohort.executors.local import worker_pool

if __name__ == "__main__":
    worker_pool._PRELOAD = ["slow_preload"]
    try:
        with worker_pool.WorkerPool(2, None, None) as pool:
            pool.submit(0, int, ("7",), "a task")
            print(pool.wait(60))
    except KeyboardInterrupt:
        sys.stderr.write("medzsad: interrupted\\n")
        sys.exit(130)
"""


def _deaf_to_sigint(pid: int) -> bool:
    """Whether SIGINT is blocked or ignored in process ``pid``."""
    fields = dict(
        line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line
    )
    bit = 1 << (signal.SIGINT - 1)
    return bool((int(fields["SigBlk"], 16) | int(fields["SigIgn"], 16)) & bit)


def test_ctrl_c_while_the_fork_server_imports_prints_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "slow_preload.py").write_text(_PRELOAD)
    (tmp_path / "main.py").write_text(_MAIN)
    started, release = tmp_path / "started", tmp_path / "release"
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "PRELOAD_STARTED": str(started), "PRELOAD_RELEASE": str(release)}
    run = subprocess.Popen(
        [sys.executable, str(tmp_path / "main.py")],
        env=env,
        start_new_session=True,  # its own process group, signalled as a terminal's Ctrl-C signals one
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not started.exists() or not started.read_text():
            assert run.poll() is None and time.monotonic() < deadline, "the fork server did not start"
            time.sleep(0.02)
        deaf = _deaf_to_sigint(int(started.read_text()))  # the fork server's, while it imports
        os.killpg(run.pid, signal.SIGINT)  # the fork server is inside its preload import now
        assert run.wait(timeout=30) == 130  # the main process stops at once, not after the preload
        # the server finishes its preload, forks the worker asked for before the Ctrl-C (it finds the
        # run gone and exits), sees the run gone and exits
        release.write_text("")
        _out, err = run.communicate(timeout=60)  # stderr closes once the server and tracker exit
        assert err == "medzsad: interrupted\n"  # no traceback from the fork server
        assert deaf, "the fork server took SIGINT while it imported its preload"
        deadline = time.monotonic() + 30
        while (left := session_processes(run.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, f"processes of the interrupted run still alive: {left}"
    finally:
        release.write_text("")
        if run.poll() is None:
            run.kill()
            run.wait(timeout=30)
        for pid in session_processes(run.pid):  # only processes this test started (its own session)
            os.kill(pid, signal.SIGKILL)
