"""StagePipeline with stand-in stages: job order, cross-study batches, bounded memory, failures, stop."""

from __future__ import annotations

import mmap
import os
import threading

import numpy as np
import pytest
import torch
from traced import traced_peak

from medzsad.cohort.executors.local import transport
from medzsad.cohort.executors.local.pipeline import StagePipeline
from medzsad.study.types import Loaded, Scored


def fake_load(i: int, n_slices: int) -> np.ndarray:
    """Worker side: study ``i`` is ``n_slices`` slices filled with ``i`` (module level: picklable)."""
    if n_slices < 0:
        raise ValueError(f"study {i} is unreadable")
    return np.full((n_slices, 3, 2, 2), float(i), dtype=np.float32)


class FakeStages:
    def __init__(self, sizes: list[int]) -> None:
        self.sizes = sizes
        self.batches: list[list[int]] = []
        self.lock = threading.Lock()
        self.alive = 0
        self.peak = 0
        self.begun: list[int] = []

    def load_task(self, job: int):
        return fake_load, (job, self.sizes[job]), f"study-{job}"

    def images(self, loaded: np.ndarray) -> torch.Tensor:
        with self.lock:
            self.alive += 1
            self.peak = max(self.peak, self.alive)
        return torch.from_numpy(loaded)

    def positions(self, loaded: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(loaded[:, 0, 0, 0] / 100.0)  # each slice's "body position": its study / 100

    def score(self, batch: torch.Tensor, positions: torch.Tensor):
        # every batch, even one mixing studies, carries each slice's own position
        np.testing.assert_array_equal(positions.numpy(), batch[:, 0, 0, 0].numpy() / 100.0)
        self.batches.append(sorted({int(v) for v in batch[:, 0, 0, 0]}))
        return batch[:, 0, 0, 0].numpy().copy(), batch[:, 0].numpy().copy()

    def progress(self, job: int, done: int, total: int) -> None:
        self.progressed = getattr(self, "progressed", {})
        assert done > self.progressed.get(job, 0) and done <= total  # forward, within the study
        self.progressed[job] = done

    def release(self, loaded: np.ndarray) -> np.ndarray:
        return loaded[:0]

    def begin(self, job: int) -> None:
        self.begun.append(job)

    def finish_task(self, job: int, loaded: Loaded[np.ndarray], scored: Scored | None):
        with self.lock:
            self.alive -= 1 if scored is not None or _ok(loaded) else 0
        return fake_finish, (job, loaded, scored), f"writing study {job}"

    def finish_failed(self, job: int, error: BaseException):
        return job, f"writer died: {error}"

    def cancelled(self, job: int):
        return job, "cancelled"


def _ok(loaded: Loaded[np.ndarray]) -> bool:
    try:
        loaded.result()
    except (ValueError, RuntimeError):
        return False
    return True


def fake_finish(job: int, loaded: Loaded[np.ndarray], scored: Scored | None):
    """Writer side (module level: picklable)."""
    try:
        loaded.result()
    except (ValueError, RuntimeError) as e:
        return job, str(e)
    if scored is None:
        return job, "empty"  # a study without slices is finished unscored
    return job, scored.image_scores.tolist()


@pytest.mark.parametrize("workers", [0, 1])
def test_order_batches_bounds_and_failures(workers):
    sizes = [3, 4, 0, 5, -1, 2, 6, 1, 3, 4]
    stages = FakeStages(sizes)
    ex = StagePipeline(workers=workers, prefetch=1, writers=2, write_queue=1, batch_size=4)
    results = list(ex.run(list(range(len(sizes))), stages))
    assert [j for j, _ in results] == list(range(len(sizes)))
    for j, res in results:
        if sizes[j] > 0:
            assert res == [float(j)] * sizes[j]  # each slice's output went back to its own study
    assert results[2][1] == "empty"
    assert results[4][1] == "study 4 is unreadable"
    assert sorted(stages.begun) == list(range(len(sizes)))  # every study begun once (any order)
    assert all(len(b) >= 1 for b in stages.batches) and any(len(b) > 1 for b in stages.batches)
    assert all(len(b) <= 4 for b in stages.batches)
    assert ex.stats.slices == sum(s for s in sizes if s > 0)
    # loaded and scoring studies stay within the queue bounds (prefetch, one batch), not the cohort size
    assert stages.peak <= workers + 1 + 4 + 1


def test_stop_starts_no_new_study():
    sizes = [2] * 8
    stages = FakeStages(sizes)
    stop = threading.Event()
    ex = StagePipeline(workers=0, prefetch=0, writers=1, write_queue=1, batch_size=2)
    seen = []
    for job, res in ex.run(list(range(len(sizes))), stages, stop):
        seen.append((job, res))
        if job == 1:
            stop.set()
    assert [j for j, _ in seen] == list(range(len(seen))) and len(seen) < len(sizes)
    assert all(res != "cancelled" for _, res in seen[:2])
    assert sorted(stages.begun) == [j for j, res in seen if res != "cancelled"]  # cancelled: never begun


class FailingStages(FakeStages):
    """The model fails on every batch holding a slice of study ``bad``."""

    def __init__(self, sizes: list[int], bad: int) -> None:
        super().__init__(sizes)
        self.bad = bad

    def score(self, batch: torch.Tensor, positions: torch.Tensor):
        if self.bad in {int(v) for v in batch[:, 0, 0, 0]}:
            self.batches.append([-1])
            raise RuntimeError("CUDA error: an illegal memory access")
        return super().score(batch, positions)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_model_failure_fails_the_studies_of_its_batch_only(workers):
    sizes = [3, 9, 2, 4]  # batches of 4: [0 0 0 1] fails, study 1's later batches may be in flight
    stages = FailingStages(sizes, bad=1)
    ex = StagePipeline(workers=workers, prefetch=1, writers=1, write_queue=1, batch_size=4)
    results = dict(ex.run(list(range(len(sizes))), stages))
    for j in (0, 1):  # study 0 shared the failed batch
        assert isinstance(results[j], str) and "illegal memory access" in results[j]
    for j in (2, 3):
        assert results[j] == [float(j)] * sizes[j]  # the studies after it are scored as usual


def slice_load(i: int, n_slices: int, size: int) -> np.ndarray:
    """Worker side: slice ``k`` of study ``i`` is filled with ``i``, its pixel (1, 1) holds ``k``."""
    x = np.full((n_slices, 3, size, size), float(i), dtype=np.float32)
    x[:, 0, 1, 1] = np.arange(n_slices, dtype=np.float32)
    return x


def maps_finish(job: int, loaded: Loaded[np.ndarray], scored: Scored | None):
    """Writer side: what each slice's map says (study, slice index) in the order received."""
    assert scored is not None
    return job, scored.maps[:, 0, 0].tolist(), scored.maps[:, 1, 1].tolist()


class MapStages(FakeStages):
    size = 300  # a 300 x 300 map is 352 KiB: a study of 3 slices or more goes through shared memory

    def __init__(self, sizes: list[int]) -> None:
        super().__init__(sizes)
        self.shared: dict[int, bool] = {}

    def load_task(self, job: int):
        return slice_load, (job, self.sizes[job], self.size), f"study-{job}"

    def finish_task(self, job: int, loaded: Loaded[np.ndarray], scored: Scored | None):
        assert scored is not None
        self.shared[job] = scored.maps.ctypes.data in transport._forwardable  # sent on uncopied
        return maps_finish, (job, loaded, scored), f"writing study {job}"


@pytest.mark.parametrize("workers", [0, 1])
def test_each_study_gets_its_own_maps_in_slice_order(workers):
    sizes = [3, 5, 2, 7]
    stages = MapStages(sizes)
    ex = StagePipeline(workers=workers, prefetch=1, writers=1, write_queue=1, batch_size=4)
    results = list(ex.run(list(range(len(sizes))), stages))
    assert any(len(b) > 1 for b in stages.batches)  # batches mixed studies
    for job, studies, slices in results:
        assert studies == [float(job)] * sizes[job]
        assert slices == [float(k) for k in range(sizes[job])]
    # with a writer process, a study's maps are one shared segment the writer receives uncopied
    assert stages.shared == {j: workers > 0 and sizes[j] >= 3 for j in range(len(sizes))}


def test_a_study_s_maps_are_held_once_not_per_batch_and_again_joined():
    """The main process writes each batch's maps into the study's shared array as it comes back.

    Gathering the batches and joining them at the end held every batch's maps (the study's size
    in private memory) besides the joined copy; now at most the batches in the model stage are.
    """
    n, size = 40, 300
    stages = MapStages([n])
    ex = StagePipeline(workers=1, prefetch=0, writers=1, write_queue=1, batch_size=4)
    [(_job, _studies, slices)], peak = traced_peak(lambda: list(ex.run([0], stages)))
    assert slices == [float(k) for k in range(n)]
    study_maps = n * size * size * 4  # 14 MB; a batch's maps are a tenth of it
    assert peak < study_maps / 2, f"traced peak {peak / 1e6:.1f} MB, maps {study_maps / 1e6:.1f} MB"


class InputStages(MapStages):
    """Records, when a study is complete, how much of its model input's segment is still held."""

    def __init__(self, sizes: list[int]) -> None:
        super().__init__(sizes)
        self.held: list[tuple[int, int]] = []  # in the order the studies complete: job order here

    def release(self, loaded: np.ndarray) -> np.ndarray:
        path, nbytes, _seg = transport._forwardable[loaded.ctypes.data]  # received from the worker
        self.held.append((os.stat(path).st_blocks * 512, nbytes))
        return super().release(loaded)


def test_a_study_s_model_input_is_freed_as_its_batches_come_back():
    """By the time a study is scored, its input segment holds at most its last partial page.

    It used to be held whole until the study went to the writer, beside the study's maps.
    """
    sizes = [9, 6]
    stages = InputStages(sizes)
    ex = StagePipeline(workers=1, prefetch=1, writers=1, write_queue=1, batch_size=4)
    results = list(ex.run([0, 1], stages))
    for job, studies, slices in results:  # the maps are those of the input before it was freed
        assert studies == [float(job)] * sizes[job]
        assert slices == [float(k) for k in range(sizes[job])]
    assert [nbytes for _held, nbytes in stages.held] == [n * 3 * 300 * 300 * 4 for n in sizes]
    for held, nbytes in stages.held:
        assert held <= mmap.PAGESIZE, f"{held} of {nbytes} bytes held"
