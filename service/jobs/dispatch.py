"""How the API hands a job over: wake the in-process runner, or send the job id to Celery.

Chosen by the settings: no broker URL, the runner thread; a broker URL, Celery. Either way
the job row is written first, so a job is never lost between the two: at start-up the
in-process runner takes what is runnable, and the Celery dispatcher sends it again (a
duplicate message is harmless, see `celery_app`).
"""

from __future__ import annotations

import logging
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from service.errors import ServiceError
from service.jobs import queue
from service.jobs.runner import JobRunner
from service.runtime import Runtime, utc_now
from service.settings import Settings

logger = logging.getLogger(__name__)


class BrokerUnavailableError(ServiceError):
    """The job is saved but could not be sent to the broker (503: retry the upload)."""

    retryable = True


class JobDispatcher(Protocol):
    def start(self) -> None: ...

    def submit(self, job_id: str) -> None: ...

    def close(self) -> None: ...


class InProcessDispatcher:
    def __init__(self, runner: JobRunner) -> None:
        self.runner = runner

    def start(self) -> None:
        self.runner.start()

    def submit(self, job_id: str) -> None:
        self.runner.wake()

    def close(self) -> None:
        self.runner.stop()


class CeleryDispatcher:
    def __init__(self, settings: Settings, session_factory: sessionmaker[Session]) -> None:
        from service.jobs.celery_app import make_celery

        self.settings = settings
        self.session_factory = session_factory
        self.app = make_celery(settings)

    def start(self) -> None:
        with self.session_factory() as session:
            pending = queue.runnable_ids(session, now=utc_now(), max_attempts=self.settings.job_max_attempts)
        for job_id in pending:
            try:
                self.submit(job_id)
            except BrokerUnavailableError as exc:
                logger.warning("could not resend %d unfinished jobs at start: %s", len(pending), exc)
                return

    def submit(self, job_id: str) -> None:
        from kombu.exceptions import OperationalError

        from service.jobs.celery_app import TASK_NAME

        try:
            self.app.send_task(TASK_NAME, args=[job_id], queue=self.settings.job_queue)
        except OperationalError as exc:
            raise BrokerUnavailableError(
                f"the job broker at {_redacted(self.settings.broker_url)} is unreachable ({exc}); "
                "the job is saved: upload the same file again to resend it"
            ) from None

    def close(self) -> None:
        self.app.close()


class NoDispatcher:
    """This app cannot run surveys (its analyzer has no pipeline); submits are refused before here."""

    def start(self) -> None:
        return None

    def submit(self, job_id: str) -> None:
        raise BrokerUnavailableError("this server has no job runner")

    def close(self) -> None:
        return None


def make_dispatcher(
    settings: Settings, ctx: Runtime | None, session_factory: sessionmaker[Session]
) -> JobDispatcher:
    if settings.broker_url:
        return CeleryDispatcher(settings, session_factory)
    if ctx is None:
        return NoDispatcher()
    return InProcessDispatcher(JobRunner(ctx))


def _redacted(url: str | None) -> str:
    """The broker URL without its password."""
    if not url or "@" not in url:
        return url or "-"
    scheme, rest = url.split("://", 1) if "://" in url else ("", url)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"
