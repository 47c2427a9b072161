"""The Ray executor on a local Ray cluster (2 CPU actors, tiny model): same outputs as the local
executor, and a run survives the kill -9 of one actor's process with every study done once."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import ray

from medzsad.cohort.launch import run_cohort
from medzsad.cohort.ledger import Ledger, StudyState
from medzsad.config import parse_cohort

from ..conftest import TINY_MODEL, make_cohort

N_NIFTI = 5


def _cohort(root: Path, out: str, executor: str):
    make_cohort(root, n_nifti=N_NIFTI, corrupt=True)
    text = f"name: ray-test\ninputs: {{manifest: manifest.csv}}\n{TINY_MODEL}\noutput: {{dir: {out}}}\n"
    return parse_cohort(text + executor, base_dir=root)


def _digest(study_dir: Path) -> dict[str, str]:
    """sha256 of every file that does not record run times or paths (NIfTI outputs, CSVs)."""
    out = {}
    for p in sorted(study_dir.rglob("*")):
        if p.is_file() and p.suffix in (".gz", ".csv"):
            out[str(p.relative_to(study_dir))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _voxels(study_dir: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(nib.load(p).dataobj) for p in sorted(study_dir.glob("*.nii.gz"))}


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


RAY = "executor: {kind: ray, address: auto, actors: 2, cpus_per_actor: 1}\n"
LOCAL = "executor: {workers: 0}\n"


def _compare(a: Path, b: Path) -> None:
    ta = pd.read_csv(a / "studies.csv").sort_values("study_id").reset_index(drop=True)
    tb = pd.read_csv(b / "studies.csv").sort_values("study_id").reset_index(drop=True)
    assert list(ta["status"]) == list(tb["status"])
    np.testing.assert_allclose(ta["score"].to_numpy(float), tb["score"].to_numpy(float), atol=1e-6)
    dirs = sorted(p.name for p in (a / "studies").iterdir())
    assert dirs == sorted(p.name for p in (b / "studies").iterdir())
    for d in dirs:
        va, vb = _voxels(a / "studies" / d), _voxels(b / "studies" / d)
        assert va.keys() == vb.keys() and va
        for k in va:
            np.testing.assert_array_equal(va[k], vb[k], err_msg=f"{d}/{k}")


def test_ray_outputs_equal_local(tmp_path, ray_cluster):
    local = run_cohort(_cohort(tmp_path / "a", "out", LOCAL))
    dist = run_cohort(_cohort(tmp_path / "b", "out", RAY))
    assert (dist.n_done, dist.n_failed) == (local.n_done, local.n_failed) == (N_NIFTI + 1, 1)
    _compare(tmp_path / "a" / "out", tmp_path / "b" / "out")
    assert not [p for p in (tmp_path / "b" / "out" / "studies").iterdir() if ".partial-" in p.name]


def test_killed_actor_is_retried_and_nothing_is_lost(tmp_path, ray_cluster, monkeypatch):
    from medzsad.cohort.executors import ray_executor

    killed: list[int] = []
    original = ray_executor.RayExecutor._dispatch

    def dispatch_then_kill(self, actors, jobs, hooks, stop, state):
        original(self, actors, jobs, hooks, stop, state)
        if not killed and state.load[0] > 0:  # kill -9 the actor's process while it holds studies
            os.kill(self.actor_pids[0], signal.SIGKILL)
            killed.append(self.actor_pids[0])

    monkeypatch.setattr(ray_executor.RayExecutor, "_dispatch", dispatch_then_kill)
    summary = run_cohort(_cohort(tmp_path / "b", "out", RAY))
    assert killed
    assert (summary.n_done, summary.n_failed) == (N_NIFTI + 1, 1)
    out = tmp_path / "b" / "out"
    with Ledger(out / "ledger.sqlite") as ledger:
        rows = ledger.rows()
    assert sum(r.state is StudyState.DONE for r in rows) == N_NIFTI + 1
    assert max(r.attempts for r in rows) >= 2, "no study was handed out again"
    names = [p.name for p in (out / "studies").iterdir()]
    assert len(names) == len(set(names)) == N_NIFTI + 1
    assert not [n for n in names if ".partial-" in n]
    local = run_cohort(_cohort(tmp_path / "a", "out", LOCAL))
    assert local.n_done == N_NIFTI + 1
    _compare(tmp_path / "a" / "out", out)


def test_a_study_that_kills_its_worker_twice_fails_with_the_reason(tmp_path):
    """The driver's book-keeping alone (no cluster): the first death re-queues, the second fails."""
    from medzsad.cohort.executors.ray_executor import RayExecutor, _Dispatch
    from medzsad.config import RayExecutorConfig
    from medzsad.study.types import StudyJob

    cfg = _cohort(tmp_path / "c", "out", RAY)
    (cfg.out_dir / "studies").mkdir(parents=True)
    ex = RayExecutor(RayExecutorConfig(kind="ray", actors=1, max_retries=1))
    ex._out = cfg.out_dir
    ex.actor_pids = [4242]
    left = cfg.out_dir / "studies" / "s1.partial-4242"
    left.mkdir()
    job = StudyJob(study=None, safe_id="s1", input_hash="i", config_hash="c", log_id="s-1")  # type: ignore[arg-type]
    state = _Dispatch(1, 1)
    state.todo.clear()
    assert ex._actor_died(0, 0, [job], RuntimeError("killed"), state) is None
    assert list(state.todo) == [0] and not left.exists()  # handed out again, its partial folder gone
    state.todo.clear()
    failed = ex._actor_died(0, 0, [job], RuntimeError("killed"), state)
    assert failed is not None and failed.status == "failed" and failed.error_type == "WorkerDied"
    assert "killed its actor process 2 times" in failed.error and not state.todo


