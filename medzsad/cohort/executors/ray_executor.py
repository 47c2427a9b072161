"""The Ray executor: studies handed out one by one to Ray actors that each keep a model.

``executor: {kind: ray, address: auto|local|ray://host:port, actors: N, gpus_per_actor: 1,
cpus_per_actor: K, max_retries: 1, study_timeout_s: 900}``. Every actor gets its model once from
the run's model source (built on its GPU when ``gpus_per_actor`` > 0) and runs each study it is
given through :func:`medzsad.study.finish.run_study`, the same study code every executor calls
(:mod:`medzsad.cohort.executors.ray_actor`). Studies are dispatched dynamically, at most
:data:`INFLIGHT` per actor, so a slow study never idles the others; there is no static sharding.

The driver alone owns the ledger and the cohort tables: it marks a study ``running`` before handing
it out (``hooks.begin``) and the runner records what comes back, in job order. Actors never open
the ledger.

Output folder:
- *shared* (the actors see the driver's ``output.dir``, e.g. NFS or one machine): each actor writes
  ``studies/<id>.partial-<pid>/`` and renames it onto ``studies/<id>/``, the same protocol as the
  local executor.
- *not shared* (detected: an actor cannot read a token file the driver just wrote there): the actor
  writes into a private temporary folder and returns the finished study folder as a tar archive;
  the driver unpacks it into its own partial folder and renames it into place.

Faults: an actor process that dies mid-study (``kill -9``, out of memory, segfault) is restarted by
Ray (it gets its model again) and the study is handed out again, to whichever actor is free; its
partial folder is removed first. A study that kills its actor more than ``max_retries`` times is
recorded as failed with that reason. A study still running ``study_timeout_s`` after it started on
its actor fails with that reason: its actor is restarted (Ray cannot stop one call) and the other
study it held is handed out again, without counting against that study. An actor runs its calls one
after the other, so the clock of a study queued behind another at the same actor starts when that
one ends (the driver sees the end), not when it was handed out. A killed driver leaves
``running`` rows: the next run redoes them, as with the local executor.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import tarfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medzsad.cohort.executors.base import RunHooks, StudyWork
from medzsad.cohort.executors.ray_actor import StudyWorker, import_ray, init_ray, unpack_study
from medzsad.config import RayExecutorConfig
from medzsad.errors import MedzsadError
from medzsad.study.outputs import PARTIAL_MARK
from medzsad.study.scorer import ScorerInfo
from medzsad.study.types import FinishPlace, StudyFinish, StudyJob

__all__ = ["RayExecutor", "INFLIGHT"]

log = logging.getLogger(__name__)

_TOKEN_NAME = ".medzsad-shared-check"
#: Studies at one actor at a time (2 overlaps one study's CPU work with the next one's scoring).
INFLIGHT = 2


def _remove_partials(studies_dir: Path, safe_id: str, pids: set[int]) -> None:
    """Remove what dead actors left of a study (``<id>.partial-<pid>`` of those processes only)."""
    for pid in pids:
        shutil.rmtree(studies_dir / f"{safe_id}{PARTIAL_MARK}{pid}", ignore_errors=True)


@dataclass
class _Dispatch:
    """The driver's book-keeping of one run: queue, studies at each actor, deaths, results."""

    n_jobs: int
    n_actors: int
    todo: deque[int] = field(init=False)
    # ref -> (job, actor, start): start is None while the call waits behind another at its actor
    inflight: dict[Any, tuple[int, int, float | None]] = field(default_factory=dict)
    load: list[int] = field(init=False)
    restarting: dict[int, Any] = field(default_factory=dict)
    deaths: dict[int, int] = field(default_factory=dict)
    spared: set[Any] = field(default_factory=set)  # calls lost to another study's timeout
    finished: dict[int, StudyFinish] = field(default_factory=dict)
    places: dict[int, FinishPlace] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.todo = deque(range(self.n_jobs))
        self.load = [0] * self.n_actors

    def start_next(self, actor: int, now: float) -> None:
        """A call at ``actor`` ended: the one queued behind it there starts now (calls run in order)."""
        for ref, (i, a, start) in self.inflight.items():
            if a == actor and start is None:
                self.inflight[ref] = (i, a, now)
                return


