"""The model stage: one thread, batches in submission order, bounded depth, errors per batch."""

from __future__ import annotations

import threading
from multiprocessing.connection import wait

from medzsad.cohort.executors.local.device_stage import DeviceStage


def test_batches_run_in_a_thread_in_order_while_the_caller_goes_on() -> None:
    gate = threading.Event()
    ran: list[tuple[int, str]] = []

    def model(x: int) -> int:
        gate.wait(10)
        ran.append((x, threading.current_thread().name))
        if x == 2:
            raise RuntimeError("CUDA out of memory")
        return x * 10

    stage: DeviceStage[str] = DeviceStage(model, depth=2)
    try:
        stage.submit("a", 1)
        assert stage.free()  # the caller prepares the next batch while the first one runs
        stage.submit("b", 2)
        assert not stage.free() and stage.busy() == 2
        assert stage.done() == []  # nothing finished: never blocks
        gate.set()
        results = []
        while len(results) < 2:
            assert wait([stage.handle], timeout=10)  # the wake-up pipe becomes readable
            results += stage.done()
        assert [r.tag for r in results] == ["a", "b"]
        assert results[0].value == 10 and results[0].error is None
        assert isinstance(results[1].error, RuntimeError) and results[1].value is None
        assert [x for x, _ in ran] == [1, 2]
        assert all(name == "medzsad-model" for _, name in ran)
        assert stage.free() and stage.busy() == 0
    finally:
        stage.close()


def test_close_drops_queued_batches_and_stops_the_thread() -> None:
    gate = threading.Event()
    calls: list[int] = []

    def model(x: int) -> int:
        calls.append(x)
        gate.wait(10)
        return x

    stage: DeviceStage[int] = DeviceStage(model, depth=3)
    for i in range(3):
        stage.submit(i, i)
    while not calls:
        threading.Event().wait(0.01)
    closer = threading.Thread(target=stage.close)
    closer.start()
    gate.set()
    closer.join(10)
    assert not closer.is_alive()
    assert calls == [0]  # the running batch finished; the two queued ones were dropped
    assert not any(t.name == "medzsad-model" and t.is_alive() for t in threading.enumerate())


def test_close_without_waiting_returns_while_a_batch_runs() -> None:
    """An interrupted run (Ctrl-C) does not wait for the model's batch; the thread ends after it."""
    gate, started = threading.Event(), threading.Event()

    def model(x: int) -> int:
        started.set()
        gate.wait(10)
        return x

    stage: DeviceStage[int] = DeviceStage(model)
    stage.submit(0, 0)
    assert started.wait(10)
    stage.close(wait=False)  # returns at once although the batch is still running
    assert any(t.name == "medzsad-model" and t.is_alive() for t in threading.enumerate())
    gate.set()
    for t in [t for t in threading.enumerate() if t.name == "medzsad-model"]:
        t.join(10)
        assert not t.is_alive()
