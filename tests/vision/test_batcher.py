"""The dynamic batcher: routing, batch limits, back-pressure, errors, shutdown.

No test asserts on elapsed time: batches are made deterministic with a gate that holds the
worker inside the batch function while the test queues more items.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import CancelledError, ThreadPoolExecutor

import pytest
from pydantic import ValidationError

from vision.batcher import BatcherClosedError, BatcherConfig, DynamicBatcher
from vision.errors import QueueFullError

WAIT = 10.0  # generous bound for "should happen": never reached unless the code is broken


class GatedDouble:
    """A batch function that doubles numbers; it can hold the worker until released."""

    def __init__(self, *, hold_first: bool = True, fail_on: object = None) -> None:
        self.started = threading.Event()   # set when the worker entered a batch
        self.release = threading.Event()   # the worker waits on it in the first batch
        if not hold_first:
            self.release.set()
        self.fail_on = fail_on
        self.batches: list[list[int]] = []
        self._lock = threading.Lock()

    def __call__(self, items: Sequence[int]) -> list[int]:
        with self._lock:
            self.batches.append(list(items))
        self.started.set()
        if not self.release.wait(WAIT):
            raise TimeoutError("test never released the gate")
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"bad item {self.fail_on}")
        return [2 * item for item in items]


def _hold_worker(batcher: DynamicBatcher, fn: GatedDouble) -> object:
    """Queue one item and wait until the worker is stuck in the batch function with it."""
    first = batcher.submit(-1)
    assert fn.started.wait(WAIT)
    return first


@pytest.mark.parametrize("max_batch, n_items, expected_sizes", [
    (4, 10, [4, 4, 2]),
    (3, 3, [3]),
    (1, 3, [1, 1, 1]),
    (16, 5, [5]),
])
def test_queued_items_form_batches_up_to_max_batch(max_batch, n_items, expected_sizes):
    fn = GatedDouble()
    with DynamicBatcher(fn, BatcherConfig(max_batch=max_batch, max_wait_ms=20)) as batcher:
        first = _hold_worker(batcher, fn)
        futures = [batcher.submit(i) for i in range(n_items)]
        fn.release.set()
        assert [f.result(WAIT) for f in futures] == [2 * i for i in range(n_items)]
        assert first.result(WAIT) == -2
    assert [len(b) for b in fn.batches] == [1, *expected_sizes]
    stats = batcher.stats()
    assert stats.batches_run == 1 + len(expected_sizes)
    assert stats.items_done == n_items + 1
    assert stats.largest_batch == max(1, *expected_sizes)
    assert stats.mean_batch_size == pytest.approx((n_items + 1) / (1 + len(expected_sizes)))


def test_many_threads_each_get_their_own_results():
    def tag_items(items: Sequence[tuple[int, int]]) -> list[tuple[str, int, int]]:
        time.sleep(random.uniform(0, 0.002))
        return [("done", thread, k) for thread, k in items]

    n_threads, per_thread = 24, 40
    config = BatcherConfig(max_batch=8, max_wait_ms=2, queue_size=16)
    with DynamicBatcher(tag_items, config) as batcher:
        def caller(thread: int) -> list[tuple[str, int, int]]:
            futures = [batcher.submit((thread, k)) for k in range(per_thread)]
            return [f.result(WAIT) for f in futures]

        with ThreadPoolExecutor(n_threads) as pool:
            results = list(pool.map(caller, range(n_threads)))
    for thread, got in enumerate(results):
        assert got == [("done", thread, k) for k in range(per_thread)]
    stats = batcher.stats()
    assert stats.items_done == n_threads * per_thread
    assert 1 <= stats.largest_batch <= 8
    assert stats.queue_high_water <= 16


def test_full_queue_pushes_back_and_counts_rejections():
    fn = GatedDouble()
    config = BatcherConfig(max_batch=1, max_wait_ms=0, queue_size=2)
    with DynamicBatcher(fn, config) as batcher:
        _hold_worker(batcher, fn)
        queued = [batcher.submit(1), batcher.submit(2)]
        with pytest.raises(QueueFullError, match="full"):
            batcher.submit_nowait(3)
        with pytest.raises(QueueFullError, match="stayed full"):
            batcher.submit(4, timeout=0.05)
        # a blocking submit waits for room and goes through once the worker moves on
        with ThreadPoolExecutor(1) as pool:
            blocked = pool.submit(batcher.submit, 5)
            assert not blocked.done()
            fn.release.set()
            late = blocked.result(WAIT)
        assert [f.result(WAIT) for f in queued] == [2, 4]
        assert late.result(WAIT) == 10
    stats = batcher.stats()
    assert stats.items_rejected == 2
    assert stats.queue_high_water == 2


def test_detector_error_reaches_every_future_of_its_batch_and_worker_survives():
    fn = GatedDouble(fail_on=13)
    with DynamicBatcher(fn, BatcherConfig(max_batch=3, max_wait_ms=20)) as batcher:
        first = _hold_worker(batcher, fn)
        doomed = [batcher.submit(i) for i in (12, 13, 14)]
        fn.release.set()
        assert first.result(WAIT) == -2
        for future in doomed:
            with pytest.raises(ValueError, match="bad item 13"):
                future.result(WAIT)
        assert batcher.submit(7).result(WAIT) == 14
        assert batcher.worker_alive
    stats = batcher.stats()
    assert stats.items_failed == 3
    assert stats.items_done == 2


def test_wrong_number_of_results_is_an_error_not_a_misroute():
    with DynamicBatcher(lambda items: [0], BatcherConfig(max_batch=2, max_wait_ms=1000)) as batcher:
        futures = [batcher.submit(i) for i in (1, 2)]
        for future in futures:
            with pytest.raises(RuntimeError, match="returned 1 results for 2 items"):
                future.result(WAIT)


def test_lone_item_runs_after_max_wait_without_a_full_batch():
    fn = GatedDouble(hold_first=False)
    with DynamicBatcher(fn, BatcherConfig(max_batch=64, max_wait_ms=30)) as batcher:
        assert batcher.submit(21).result(WAIT) == 42
    assert fn.batches == [[21]]


def test_full_batch_runs_without_waiting_for_the_deadline():
    # max_wait is twice the result() bound: if a full batch waited for it, result() would time out
    fn = GatedDouble(hold_first=False)
    batcher = DynamicBatcher(fn, BatcherConfig(max_batch=3, max_wait_ms=10_000))
    futures = [batcher.submit(i) for i in range(3)]
    assert [f.result(5.0) for f in futures] == [0, 2, 4]
    batcher.close(drain=False, timeout=WAIT)
    assert fn.batches == [[0, 1, 2]]


def test_close_drains_queued_items_by_default():
    fn = GatedDouble()
    batcher = DynamicBatcher(fn, BatcherConfig(max_batch=2, max_wait_ms=0))
    _hold_worker(batcher, fn)
    futures = [batcher.submit(i) for i in range(5)]
    closer = threading.Thread(target=batcher.close)
    closer.start()
    fn.release.set()
    closer.join(WAIT)
    assert not closer.is_alive()
    assert [f.result(0) for f in futures] == [0, 2, 4, 6, 8]
    assert not batcher.worker_alive
    with pytest.raises(BatcherClosedError):
        batcher.submit(1)


def _release_when_closed(batcher: DynamicBatcher, fn: GatedDouble) -> threading.Thread:
    """Open the gate only once close() has begun, so the worker cannot take queued items first."""
    def release() -> None:
        deadline = time.monotonic() + WAIT
        while not batcher.closed and time.monotonic() < deadline:
            time.sleep(0.001)
        fn.release.set()
    thread = threading.Thread(target=release)
    thread.start()
    return thread


def test_close_without_drain_cancels_queued_items():
    fn = GatedDouble()
    batcher = DynamicBatcher(fn, BatcherConfig(max_batch=1, max_wait_ms=0))
    running = _hold_worker(batcher, fn)
    queued = [batcher.submit(i) for i in range(3)]
    releaser = _release_when_closed(batcher, fn)
    batcher.close(drain=False, timeout=WAIT)
    releaser.join(WAIT)
    assert running.result(WAIT) == -2  # the batch already running completes
    assert all(f.cancelled() for f in queued)
    assert batcher.stats().items_cancelled == 3


def test_context_manager_error_does_not_wait_for_queued_items():
    fn = GatedDouble()
    with pytest.raises(KeyError), DynamicBatcher(fn, BatcherConfig(max_batch=1)) as batcher:
        _hold_worker(batcher, fn)
        queued = batcher.submit(1)
        _release_when_closed(batcher, fn)
        raise KeyError("caller failed")
    with pytest.raises(CancelledError):
        queued.result(WAIT)


def test_a_future_cancelled_by_its_caller_is_skipped():
    fn = GatedDouble()
    with DynamicBatcher(fn, BatcherConfig(max_batch=4, max_wait_ms=0)) as batcher:
        _hold_worker(batcher, fn)
        keep, drop = batcher.submit(1), batcher.submit(2)
        assert drop.cancel()
        fn.release.set()
        assert keep.result(WAIT) == 2
    assert [1, 2] not in fn.batches and [1] in fn.batches


def test_call_submits_many_and_returns_results_in_order():
    with DynamicBatcher(lambda items: [i + 1 for i in items], BatcherConfig(max_batch=4)) as batcher:
        assert batcher(list(range(10))) == list(range(1, 11))


@pytest.mark.parametrize("raw", [
    {"max_batch": 0},
    {"queue_size": 0},
    {"max_wait_ms": -1},
    {"workers": -1},
    {"max_batch": 4, "lanes": 2},  # unknown keys are refused (extra="forbid")
])
def test_config_rejects_bad_values(raw):
    with pytest.raises(ValidationError):
        BatcherConfig(**raw)


def test_negative_submit_timeout_is_rejected():
    with DynamicBatcher(lambda items: list(items)) as batcher, pytest.raises(ValueError, match="timeout"):
        batcher.submit(1, timeout=-1)


def test_workers_run_batches_at_once_and_each_caller_gets_its_own_result():
    # Each batch waits at a barrier that only opens when two batches are inside the batch
    # function together: with one worker this would time out.
    barrier = threading.Barrier(2, timeout=10)

    def fn(items):
        barrier.wait()
        return [(threading.current_thread().name, i * 10) for i in items]

    with DynamicBatcher(fn, BatcherConfig(max_batch=1, max_wait_ms=0, workers=2)) as batcher:
        futures = [batcher.submit(i) for i in range(6)]
        results = [f.result(timeout=20) for f in futures]
    assert [value for _, value in results] == [i * 10 for i in range(6)]
    assert len({name for name, _ in results}) == 2
    assert batcher.stats().items_done == 6
    assert not batcher.worker_alive


def test_close_without_drain_stops_every_worker():
    release = threading.Event()

    def fn(items):
        release.wait(10)
        return list(items)

    batcher = DynamicBatcher(fn, BatcherConfig(max_batch=1, max_wait_ms=0, workers=3))
    running = [batcher.submit(i) for i in range(3)]
    queued = [batcher.submit(i) for i in range(3, 6)]
    deadline = time.monotonic() + 10
    while sum(f.running() for f in running) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    # Released only once close() has emptied the queue: the running batches finish, the
    # queued items never start, and close() returns after joining all three workers.
    threading.Timer(0.2, release.set).start()
    batcher.close(drain=False)
    assert [f.result() for f in running] == [0, 1, 2]
    assert all(f.cancelled() for f in queued)
    assert not batcher.worker_alive
