"""Executors: where a run's studies run. Each implements :class:`~.base.Executor` over :mod:`medzsad.study`.

- ``local``: :class:`~medzsad.cohort.executors.local.stages.LocalExecutor` (worker processes, a
  model thread, writer processes on one machine);
- ``ray``: :class:`~medzsad.cohort.executors.ray_executor.RayExecutor` (actors with a model each).
"""

from __future__ import annotations

from medzsad.cohort.executors.base import Executor
from medzsad.config import CohortConfig, RayExecutorConfig

__all__ = ["executor_for"]


def executor_for(cfg: CohortConfig) -> Executor:
    """The executor of a cohort's ``executor`` section (the one place that looks at its kind)."""
    if isinstance(cfg.executor, RayExecutorConfig):
        from medzsad.cohort.executors.ray_executor import RayExecutor  # Ray is an optional extra

        return RayExecutor(cfg.executor)
    from medzsad.cohort.executors.local.stages import LocalExecutor

    return LocalExecutor(cfg.executor, cfg.model.batch_size)
