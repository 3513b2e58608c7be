"""One inference queue shared by every caller: requests are grouped into batches.

Many threads `submit(item)` and get a `concurrent.futures.Future`; one worker thread takes
the oldest item, waits at most `max_wait_ms` for more (or until `max_batch` are queued),
runs the batch function once, and hands each caller its own result. A failing batch sets
the exception on every future of that batch and the worker goes on with the next one.

The queue is bounded so that a burst of camera frames cannot eat the memory: `submit`
waits for room up to its `timeout` and then raises `QueueFullError`; `submit_nowait`
fails at once, for capture loops that would rather drop a frame than fall behind.

Why batch on a CPU where batch 1 is fastest per image? The worker still overlaps the
callers' own work (decode, letterbox, tiling, post-processing) with inference, since
onnxruntime releases the GIL while it runs; `max_batch` is a setting per hardware (GPUs
want 8-32) and `max_batch=1` simply makes the queue a serialising, back-pressured lane.

`workers` > 1 runs that many lanes: each worker thread takes its own batch, so on a CPU
each core can run a whole image single-threaded instead of every image being split across
cores (benchmarks/README.md: on 2 cores, 2 lanes x 1 thread beat 1 lane x 2 threads both on
a quiet machine and under load, since no lane ever waits for another's thread).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from vision.errors import BatcherClosedError, QueueFullError

logger = logging.getLogger(__name__)

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

BatchFn = Callable[[Sequence[ItemT]], Sequence[ResultT]]


class BatcherConfig(BaseModel):
    """How requests are grouped. The defaults suit a small CPU; raise max_batch on a GPU."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch: int = Field(
        default=1, ge=1, le=256,
        description="Most items per batch. 1 on CPU: onnxruntime on 2 cores was slower per "
                    "image at batch 8 than at batch 1 (benchmarks/inference.py); 8-32 on a GPU.")
    max_wait_ms: float = Field(
        default=5.0, ge=0.0, le=10_000.0,
        description="How long the first queued item waits for company before its batch runs.")
    queue_size: int = Field(
        default=64, ge=1, le=100_000,
        description="Most items waiting; beyond it submit() blocks (back-pressure) or fails.")
    workers: int = Field(
        default=0, ge=0, le=64,
        description="Batches run at once, each from its own worker thread; more than 1 needs a "
                    "thread-safe batch function. 0 = the owner decides (the pipeline asks its "
                    "detector: one lane per CPU core for ONNX Runtime on CPU, else 1); a bare "
                    "DynamicBatcher takes 0 as 1.")


@dataclass(frozen=True)
class BatcherStats:
    """A snapshot of the batcher's counters."""

    batches_run: int
    items_done: int
    items_failed: int
    items_cancelled: int
    items_rejected: int
    queue_high_water: int
    queued_now: int
    largest_batch: int
    busy_s: float

    @property
    def mean_batch_size(self) -> float:
        return self.items_processed / self.batches_run if self.batches_run else 0.0

    @property
    def items_processed(self) -> int:
        return self.items_done + self.items_failed


@dataclass
class _Request(Generic[ItemT, ResultT]):
    item: ItemT
    future: Future[ResultT]
    enqueued_at: float


