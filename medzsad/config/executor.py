"""``executor:``: where and how studies run."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field

from medzsad.config._base import _Section


def default_workers() -> int:
    """Worker processes when ``executor.workers`` is not set: the usable cores minus one, at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not every platform has affinity
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


class ExecutorConfig(_Section):
    """Where studies run: ``local``, a pipeline in one machine; ``ray``, a Ray cluster (docs/scale-out.md).

    Studies are read, decoded and preprocessed in ``workers`` worker processes (each study in its own
    worker, under ``study_timeout_s`` and ``worker_memory_gb``), scored on the device in the main
    process in batches that mix studies, then post-processed and written by ``writers`` processes.
    """

    kind: Literal["local", "ray"] = "local"
    #: Ray only: ``auto`` (a running cluster, else a local one), ``local``, or ``ray://host:port``
    address: str = "auto"
    #: Ray only: GPUs and CPUs each actor reserves (one model per actor)
    gpus_per_worker: float = Field(default=0.0, ge=0)
    cpus_per_worker: float = Field(default=1.0, gt=0)
    #: Ray only: times a study is handed out again after its worker process died
    max_retries: int = Field(default=1, ge=0, le=10)
    #: worker processes that read and preprocess studies; None = cores - 1; 0 = in the main process
    workers: int | None = Field(default=None, ge=0, le=256)
    #: studies loaded and waiting for the model, on top of those being loaded (bounded queue)
    prefetch: int = Field(default=1, ge=0, le=64)
    #: processes that post-process and write scored studies; None = as many as ``workers`` (min 1)
    writers: int | None = Field(default=None, ge=1, le=256)
    #: scored studies waiting for a writer (bounded queue)
    write_queue: int = Field(default=2, ge=1, le=64)
    #: seconds a worker may spend reading and preprocessing one study before it is stopped
    study_timeout_s: float | None = Field(default=900.0, gt=0)
    #: address-space limit of each worker process (GiB, RLIMIT_AS); None = no limit
    worker_memory_gb: float | None = Field(default=None, gt=0)
    continue_on_error: bool = True

    @property
    def n_workers(self) -> int:
        """The number of worker processes (``workers`` or its default)."""
        return default_workers() if self.workers is None else self.workers

    @property
    def n_writers(self) -> int:
        """The number of writer processes (``writers`` or its default)."""
        return max(1, self.n_workers) if self.writers is None else self.writers
