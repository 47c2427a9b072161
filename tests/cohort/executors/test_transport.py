"""The worker transport: large arrays through /dev/shm (mapped, unlinked at once), the rest by pipe."""

from __future__ import annotations

import errno
import gc
import mmap
import multiprocessing as mp
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from medzsad.cohort.executors.local import transport
from medzsad.cohort.executors.local.worker_pool import WorkerPool

BIG = (transport.SHARED_MIN_BYTES // 4) + 1000  # float32 elements: just over the shared-memory size


def _payload() -> dict[str, object]:
    rng = np.random.default_rng(0)
    return {
        "big": rng.random(BIG, dtype=np.float32),
        "fortran": np.asfortranarray(rng.random((300, 400, 3))),  # 2.9 MB, Fortran order
        "small": np.arange(10, dtype=np.int16),
        "text": "study-1",
    }


def _round_trip(obj: object, prefix: str | None, keep_names: bool = False) -> object:
    a, b = mp.Pipe(duplex=True)
    sender = threading.Thread(target=transport.send, args=(a, obj, prefix))  # a pipe may block
    sender.start()
    got = transport.recv(b, keep_names=keep_names)
    sender.join()
    a.close()
    b.close()
    return got


def _segments(prefix: str) -> list[Path]:
    d = transport.shm_dir()
    return sorted(d.glob(f"{prefix}*")) if d is not None else []


def test_large_arrays_go_through_shared_memory_and_come_back_equal_and_writable(monkeypatch) -> None:
    assert transport.shm_dir() is not None  # the CI machine is Linux
    made: list[str] = []
    real = transport._to_shared
    monkeypatch.setattr(transport, "_to_shared", lambda raw, p: made.append(p) or real(raw, p))
    prefix = transport.new_prefix()
    sent = _payload()
    got = _round_trip(sent, prefix)
    assert isinstance(got, dict) and got.keys() == sent.keys()
    for key in ("big", "fortran", "small"):
        assert np.array_equal(got[key], sent[key]) and got[key].dtype == sent[key].dtype
    assert got["fortran"].flags.f_contiguous
    assert len(made) == 2  # the two arrays over the threshold; the small one went by pipe
    got["big"][0] = -1.0  # writable
    assert _segments(prefix) == []  # unlinked as soon as they were mapped


@pytest.mark.parametrize("why", ["no /dev/shm", "full /dev/shm"])
def test_without_shared_memory_everything_goes_by_pipe(monkeypatch, why: str) -> None:
    if why == "no /dev/shm":
        monkeypatch.setattr(transport, "shm_dir", lambda: None)
    else:

        def full(fd: int, offset: int, length: int) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "posix_fallocate", full)
    prefix = transport.new_prefix()
    sent = _payload()
    got = _round_trip(sent, prefix)
    assert isinstance(got, dict)
    assert np.array_equal(got["big"], sent["big"]) and np.array_equal(got["fortran"], sent["fortran"])
    assert _segments(prefix) == []  # nothing left behind by the failed attempt


def test_unsent_segments_are_removed_when_sending_fails() -> None:
    a, b = mp.Pipe(duplex=True)
    b.close()
    a.close()  # sending on a closed connection raises
    prefix = transport.new_prefix()
    with pytest.raises(OSError):
        transport.send(a, _payload(), prefix)
    assert _segments(prefix) == []


def test_sweep_removes_only_segments_of_owners_that_are_gone() -> None:
    d = transport.shm_dir()
    assert d is not None
    dead = mp.get_context("spawn").Process(target=int)
    dead.start()
    dead.join()
    stale = d / f"medzsad-shm-{dead.pid}-abcd1234-{dead.pid}-0"
    live = d / f"{transport.new_prefix()}-{os.getpid()}-0"
    stale.write_bytes(b"x")
    live.write_bytes(b"x")
    try:
        assert transport.sweep_stale() >= 1
        assert not stale.exists() and live.exists()
    finally:
        live.unlink(missing_ok=True)
        stale.unlink(missing_ok=True)


