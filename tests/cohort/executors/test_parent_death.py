"""Issue 22 item 17: worker and helper processes exit when the run's main process dies.

A run was killed (SIGKILL after a timeout) while a worker hung in a decoder; its fork server and
worker stayed alive, orphaned, one core at 100 % for minutes. Here ``medzsad run`` is started in a
session of its own, a worker is left sleeping (the test hook ``hang``) or blocked in a C call that
holds the GIL (``stuck``, as a hanging decoder), the main process is killed with SIGKILL mid-study,
and within bounded time no process of that session is left (zombies waiting for init count as gone).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import session_processes

from medzsad.cohort.executors.local.worker_pool import FAULT_ENV

from ..conftest import make_cohort, write_cohort_yaml


def _wait(condition, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds:g} s: {what}"
        time.sleep(0.2)


@pytest.mark.parametrize("fault", ["hang", "stuck"])
def test_killing_the_main_process_leaves_no_worker_or_helper_behind(tmp_path: Path, fault: str) -> None:
    data = tmp_path / "data"
    info = make_cohort(data, n_nifti=1, corrupt=False)
    shutil.copy(data / "vol0.nii.gz", data / "stuck-marker.nii.gz")
    manifest = Path(info["manifest"])
    manifest.write_text(manifest.read_text() + "stuck,stuck-marker.nii.gz,0,\n")  # the last study
    out = tmp_path / "out"
    extra = "executor: {workers: 1, writers: 1, study_timeout_s: 600}\n"
    cfg = write_cohort_yaml(tmp_path / "c.yaml", manifest, out, extra=extra)
    # slow-exit: the fork server's own exit takes 30 s (a loaded machine's interpreter shutdown)
    env = {**os.environ, FAULT_ENV: f"{fault}:stuck-marker,slow-exit"}
    run = subprocess.Popen(
        [sys.executable, "-m", "medzsad", "run", str(cfg), "--quiet"],
        env=env,
        start_new_session=True,  # its own session: every process it starts is found by session id
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    left: dict[int, str] = {}
    try:
        # the two other studies are written: the worker is now stuck on the last one
        _wait(lambda: len(list((out / "studies").glob("*/provenance.json"))) == 2, 240, "two studies done")
        time.sleep(2.0)
        before = session_processes(run.pid)
        assert len(before) >= 4, before  # main, fork server, resource tracker, the stuck worker (+ writer)
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
        # at once: the fork server is killed with the main process, and its children with it; it
        # used to wait for its interpreter's shutdown (seconds), while busy writers went on and
        # renamed finished studies into place after the kill
        deadline = time.monotonic() + 3
        while (left := session_processes(run.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, f"processes of the killed run still alive 3 s after the kill: {left}"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=30)
        for pid in session_processes(run.pid):  # only processes this test started (its run's session)
            os.kill(pid, signal.SIGKILL)
