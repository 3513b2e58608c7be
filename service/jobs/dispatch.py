"""How the API hands a job over: wake the in-process runner, or send the job id to Celery.

Chosen by the settings: no broker URL, the runner thread; a broker URL, Celery. Either way
the job row is written first, so a job is never lost between the two: at start-up the
in-process runner takes what is runnable, and the Celery dispatcher sends it again (a
duplicate message is harmless, see `celery_app`); while it runs, the Celery dispatcher's
sweeper resends what a crashed worker or a failed send would otherwise leave stalled.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from service.errors import ServiceError
from service.jobs import queue
from service.jobs.runner import JobRunner
from service.jobs.sweeper import Sweeper
from service.runtime import Clock, Runtime, utc_now
from service.settings import Settings

logger = logging.getLogger(__name__)

RESEND_MEMORY_S = 3600.0  # how long a send is remembered, to rate-limit repeat uploads' resends


class BrokerUnavailableError(ServiceError):
    """The job is saved but could not be sent to the broker (503: retry the upload)."""

    retryable = True


class JobDispatcher(Protocol):
    def start(self) -> None: ...

    def submit(self, job_id: str) -> None: ...

    def resend(self, job_id: str) -> None:
        """Hand over a job that may have been lost (a repeat upload of a job nobody runs)."""
        ...

    def close(self) -> None: ...


class InProcessDispatcher:
    def __init__(self, runner: JobRunner) -> None:
        self.runner = runner

    def start(self) -> None:
        self.runner.start()

    def submit(self, job_id: str) -> None:
        self.runner.wake()

    def resend(self, job_id: str) -> None:
        self.runner.wake()  # the runner reads the queue from the database: nothing can be lost

    def close(self) -> None:
        self.runner.stop()


class CeleryDispatcher:
    """Sends job ids to Celery, and keeps every runnable job sent while the API runs.

    A message can be lost to a failed send (broker down: the upload got 503) or held
    unacknowledged by a worker that died, which Redis gives back only after its visibility
    timeout. The sweeper, every half lease, puts jobs whose lease ran out back in the queue
    and sends them, and retries the sends that failed; so a crashed job resumes within about
    1.5 leases of the crash. A repeat upload of a job nobody runs sends it again at once
    (`resend`), at most once per lease so repeats cannot flood the broker.
    """

    def __init__(
        self, settings: Settings, session_factory: sessionmaker[Session], *, lease_clock: Clock = utc_now
    ) -> None:
        from service.jobs.celery_app import make_celery

        self.settings = settings
        self.session_factory = session_factory
        self.lease_clock = lease_clock
        self.app = make_celery(settings)
        self._lock = threading.Lock()
        self._unsent: set[str] = set()  # saved, but the send failed: the sweeper retries
        self._sent_at: dict[str, float] = {}  # monotonic time of this process's last send, for `resend`
        self.sweeper = Sweeper(
            self.sweep, interval_s=settings.job_lease_seconds / 2, name="patrol-job-sweeper"
        )

    def start(self) -> None:
        with self.session_factory() as session:
            pending = queue.runnable_ids(
                session, now=self.lease_clock(), max_attempts=self.settings.job_max_attempts
            )
        with self._lock:
            self._unsent.update(pending)
        try:
            self.sweep()
        except BrokerUnavailableError as exc:
            logger.warning("could not resend %d unfinished jobs at start (the sweeper retries): %s",
                           len(pending), exc)
        self.sweeper.start()

    def sweep(self) -> list[str]:
        """Requeue jobs whose lease ran out, then send them and every earlier failed send; the ids sent."""
        expired = queue.requeue_expired(
            self.session_factory, now=self.lease_clock(), max_attempts=self.settings.job_max_attempts
        )
        if expired:
            logger.warning("resending %d jobs whose runner stopped renewing its lease: %s",
                           len(expired), expired)
        with self._lock:
            self._unsent.update(expired)
            todo = sorted(self._unsent)
            cutoff = time.monotonic() - RESEND_MEMORY_S
            self._sent_at = {k: v for k, v in self._sent_at.items() if v > cutoff}
        sent = []
        for job_id in todo:
            self._send(job_id)  # raises when the broker is away: the rest wait for the next tick
            sent.append(job_id)
        return sent

    def submit(self, job_id: str) -> None:
        self._send(job_id)

    def resend(self, job_id: str) -> None:
        with self._lock:
            last = None if job_id in self._unsent else self._sent_at.get(job_id)
        if last is None or time.monotonic() - last >= self.settings.job_lease_seconds:
            self._send(job_id)

    def _send(self, job_id: str) -> None:
        from kombu.exceptions import OperationalError

        from service.jobs.celery_app import TASK_NAME

        try:
            self.app.send_task(TASK_NAME, args=[job_id], queue=self.settings.job_queue)
        except OperationalError as exc:
            with self._lock:
                self._unsent.add(job_id)
            raise BrokerUnavailableError(
                f"the job broker at {_redacted(self.settings.broker_url)} is unreachable ({exc}); "
                "the job is saved and is sent once the broker is back (or upload the same file again)"
            ) from None
        with self._lock:
            self._unsent.discard(job_id)
            self._sent_at[job_id] = time.monotonic()

    def close(self) -> None:
        self.sweeper.stop()
        self.app.close()


class NoDispatcher:
    """This app cannot run surveys (its analyzer has no pipeline); submits are refused before here."""

    def start(self) -> None:
        return None

    def submit(self, job_id: str) -> None:
        raise BrokerUnavailableError("this server has no job runner")

    def resend(self, job_id: str) -> None:
        self.submit(job_id)

    def close(self) -> None:
        return None


def make_dispatcher(
    settings: Settings, ctx: Runtime | None, session_factory: sessionmaker[Session]
) -> JobDispatcher:
    if settings.broker_url:
        return CeleryDispatcher(settings, session_factory, lease_clock=ctx.lease_clock if ctx else utc_now)
    if ctx is None:
        return NoDispatcher()
    return InProcessDispatcher(JobRunner(ctx))


def _redacted(url: str | None) -> str:
    """The broker URL without its password."""
    if not url or "@" not in url:
        return url or "-"
    scheme, rest = url.split("://", 1) if "://" in url else ("", url)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"
