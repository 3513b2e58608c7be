"""A claimed job's lease, renewed by a heartbeat thread while the job runs.

The job function calls `check()` between photos or tiles; it raises when the job must stop
(cancelled, lease lost, runner shutting down). A step that takes longer than the lease
(a huge photo, a slow GPU queue) is fine: the heartbeat renews independently of the steps.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from sqlalchemy.exc import SQLAlchemyError

from service.jobs import queue
from service.jobs.errors import JobCancelled, LeaseLost, RunnerStopping
from service.jobs.queue import LeaseStatus
from service.runtime import Runtime

logger = logging.getLogger(__name__)


class Lease:
    def __init__(
        self, ctx: Runtime, job_id: str, owner: str, stopping: threading.Event | None = None
    ) -> None:
        self.ctx = ctx
        self.job_id = job_id
        self.owner = owner
        self._stopping = stopping or threading.Event()
        self._done = threading.Event()
        self._status = LeaseStatus.held
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._beat, name=f"job-lease-{job_id[:8]}", daemon=True)

    @property
    def seconds(self) -> float:
        return self.ctx.settings.job_lease_seconds

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._done.set()
        self._thread.join()

    def note(self, status: LeaseStatus) -> None:
        """Record what a progress write learnt about the lease."""
        if status is not LeaseStatus.held:
            with self._lock:
                if self._status is not LeaseStatus.lost:
                    self._status = status

    def check(self) -> None:
        with self._lock:
            status = self._status
        if status is LeaseStatus.lost:
            raise LeaseLost()
        if status is LeaseStatus.cancel_requested:
            raise JobCancelled()
        if self._stopping.is_set():
            raise RunnerStopping()

    def _beat(self) -> None:
        interval = max(self.seconds / 3.0, 0.1)
        while not self._done.wait(interval):
            try:
                status = queue.renew(
                    self.ctx.session_factory,
                    job_id=self.job_id,
                    owner=self.owner,
                    now=self.ctx.lease_clock(),
                    lease_seconds=self.seconds,
                )
            except SQLAlchemyError as exc:  # the database may come back before the lease runs out
                logger.warning("job %s: lease renewal failed: %s", self.job_id, exc)
                continue
            self.note(status)
            if status is LeaseStatus.lost:
                return