class RayExecutor:
    """Runs studies on Ray actors (see the module docstring).

    Args:
        settings: The cohort's ``executor`` section (kind ``ray``).
    """

    def __init__(self, settings: RayExecutorConfig) -> None:
        self.settings = settings
        self.actor_pids: list[int] = []  # current process of each actor (tests kill one)
        self.model_info: ScorerInfo | None = None
        self._out: Path = Path(".")

    def run(
        self,
        jobs: Sequence[StudyJob],
        work: StudyWork,
        hooks: RunHooks,
        stop: threading.Event | None = None,
    ) -> Iterator[StudyFinish]:
        """See :meth:`medzsad.cohort.executors.base.Executor.run`."""
        ray = import_ray()
        started = init_ray(ray, self.settings)
        self._out = work.cfg.out_dir
        try:
            yield from self._run(ray, jobs, work, hooks, stop or threading.Event())
        finally:
            if started:
                ray.shutdown()

    def _shared(self, ray: Any, probe: Any) -> bool:
        token = secrets.token_hex(16)
        path = self._out / _TOKEN_NAME
        path.write_text(token, encoding="utf-8")
        try:
            return bool(ray.get(probe.sees.remote(str(path.resolve()), token)))
        finally:
            path.unlink(missing_ok=True)

    def _actors(self, ray: Any, work: StudyWork) -> list[Any]:
        s = self.settings
        cls = ray.remote(StudyWorker).options(
            num_cpus=s.cpus_per_actor,
            num_gpus=s.gpus_per_actor,
            max_restarts=-1,
            max_task_retries=0,
            max_concurrency=INFLIGHT,
        )
        shipped = ray.put(work)
        # one actor first: it tells whether the output folder is shared (it is, on one machine)
        first = cls.remote(shipped, True)
        shared = self._shared(ray, first)
        if not shared:
            ray.kill(first)
            first = cls.remote(shipped, False)
            log.info("output folder not visible to the Ray actors: studies come back to the driver")
        self.model_info = ray.get(first.info.remote())
        return [first] + [cls.remote(shipped, shared) for _ in range(s.actors - 1)]

    def _run(
        self, ray: Any, jobs: Sequence[StudyJob], work: StudyWork, hooks: RunHooks, stop: threading.Event
    ) -> Iterator[StudyFinish]:
        actors = self._actors(ray, work)
        self.actor_pids = [int(p) for p in ray.get([a.pid.remote() for a in actors])]
        state = _Dispatch(len(jobs), len(actors))
        nxt = 0
        while nxt < len(jobs):
            self._probe_restarts(ray, actors, state)
            self._dispatch(actors, jobs, hooks, stop, state)
            if state.inflight:
                ready, _ = ray.wait(list(state.inflight), num_returns=1, timeout=1.0)
                for ref in ready:
                    self._collect(ray, ref, actors, jobs, state)
                self._time_out(ray, actors, jobs, state)
            elif state.todo:
                time.sleep(0.1)  # every actor is restarting
            while nxt in state.finished:
                yield state.finished.pop(nxt)
                nxt += 1

    def _dispatch(
        self,
        actors: list[Any],
        jobs: Sequence[StudyJob],
        hooks: RunHooks,
        stop: threading.Event,
        state: _Dispatch,
    ) -> None:
        """Hand studies to the least busy available actors (at most :data:`INFLIGHT` each)."""
        while state.todo and not stop.is_set():
            up = [k for k in range(len(actors)) if k not in state.restarting]
            if not up:
                return
            a = min(up, key=lambda k: state.load[k])
            if state.load[a] >= INFLIGHT:
                return
            i = state.todo.popleft()
            partial = self._out / "studies" / f"{jobs[i].safe_id}{PARTIAL_MARK}{self.actor_pids[a]}"
            where = hooks.begin(jobs[i], partial)
            state.places[i] = where
            start = time.monotonic() if state.load[a] == 0 else None  # else queued behind another
            state.inflight[actors[a].process.remote(jobs[i], where)] = (i, a, start)
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

    def _time_out(self, ray: Any, actors: list[Any], jobs: Sequence[StudyJob], state: _Dispatch) -> None:
        """Fail studies past ``study_timeout_s``; restart their actors, sparing the other studies there."""
        limit = self.settings.study_timeout_s
        if limit is None:
            return
        now = time.monotonic()
        for ref, (i, a, start) in list(state.inflight.items()):
            if start is None or now - start <= limit or ref in state.spared:
                continue  # queued, in time, or lost with an actor just restarted (handed out again)
            del state.inflight[ref]
            state.load[a] -= 1
            state.spared |= {r for r, (_, b, _) in state.inflight.items() if b == a}
            _remove_partials(self._out / "studies", jobs[i].safe_id, {self.actor_pids[a]})
            log.warning("study %s: still running after %g s on its Ray actor; stopped", jobs[i].log_id, limit)
            state.finished[i] = StudyFinish(
                "failed",
                error=f"the study took longer than executor.study_timeout_s ({limit:g} s) on its Ray "
                "actor and was stopped; raise study_timeout_s if such studies are expected",
                stage="worker",
                error_type="StudyTimeout",
            )
            ray.kill(actors[a], no_restart=False)
            state.restarting[a] = actors[a].pid.remote()

    def _collect(
        self, ray: Any, ref: Any, actors: list[Any], jobs: Sequence[StudyJob], state: _Dispatch
    ) -> None:
        from ray.exceptions import RayActorError, WorkerCrashedError

        i, a, _start = state.inflight.pop(ref)
        state.load[a] -= 1
        state.start_next(a, time.monotonic())
        try:
            finish, payload = ray.get(ref)
        except (RayActorError, WorkerCrashedError) as e:
            died = self._actor_died(i, a, jobs, e, state, counted=ref not in state.spared)
            state.spared.discard(ref)
            if a not in state.restarting:
                state.restarting[a] = actors[a].pid.remote()
            if died is not None:
                state.finished[i] = died
            return
        if payload is not None:
            finish = self._receive(state.places[i], jobs[i], finish, payload)
        state.finished[i] = finish

    def _actor_died(
        self,
        i: int,
        a: int,
        jobs: Sequence[StudyJob],
        error: BaseException,
        state: _Dispatch,
        counted: bool = True,
    ) -> StudyFinish | None:
        """An actor died during study ``i``: hand it out again, or fail it after too many deaths."""
        _remove_partials(self._out / "studies", jobs[i].safe_id, {self.actor_pids[a]})
        if counted:
            state.deaths[i] = state.deaths.get(i, 0) + 1
            log.warning(
                "study %s: its Ray actor died (%s); attempt %d of %d",
                jobs[i].log_id,
                type(error).__name__,
                state.deaths[i],
                self.settings.max_retries + 1,
            )
        if state.deaths.get(i, 0) > self.settings.max_retries:
            return StudyFinish(
                "failed",
                error=f"the study killed its actor process {state.deaths[i]} times "
                f"(last: {type(error).__name__})",
                stage="worker",
                error_type="WorkerDied",
            )
        state.todo.appendleft(i)
        return None

    def _receive(self, where: FinishPlace, job: StudyJob, finish: StudyFinish, payload: bytes) -> StudyFinish:
        try:
            unpack_study(where, job.safe_id, payload)
        except (OSError, tarfile.TarError, MedzsadError) as e:
            return StudyFinish(
                "failed", error=f"cannot store the study sent by its actor: {e}", stage="write",
                error_type=type(e).__name__,
            )  # fmt: skip
        return finish
