"""Issue 22 item 15: a load that hangs cannot hang a default run; ``workers: 0`` says it has no deadline.

The local executor loads each study in a worker process under ``executor.study_timeout_s``; the
default (no ``executor`` section) has worker processes, so a loader that never returns fails its
study after the deadline and the run finishes. ``workers: 0`` loads in the main process, where a
load cannot be stopped: the run says so when it starts.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import pandas as pd
from slow_loaders import SLEEP_MARK, sleeping_loader

from medzsad.cohort.launch import run_cohort
from medzsad.config import LocalExecutorConfig, load_cohort

from ..conftest import make_cohort, write_cohort_yaml


def test_a_sleeping_loader_cannot_hang_a_default_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    info = make_cohort(data, n_nifti=1, corrupt=False)
    shutil.copy(data / "vol0.nii.gz", data / f"{SLEEP_MARK}.nii.gz")
    manifest = Path(info["manifest"])
    manifest.write_text(manifest.read_text() + f"asleep,{SLEEP_MARK}.nii.gz,0,\n")
    # only the deadline is set (short, for the test): workers, writers, memory keep their defaults
    cfg = load_cohort(write_cohort_yaml(tmp_path / "c.yaml", manifest, tmp_path / "out",
                                        extra="executor: {study_timeout_s: 4}\n"))  # fmt: skip
    assert isinstance(cfg.executor, LocalExecutorConfig) and cfg.executor.n_workers >= 1
    t0 = time.monotonic()
    summary = run_cohort(cfg, loader=sleeping_loader)
    assert time.monotonic() - t0 < 300  # not the loader's hour
    assert (summary.n_done, summary.n_failed) == (2, 1)
    errors = pd.read_csv(tmp_path / "out" / "errors.csv").set_index("study_id")
    assert errors.loc["asleep", "error_type"] == "StudyWorkerError"
    message = errors.loc["asleep", "message"]
    assert "worker stopped after 4 s (executor.study_timeout_s)" in message and SLEEP_MARK in message


def test_workers_0_says_loads_have_no_deadline(tmp_path: Path, caplog) -> None:
    info = make_cohort(tmp_path / "data", n_nifti=1, corrupt=False)
    cfg = write_cohort_yaml(tmp_path / "c.yaml", Path(info["manifest"]), tmp_path / "out",
                            extra="executor: {workers: 0}\n")  # fmt: skip
    with caplog.at_level(logging.WARNING):
        assert run_cohort(cfg).n_done == 2
    (said,) = [r.getMessage() for r in caplog.records if "workers: 0" in r.getMessage()]
    assert "study_timeout_s (900 s)" in said and "a load that hangs hangs the run" in said
