"""The Ray executor: studies handed out one by one to Ray actors that each keep a model.

``executor: {kind: ray, address: auto|local|ray://host:port, workers: N, gpus_per_worker: 1,
cpus_per_worker: K, max_retries: 1}``. Every actor builds the model once (on its GPU when
``gpus_per_worker`` > 0) and then, for each study it is given, reads, preprocesses, scores,
post-processes and writes it (:class:`StudyWorker`). Studies are dispatched dynamically, at most
``inflight`` per actor, so a slow study never idles the others; there is no static sharding.

The driver alone owns the ledger and the cohort tables: it marks a study ``running`` before handing
it out (``begin``) and records what comes back, in job order (the runner's loop). Workers never
open the ledger.

Output folder:
- *shared* (the actors see the driver's ``output.dir``, e.g. NFS or one machine): each actor writes
  ``studies/<id>.partial-<pid>/`` and renames it onto ``studies/<id>/``, the same protocol as the
  local executor.
- *not shared* (detected: an actor cannot read a token file the driver just wrote there): the actor
  writes into a private temporary folder and returns the finished study folder as a tar archive;
  the driver unpacks it into its own partial folder and renames it into place.

Faults: an actor process that dies mid-study (``kill -9``, out of memory, segfault) is restarted by
Ray (it rebuilds its model) and the study is handed out again, to whichever actor is free; its
partial folder is removed first. A study that kills its worker more than ``max_retries`` times is
recorded as failed with that reason. A killed driver leaves ``running`` rows: the next run redoes
them, as with the local executor.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import shutil
import tarfile
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medzsad.cohort.executor import Failed, Loaded, Ready, Scored
from medzsad.cohort.loading import StudyLoader
from medzsad.cohort.scorer import InputSpec, SliceScorer, build_scorer
from medzsad.cohort.study_job import FinishPlace, ModelFacts, StudyFinish, StudyJob, finish_study
from medzsad.cohort.study_writer import PARTIAL_MARK, publish
from medzsad.config import CohortConfig
from medzsad.errors import ConfigError, MedzsadError

__all__ = ["RayExecutor", "StudyWorker", "RaySettings"]

log = logging.getLogger(__name__)

_TOKEN_NAME = ".medzsad-shared-check"


@dataclass(frozen=True)
class RaySettings:
    """Where and how many Ray actors run (from ``executor:``).

    Attributes:
        address: ``auto`` (a running cluster, else a local one), ``local`` (always a new local
            cluster on this machine) or ``ray://host:port`` (Ray Client).
        workers: Actors (one model each).
        gpus_per_worker: GPUs each actor reserves (0: CPU).
        cpus_per_worker: CPUs each actor reserves.
        max_retries: Times a study is handed out again after its worker died.
        inflight: Studies queued at one actor at a time (2 overlaps one study's CPU work with the
            next one's scoring).
    """

    address: str = "auto"
    workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    max_retries: int = 1
    inflight: int = 2

    @classmethod
    def of(cls, cfg: CohortConfig) -> RaySettings:
        """The settings of a cohort's ``executor`` section."""
        ex = cfg.executor
        return cls(
            address=ex.address,
            workers=max(1, ex.n_workers),
            gpus_per_worker=ex.gpus_per_worker,
            cpus_per_worker=ex.cpus_per_worker,
            max_retries=ex.max_retries,
        )


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise ConfigError(
            "executor kind 'ray' needs Ray: pip install 'medzsad[ray]' (or use executor: local)"
        ) from e
    return ray


def _init_ray(ray: Any, address: str, settings: RaySettings) -> bool:
    """Connect to (or start) a Ray cluster. Returns True when this call started it."""
    if ray.is_initialized():
        return False
    common = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address == "local":
        ray.init(num_cpus=max(1, int(np.ceil(settings.workers * settings.cpus_per_worker))), **common)
    elif address == "auto":
        try:
            ray.init(address="auto", **common)
        except (ConnectionError, RuntimeError):
            ray.init(**common)  # no running cluster: a local one
    else:
        ray.init(address=address, **common)
    return True


class StudyWorker:
    """The body of one Ray actor: a model, kept, and the whole of a study's work.

    Args:
        cfg: The cohort (``output.dir`` is replaced by a private folder when not shared).
        loader: Study loader (picklable).
        scorer: A model to use instead of building one (tests); ``None`` builds ``cfg.model``.
        shared: Whether the driver's output folder is visible here.
    """

    def __init__(
        self, cfg: CohortConfig, loader: StudyLoader, scorer: SliceScorer | None, shared: bool
    ) -> None:
        self.local_root: Path | None = None
        if not shared:
            self.local_root = Path(tempfile.mkdtemp(prefix="medzsad-ray-"))
            cfg = cfg.with_overrides(**{"output.dir": str(self.local_root)})
            (self.local_root / "studies").mkdir(parents=True, exist_ok=True)
        self.cfg, self.loader = cfg, loader
        self.model = scorer if scorer is not None else build_scorer(cfg)
        self.spec = InputSpec.of(self.model)
        self.facts = ModelFacts.of(self.model)

    def pid(self) -> int:
        """This actor's process id (the driver uses it to find a dead actor's partial folder)."""
        return os.getpid()

    def sees(self, path: str, token: str) -> bool:
        """Whether ``path`` exists here with ``token`` inside (is the output folder shared?)."""
        try:
            return Path(path).read_text(encoding="utf-8") == token
        except OSError:
            return False

    def _score(self, images: Any) -> Scored:
        t = time.perf_counter()
        scores, maps = [], []
        bs = self.cfg.model.batch_size
        for a in range(0, int(images.shape[0]), bs):
            res = self.model.score(images[a : a + bs])
            scores.append(res.image_scores.detach().float().cpu().numpy())
            maps.append(res.maps.detach().float().cpu().numpy())
        if not scores:
            s = self.spec.image_size
            return Scored(np.zeros(0, np.float32), np.zeros((0, s, s), np.float32), 0.0)
        return Scored(np.concatenate(scores), np.concatenate(maps), time.perf_counter() - t)

    def process(self, job: StudyJob, where: FinishPlace) -> tuple[StudyFinish, bytes | None]:
        """Read, score, post-process and write one study; with a private folder, also its files (tar).

        Args:
            job: The study.
            where: Its partial folder (claimed by the driver, named with this process's pid) and
                whether an existing folder of the same name may be replaced.
        """
        loaded: Loaded[Any]
        scored: Scored | None = None
        try:
            prepared = self.loader(job.study, self.cfg, self.spec)
            scored = self._score(prepared.images)
            loaded = Ready(prepared)
        except Exception as e:  # recorded by finish_study as a failed load/score
            loaded = Failed(e)
        if self.local_root is not None:  # private folder: write here, send the files back
            where = FinishPlace(self.local_root / "studies" / where.partial.name, True)
        finish = finish_study(job, loaded, scored, self.cfg, self.facts, where)
        if self.local_root is None or finish.status != "done":
            return finish, None
        folder = self.local_root / "studies" / job.safe_id
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(folder, arcname=job.safe_id)
        shutil.rmtree(folder, ignore_errors=True)
        return finish, buf.getvalue()


def _unpack(where: FinishPlace, safe_id: str, payload: bytes) -> None:
    """Unpack a study folder sent by a worker into its claimed partial folder, then rename it into place."""
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


def _remove_partials(studies_dir: Path, safe_id: str, pids: set[int]) -> None:
    """Remove what dead workers left of a study (``<id>.partial-<pid>`` of those processes only)."""
    for pid in pids:
        shutil.rmtree(studies_dir / f"{safe_id}{PARTIAL_MARK}{pid}", ignore_errors=True)


@dataclass
class _Dispatch:
    """The driver's book-keeping of one run: queue, studies at each actor, deaths, results."""

    n_jobs: int
    n_actors: int
    todo: deque[int] = field(init=False)
    inflight: dict[Any, tuple[int, int]] = field(default_factory=dict)
    load: list[int] = field(init=False)
    restarting: dict[int, Any] = field(default_factory=dict)
    deaths: dict[int, int] = field(default_factory=dict)
    finished: dict[int, StudyFinish] = field(default_factory=dict)
    places: dict[int, FinishPlace] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.todo = deque(range(self.n_jobs))
        self.load = [0] * self.n_actors


class RayExecutor:
    """Runs studies on Ray actors (see the module docstring).

    Args:
        cfg: The cohort.
        loader: Study loader (picklable).
        settings: Actors and cluster.
        scorer: A model to ship to the actors instead of building one there (tests).
    """

    def __init__(
        self,
        cfg: CohortConfig,
        loader: StudyLoader,
        scorer: SliceScorer | None = None,
        settings: RaySettings | None = None,
    ) -> None:
        self.cfg, self.loader, self.scorer = cfg, loader, scorer
        self.settings = settings or RaySettings.of(cfg)
        self.actor_pids: list[int] = []  # current process of each actor (tests kill one)

    def _shared(self, ray: Any, probe: Any) -> bool:
        token = secrets.token_hex(16)
        path = self.cfg.out_dir / _TOKEN_NAME
        path.write_text(token, encoding="utf-8")
        try:
            return bool(ray.get(probe.sees.remote(str(path.resolve()), token)))
        finally:
            path.unlink(missing_ok=True)

    def _actors(self, ray: Any) -> tuple[list[Any], bool]:
        s = self.settings
        cls = ray.remote(StudyWorker).options(
            num_cpus=s.cpus_per_worker,
            num_gpus=s.gpus_per_worker,
            max_restarts=-1,
            max_task_retries=0,
            max_concurrency=max(1, s.inflight),
        )
        scorer = ray.put(self.scorer) if self.scorer is not None else None
        # one actor first: it tells whether the output folder is shared (it is, on one machine)
        first = cls.remote(self.cfg, self.loader, scorer, True)
        shared = self._shared(ray, first)
        if not shared:
            ray.kill(first)
            first = cls.remote(self.cfg, self.loader, scorer, False)
            log.info("output folder not visible to the Ray workers: studies come back to the driver")
        actors = [first] + [cls.remote(self.cfg, self.loader, scorer, shared) for _ in range(s.workers - 1)]
        return actors, shared

    def run(
        self,
        jobs: Sequence[StudyJob],
        begin: Callable[[StudyJob, Path], FinishPlace],
        stop: threading.Event | None = None,
    ) -> Iterator[StudyFinish]:
        """Process ``jobs`` on the actors; yields one :class:`StudyFinish` per job, in job order.

        Args:
            jobs: The studies to run.
            begin: Called in this thread before a study is handed out, with the partial folder the
                actor will write (the runner marks the study running and claims the folder).
            stop: Once set, no further study is handed out; those not started come back ``cancelled``.
        """
        ray = _import_ray()
        started = _init_ray(ray, self.settings.address, self.settings)
        try:
            yield from self._run(ray, jobs, begin, stop or threading.Event())
        finally:
            if started:
                ray.shutdown()

    def _run(
        self,
        ray: Any,
        jobs: Sequence[StudyJob],
        begin: Callable[[StudyJob, Path], FinishPlace],
        stop: threading.Event,
    ) -> Iterator[StudyFinish]:
        actors, shared = self._actors(ray)
        self.actor_pids = [int(p) for p in ray.get([a.pid.remote() for a in actors])]
        state = _Dispatch(len(jobs), len(actors))
        nxt = 0
        while nxt < len(jobs):
            self._probe_restarts(ray, actors, state)
            self._dispatch(actors, jobs, begin, stop, state)
            if state.inflight:
                ready, _ = ray.wait(list(state.inflight), num_returns=1, timeout=1.0)
                for ref in ready:
                    self._collect(ray, ref, actors, jobs, state)
            elif state.todo:
                time.sleep(0.1)  # every actor is restarting
            while nxt in state.finished:
                yield state.finished.pop(nxt)
                nxt += 1

    def _dispatch(
        self,
        actors: list[Any],
        jobs: Sequence[StudyJob],
        begin: Callable[[StudyJob, Path], FinishPlace],
        stop: threading.Event,
        state: _Dispatch,
    ) -> None:
        """Hand studies to the least busy available actors (at most ``inflight`` each)."""
        while state.todo and not stop.is_set():
            up = [k for k in range(len(actors)) if k not in state.restarting]
            if not up:
                return
            a = min(up, key=lambda k: state.load[k])
            if state.load[a] >= self.settings.inflight:
                return
            i = state.todo.popleft()
            partial = self.cfg.out_dir / "studies" / f"{jobs[i].safe_id}{PARTIAL_MARK}{self.actor_pids[a]}"
            where = begin(jobs[i], partial)
            state.places[i] = where
            state.inflight[actors[a].process.remote(jobs[i], where)] = (i, a)
            state.load[a] += 1
        if stop.is_set():
            while state.todo:
                state.finished[state.todo.popleft()] = StudyFinish("cancelled")

    def _probe_restarts(self, ray: Any, actors: list[Any], state: _Dispatch) -> None:
        """An actor Ray is restarting is used again once it answers (with its new process id)."""
        from ray.exceptions import RayActorError

        for a, ref in list(state.restarting.items()):
            ready, _ = ray.wait([ref], timeout=0)
            if not ready:
                continue
            try:
                self.actor_pids[a] = int(ray.get(ref))
                del state.restarting[a]
            except RayActorError:  # still coming back
                state.restarting[a] = actors[a].pid.remote()

    def _collect(
        self, ray: Any, ref: Any, actors: list[Any], jobs: Sequence[StudyJob], state: _Dispatch
    ) -> None:
        from ray.exceptions import RayActorError, WorkerCrashedError

        i, a = state.inflight.pop(ref)
        state.load[a] -= 1
        try:
            finish, payload = ray.get(ref)
        except (RayActorError, WorkerCrashedError) as e:
            died = self._worker_died(i, a, jobs, e, state)
            if a not in state.restarting:
                state.restarting[a] = actors[a].pid.remote()
            if died is not None:
                state.finished[i] = died
            return
        if payload is not None:
            finish = self._receive(state.places[i], jobs[i], finish, payload)
        state.finished[i] = finish

    def _worker_died(
        self, i: int, a: int, jobs: Sequence[StudyJob], error: BaseException, state: _Dispatch
    ) -> StudyFinish | None:
        """A worker died during study ``i``: hand it out again, or fail it after too many deaths."""
        state.deaths[i] = state.deaths.get(i, 0) + 1
        _remove_partials(self.cfg.out_dir / "studies", jobs[i].safe_id, {self.actor_pids[a]})
        log.warning(
            "study %s: its Ray worker died (%s); attempt %d of %d",
            jobs[i].log_id,
            type(error).__name__,
            state.deaths[i],
            self.settings.max_retries + 1,
        )
        if state.deaths[i] > self.settings.max_retries:
            return StudyFinish(
                "failed",
                error=f"the study killed its worker process {state.deaths[i]} times "
                f"(last: {type(error).__name__})",
                stage="worker",
                error_type="WorkerDied",
            )
        state.todo.appendleft(i)
        return None

    def _receive(self, where: FinishPlace, job: StudyJob, finish: StudyFinish, payload: bytes) -> StudyFinish:
        try:
            _unpack(where, job.safe_id, payload)
        except (OSError, tarfile.TarError, MedzsadError) as e:
            return StudyFinish(
                "failed", error=f"cannot store the study sent by its worker: {e}", stage="write",
                error_type=type(e).__name__,
            )  # fmt: skip
        return finish