class DynamicBatcher(Generic[ItemT, ResultT]):
    """Group items from many threads into batches for one batch function.

    `batch_fn(items) -> results` must return one result per item, in order. With one worker
    (`config.workers` 0 or 1) it is only ever called from that thread, so it need not be
    thread-safe; with more, batches run concurrently and it must be (ONNX Runtime's
    `session.run` is).
    """

    def __init__(self, batch_fn: BatchFn[ItemT, ResultT], config: BatcherConfig | None = None, *,
                 name: str = "batcher") -> None:
        self._batch_fn = batch_fn
        self.config = config or BatcherConfig()
        self.name = name
        self._queue: deque[_Request[ItemT, ResultT]] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False
        # counters, guarded by _lock
        self._batches_run = 0
        self._items_done = 0
        self._items_failed = 0
        self._items_cancelled = 0
        self._items_rejected = 0
        self._high_water = 0
        self._largest_batch = 0
        self._busy_s = 0.0
        self._workers = [threading.Thread(target=self._run, name=f"{name}-worker-{i}", daemon=True)
                         for i in range(max(1, self.config.workers))]
        for worker in self._workers:
            worker.start()

    # -- callers ------------------------------------------------------------------------

    def submit(self, item: ItemT, *, timeout: float | None = None) -> Future[ResultT]:
        """Queue one item; wait up to `timeout` s for room (None: as long as it takes).

        Raises QueueFullError when the queue stayed full for `timeout` seconds, and
        BatcherClosedError after close().
        """
        if timeout is not None and timeout < 0:
            raise ValueError(f"expected timeout >= 0 seconds or None, got {timeout}")
        with self._not_full:
            if not self._not_full.wait_for(self._has_room_or_closed, timeout=timeout):
                self._items_rejected += 1
                raise QueueFullError(
                    f"{self.name}: inference queue stayed full ({self.config.queue_size} items) "
                    f"for {timeout:.3g} s; the detector is slower than the input rate. Lower the "
                    f"input rate, raise queue_size, or use a faster backend.")
            return self._enqueue(item)

    def submit_nowait(self, item: ItemT) -> Future[ResultT]:
        """Queue one item or raise QueueFullError at once (for loops that drop frames)."""
        with self._lock:
            if not self._has_room_or_closed():
                self._items_rejected += 1
                raise QueueFullError(
                    f"{self.name}: inference queue is full ({self.config.queue_size} items); "
                    f"item dropped")
            return self._enqueue(item)

    def __call__(self, items: Sequence[ItemT], *, timeout: float | None = None) -> list[ResultT]:
        """Submit several items and wait for all their results (re-raises the first error)."""
        futures = [self.submit(item, timeout=timeout) for item in items]
        return [f.result() for f in futures]

    def _has_room_or_closed(self) -> bool:
        return self._closed or len(self._queue) < self.config.queue_size

    def _enqueue(self, item: ItemT) -> Future[ResultT]:
        # called with _lock held
        if self._closed:
            raise BatcherClosedError(f"{self.name}: cannot submit after close()")
        future: Future[ResultT] = Future()
        self._queue.append(_Request(item, future, time.monotonic()))
        self._high_water = max(self._high_water, len(self._queue))
        self._not_empty.notify()
        return future

    # -- lifecycle ----------------------------------------------------------------------

    def close(self, *, drain: bool = True, timeout: float | None = None) -> None:
        """Stop accepting items; finish the queued ones (drain) or cancel them.

        Blocks until the worker has stopped or `timeout` s passed. Safe to call twice.
        """
        cancelled: list[_Request[ItemT, ResultT]] = []
        with self._lock:
            self._closed = True
            if not drain:
                cancelled = list(self._queue)
                self._queue.clear()
                self._items_cancelled += sum(1 for r in cancelled if not r.future.done())
            self._not_empty.notify_all()
            self._not_full.notify_all()
        for request in cancelled:
            request.future.cancel()
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in self._workers:
            if worker is not threading.current_thread():
                worker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def worker_alive(self) -> bool:
        """Whether any worker thread still runs (a failing batch never stops one)."""
        return any(worker.is_alive() for worker in self._workers)

    def __enter__(self) -> DynamicBatcher[ItemT, ResultT]:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        # On an error in the with-block nobody will read the results: do not wait for them.
        self.close(drain=exc_type is None)

    def stats(self) -> BatcherStats:
        with self._lock:
            return BatcherStats(
                batches_run=self._batches_run,
                items_done=self._items_done,
                items_failed=self._items_failed,
                items_cancelled=self._items_cancelled,
                items_rejected=self._items_rejected,
                queue_high_water=self._high_water,
                queued_now=len(self._queue),
                largest_batch=self._largest_batch,
                busy_s=self._busy_s,
            )

    # -- worker -------------------------------------------------------------------------

    def _next_batch(self) -> list[_Request[ItemT, ResultT]] | None:
        """Wait for the first item, then for company until max_batch or the deadline."""
        max_batch = self.config.max_batch
        with self._not_empty:
            self._not_empty.wait_for(lambda: self._queue or self._closed)
            if not self._queue:
                return None  # closed and drained
            deadline = self._queue[0].enqueued_at + self.config.max_wait_ms / 1000.0
            while len(self._queue) < max_batch and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._not_empty.wait(remaining)
            batch = [self._queue.popleft() for _ in range(min(max_batch, len(self._queue)))]
            self._not_full.notify(len(batch))
            return batch

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            # A caller may have cancelled its future while it waited; skip those items.
            live = [r for r in batch if r.future.set_running_or_notify_cancel()]
            cancelled = len(batch) - len(live)
            if not live:
                with self._lock:
                    self._items_cancelled += cancelled
                continue
            started = time.perf_counter()
            failed = 0
            try:
                results = self._batch_fn([r.item for r in live])
                if len(results) != len(live):
                    raise RuntimeError(f"{self.name}: batch function returned {len(results)} results "
                                       f"for {len(live)} items; expected one per item")
            except Exception as exc:  # noqa: BLE001 - any batch failure belongs to its callers
                logger.debug("%s: batch of %d failed: %r", self.name, len(live), exc)
                for request in live:
                    request.future.set_exception(exc)
                failed = len(live)
            else:
                for request, result in zip(live, results, strict=True):
                    request.future.set_result(result)
            with self._lock:
                self._batches_run += 1
                self._items_done += len(live) - failed
                self._items_failed += failed
                self._items_cancelled += cancelled
                self._largest_batch = max(self._largest_batch, len(live))
                self._busy_s += time.perf_counter() - started
