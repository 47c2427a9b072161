"""``executor:``: where and how studies run; the keys depend on the kind (``local`` or ``ray``).

The section is a union discriminated by ``kind``: each kind has exactly the keys it honours, so a
key of the other kind (``prefetch`` in a Ray section, ``actors`` in a local one) is refused when
the file is read, with one line naming the kind it belongs to.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import Field

from medzsad.config._base import _Section

__all__ = ["LocalExecutorConfig", "RayExecutorConfig", "ExecutorConfig", "default_workers", "EXECUTOR_KEYS"]


def default_workers() -> int:
    """Worker processes when ``executor.workers`` is not set: the usable cores minus one, at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not every platform has affinity
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


class LocalExecutorConfig(_Section):
    """One machine: ``workers`` processes read and preprocess, the main process scores, ``writers`` write.

    Studies are read, decoded and preprocessed in ``workers`` worker processes (each study in its own
    worker, under ``study_timeout_s`` and ``worker_memory_gb``), scored on the device in the main
    process in batches that mix studies, then post-processed and written by ``writers`` processes.
    """

    kind: Literal["local"] = "local"
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


class RayExecutorConfig(_Section):
    """A Ray cluster: ``actors`` Ray actors each keep a model and run whole studies (docs/scale-out.md)."""

    kind: Literal["ray"]
    #: ``auto`` (a running cluster, else a local one), ``local``, or ``ray://host:port``
    address: str = "auto"
    #: Ray actors, one model each
    actors: int = Field(default=1, ge=1, le=1024)
    #: GPUs and CPUs each actor reserves
    gpus_per_actor: float = Field(default=0.0, ge=0)
    cpus_per_actor: float = Field(default=1.0, gt=0)
    #: times a study is handed out again after its actor process died
    max_retries: int = Field(default=1, ge=0, le=10)
    #: seconds a study may take on its actor (read, score, write) before the actor is restarted
    #: and the study fails; None = no limit
    study_timeout_s: float | None = Field(default=900.0, gt=0)
    continue_on_error: bool = True


ExecutorConfig = Annotated[LocalExecutorConfig | RayExecutorConfig, Field(discriminator="kind")]

#: The keys of each kind (for the one-line refusal of a key of the other kind).
EXECUTOR_KEYS: dict[str, tuple[str, ...]] = {
    "local": tuple(LocalExecutorConfig.model_fields),
    "ray": tuple(RayExecutorConfig.model_fields),
}


def executor_shorthand(value: Any) -> Any:
    """``executor: local`` / ``executor: ray`` -> ``{kind: ...}``; a section without ``kind`` is local."""
    if isinstance(value, str):
        return {"kind": value}
    if isinstance(value, dict) and "kind" not in value:
        return {**value, "kind": "local"}
    return value
