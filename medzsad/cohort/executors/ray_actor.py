"""The Ray side of the Ray executor: connecting to a cluster, and the body of one actor.

An actor (:class:`StudyWorker`) gets its model once from the run's model source and runs each study
it is handed through :func:`medzsad.study.finish.run_study`. When it cannot see the driver's output
folder it writes into a private folder and sends the finished study back as a tar archive, which
the driver unpacks with :func:`unpack_study`.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from medzsad.cohort.executors.base import StudyWork
from medzsad.config import RayExecutorConfig
from medzsad.errors import ConfigError
from medzsad.study.finish import run_study
from medzsad.study.outputs import publish
from medzsad.study.scorer import ScorerInfo
from medzsad.study.types import FinishPlace, StudyFinish, StudyJob

__all__ = ["import_ray", "init_ray", "StudyWorker", "unpack_study"]


def import_ray() -> Any:
    """The ``ray`` module.

    Raises:
        ConfigError: Ray is not installed.
    """
    try:
        import ray
    except ImportError as e:
        raise ConfigError(
            "executor kind 'ray' needs Ray: pip install 'medzsad[ray]' (or use executor: local)"
        ) from e
    return ray


def init_ray(ray: Any, settings: RayExecutorConfig) -> bool:
    """Connect to (or start) a Ray cluster. Returns True when this call started it."""
    if ray.is_initialized():
        return False
    common = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if settings.address == "local":
        ray.init(num_cpus=max(1, int(np.ceil(settings.actors * settings.cpus_per_actor))), **common)
    elif settings.address == "auto":
        try:
            ray.init(address="auto", **common)
        except (ConnectionError, RuntimeError):
            ray.init(**common)  # no running cluster: a local one
    else:
        ray.init(address=settings.address, **common)
    return True


class StudyWorker:
    """The body of one Ray actor: a model, kept, and :func:`~medzsad.study.finish.run_study` per study.

    Args:
        work: The cohort, loader and model source (``output.dir`` is replaced by a private folder
            when the driver's folder is not visible here).
        shared: Whether the driver's output folder is visible here.
    """

    def __init__(self, work: StudyWork, shared: bool) -> None:
        self.local_root: Path | None = None
        if not shared:
            self.local_root = Path(tempfile.mkdtemp(prefix="medzsad-ray-"))
            cfg = work.cfg.with_overrides(**{"output.dir": str(self.local_root)})
            work = StudyWork(cfg, work.loader, work.model)
            (self.local_root / "studies").mkdir(parents=True, exist_ok=True)
        self.work = work
        self.model = work.model.get()

    def pid(self) -> int:
        """This actor's process id (the driver uses it to find a dead actor's partial folder)."""
        return os.getpid()

    def info(self) -> ScorerInfo | None:
        """What the model built here is (the run's review page and ledger state it)."""
        return getattr(self.model, "info", None)

    def sees(self, path: str, token: str) -> bool:
        """Whether ``path`` exists here with ``token`` inside (is the output folder shared?)."""
        try:
            return Path(path).read_text(encoding="utf-8") == token
        except OSError:
            return False

    def process(self, job: StudyJob, where: FinishPlace) -> tuple[StudyFinish, bytes | None]:
        """Run one study; with a private folder, also return its files (tar).

        Args:
            job: The study.
            where: Its partial folder (claimed by the driver, named with this process's pid) and
                whether an existing folder of the same name may be replaced.
        """
        if self.local_root is not None:  # private folder: write here, send the files back
            where = FinishPlace(self.local_root / "studies" / where.partial.name, True)
        w = self.work
        finish = run_study(job, w.cfg, w.loader, self.model, where)
        if self.local_root is None or finish.status != "done":
            return finish, None
        folder = self.local_root / "studies" / job.safe_id
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(folder, arcname=job.safe_id)
        shutil.rmtree(folder, ignore_errors=True)
        return finish, buf.getvalue()


def unpack_study(where: FinishPlace, safe_id: str, payload: bytes) -> None:
    """Unpack a study folder sent by an actor into its claimed partial folder, then rename it into place."""
    partial = where.partial
    shutil.rmtree(partial, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{partial.name}-", dir=partial.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(payload), mode="r") as tar:
            tar.extractall(staging, filter="data")  # no absolute paths, links or '..' members
        os.replace(staging / safe_id, partial)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    publish(partial, partial.parent / safe_id, may_replace=where.may_replace)