def test_closing_a_pool_removes_its_leftover_segments() -> None:
    d = transport.shm_dir()
    assert d is not None
    pool = WorkerPool(1, None, None)
    left = d / f"{pool.prefix}-12345-0"  # as a worker that died mid-send would leave it
    left.write_bytes(b"x")
    pool.close()
    assert not left.exists()


def _double(x: np.ndarray) -> np.ndarray:
    return x * 2


def test_a_pool_task_sends_and_returns_large_arrays() -> None:
    x = np.random.default_rng(1).random((512, 512), dtype=np.float32)  # 1 MiB: shared memory both ways
    with WorkerPool(1, 60, None) as pool:
        pool.submit(0, _double, (x,), "doubling")
        outcome = pool.wait(60)[0]
        assert outcome.error is None
        assert np.array_equal(outcome.value, x * 2)
        assert len(_segments(pool.prefix)) == 1  # the main process keeps the name while it maps it
        del outcome
        gc.collect()
        assert _segments(pool.prefix) == []  # and removes it with the last array


def test_a_received_array_is_passed_on_by_a_hard_link_not_a_copy(monkeypatch) -> None:
    first, second = transport.new_prefix(), transport.new_prefix()
    sent = _payload()
    got = _round_trip(sent, first, keep_names=True)
    assert isinstance(got, dict)
    assert len(_segments(first)) == 2  # kept while mapped
    created: list[int] = []
    real = transport._create
    monkeypatch.setattr(transport, "_create", lambda p, n: created.append(n) or real(p, n))
    maps = transport.shared_empty((300, 1000), np.float32, second)
    assert maps is not None
    maps[:] = 0.5
    view = got["big"][1000:]  # contiguous, 1 MiB, but not a whole segment: copied
    again = _round_trip({"volume": got["big"], "maps": maps, "view": view}, second)
    assert created == [300 * 1000 * 4, view.nbytes]  # only the maps' own segment and the view's copy
    assert isinstance(again, dict)
    assert np.array_equal(again["volume"], sent["big"]) and np.all(again["maps"] == 0.5)
    assert np.array_equal(again["view"], sent["big"][1000:])
    assert all(os.stat(p).st_nlink == 1 for p in _segments(first))  # the receiver's links are gone
    del got, maps, view
    gc.collect()
    assert _segments(first) == [] and _segments(second) == []


def test_shared_empty_is_none_without_a_prefix_or_for_small_arrays() -> None:
    assert transport.shared_empty((10,), np.float32, transport.new_prefix()) is None
    assert transport.shared_empty((1 << 20,), np.float32, None) is None


def test_discard_frees_the_whole_pages_of_a_segment_part_and_nothing_else() -> None:
    """The pages wholly inside the part are freed in /dev/shm; the bytes around them are kept."""
    prefix = transport.new_prefix()
    rows = transport.shared_empty((300, 1000), np.float32, prefix)  # 4,000 bytes a row, 1.2 MB
    assert rows is not None
    rows[:] = 1.0
    [path] = _segments(prefix)
    before = os.stat(path).st_blocks * 512
    assert before >= rows.nbytes
    freed = transport.discard(rows[:40])
    page = mmap.PAGESIZE
    assert freed == 40 * 4000 // page * page
    assert os.stat(path).st_blocks * 512 == before - freed
    flat = rows.reshape(-1).view(np.uint8)
    assert not flat[:freed].any()  # read back as zeros: for data never read again
    np.testing.assert_array_equal(rows.reshape(-1)[freed // 4 :], 1.0)  # the rest is unchanged
    # a private array, a strided view and less than a page are left as they are
    private = np.ones((300, 1000), np.float32)
    assert transport.discard(private) == 0 and private.all()
    assert transport.discard(rows[41:, ::2]) == 0 and rows[41:].all()
    assert transport.discard(rows[41:42]) == 0 and rows[41].all()
    del rows, flat
    gc.collect()
    assert _segments(prefix) == []