def test_a_study_past_study_timeout_s_fails_and_the_others_finish(tmp_path, ray_cluster):
    """Ray honours executor.study_timeout_s: the hung study fails, its actor restarts, nothing is lost."""
    from medzsad.study.loading import default_loader

    def hanging_loader(study, config, spec, allocate=None):  # pickled by value to the actors
        if study.study_id == "nifti-1":
            time.sleep(600)  # a decoder that never returns
        return default_loader(study, config, spec, allocate)

    make_cohort(tmp_path / "h", n_nifti=3, corrupt=False)
    text = (
        f"name: hang\ninputs: {{manifest: manifest.csv}}\n{TINY_MODEL}\noutput: {{dir: out}}\n"
        "executor: {kind: ray, address: auto, actors: 2, cpus_per_actor: 1, study_timeout_s: 30}\n"
    )
    t0 = time.monotonic()
    summary = run_cohort(parse_cohort(text, base_dir=tmp_path / "h"), loader=hanging_loader)
    assert time.monotonic() - t0 < 300
    assert (summary.n_done, summary.n_failed) == (3, 1)
    errors = pd.read_csv(tmp_path / "h" / "out" / "errors.csv")
    assert errors["study_id"].tolist() == ["nifti-1"] and errors["error_type"].tolist() == ["StudyTimeout"]
    assert "study_timeout_s (30 s)" in errors["message"][0]
    names = [p.name for p in (tmp_path / "h" / "out" / "studies").iterdir()]
    assert len(names) == 3 and "nifti-1" not in names and not [n for n in names if ".partial-" in n]


class _Clock:
    """``time.monotonic`` of the executor module, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Call:
    def __init__(self, name: str) -> None:
        self.name = name

    def remote(self, *args):
        return f"{self.name}:{args[0].safe_id if args else 'pid'}"


class _Actor:
    def __init__(self) -> None:
        self.process = _Call("process")
        self.pid = _Call("pid")


class _FakeRay:
    def __init__(self) -> None:
        self.killed = 0

    def kill(self, actor, no_restart=False):
        self.killed += 1

    def get(self, ref):
        from medzsad.study.types import StudyFinish

        return StudyFinish("done"), None


def _book_keeping(tmp_path, monkeypatch, n_jobs: int):
    """An executor with one actor and two studies dispatched to it, and the clock of its module."""
    import threading

    import medzsad.cohort.executors.ray_executor as rx
    from medzsad.config import RayExecutorConfig
    from medzsad.study.types import StudyJob

    clock = _Clock()
    monkeypatch.setattr(rx.time, "monotonic", clock)
    ex = rx.RayExecutor(RayExecutorConfig(kind="ray", actors=1, study_timeout_s=30))
    ex._out = tmp_path
    (tmp_path / "studies").mkdir()
    ex.actor_pids = [4242]
    jobs = [
        StudyJob(study=None, safe_id=f"s{i}", input_hash="i", config_hash="c", log_id=f"s-{i}")  # type: ignore[arg-type]
        for i in range(n_jobs)
    ]
    hooks = type("Hooks", (), {"begin": staticmethod(lambda job, partial: partial)})()
    state = rx._Dispatch(n_jobs, 1)
    actors = [_Actor()]
    ex._dispatch(actors, jobs, hooks, threading.Event(), state)  # type: ignore[arg-type]
    return ex, jobs, state, actors, clock


def test_a_study_queued_behind_an_overdue_one_is_handed_out_again_not_failed(tmp_path, monkeypatch):
    """Two studies at one actor run one after the other: when the first hangs past study_timeout_s,
    the second never ran; it is handed out again (not counted), not failed as a timeout."""
    ex, jobs, state, actors, clock = _book_keeping(tmp_path, monkeypatch, 2)
    assert len(state.inflight) == 2 and state.load == [2]
    clock.now += 31
    ray_ = _FakeRay()
    ex._time_out(ray_, actors, jobs, state)
    assert ray_.killed == 1
    assert state.finished[0].error_type == "StudyTimeout" and 1 not in state.finished
    assert [i for i, _, _ in state.inflight.values()] == [1] and set(state.inflight) == state.spared
    clock.now += 60  # the actor is restarting; the lost call is still not failed
    ex._time_out(ray_, actors, jobs, state)
    assert 1 not in state.finished and ray_.killed == 1


def test_a_queued_study_s_clock_starts_when_the_study_before_it_ends(tmp_path, monkeypatch):
    """The second study at an actor gets its full study_timeout_s from when the first one ended."""
    ex, jobs, state, actors, clock = _book_keeping(tmp_path, monkeypatch, 2)
    first = next(r for r, (i, _, _) in state.inflight.items() if i == 0)
    clock.now += 25  # the first study takes 25 s of the 30
    ex._collect(_FakeRay(), first, actors, jobs, state)
    assert state.finished[0].status == "done"
    clock.now += 20  # 45 s after the second was handed out, 20 s after it started
    ray_ = _FakeRay()
    ex._time_out(ray_, actors, jobs, state)
    assert 1 not in state.finished and ray_.killed == 0
    clock.now += 11  # 31 s after it started
    ex._time_out(ray_, actors, jobs, state)
    assert state.finished[1].error_type == "StudyTimeout" and ray_.killed == 1
