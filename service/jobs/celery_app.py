"""Celery on Redis, used when PATROL_BROKER_URL is set: the API sends job ids, workers run them.

The database stays the source of truth: a task carries only the job id, claims the job
with the same lease as the in-process runner and runs the same job function. Messages are
acknowledged after the task (`acks_late`) and requeued when a worker dies mid-task, and
the lease keeps a redelivered message from running a job twice: a task that finds its job
held by a live worker retries later, one that finds it finished does nothing.

Workers (same settings as the API, same installed model):

    PATROL_DATABASE_URL=postgresql+psycopg://... PATROL_BROKER_URL=redis://host:6379/0 \\
        celery -A service.jobs.celery_app worker -Q patrol-jobs --concurrency 1

One process per CPU socket or GPU is enough: inference inside a task is already batched.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import cache
from typing import Any

from celery import Celery

from service.jobs.models import FINAL_STATES, Job, JobState
from service.jobs.work import RunOutcome, claim_and_execute
from service.runtime import Runtime
from service.settings import Settings

logger = logging.getLogger(__name__)

TASK_NAME = "patrol.run_job"
PUBLISH_RETRY_POLICY = {"max_retries": 3, "interval_start": 0, "interval_step": 0.5, "interval_max": 2}


class _LazyContext:
    """Builds the job context on the first task, inside the worker process (after the fork)."""

    def __init__(self, build: Callable[[], Runtime]) -> None:
        self._build = build
        self._context: Runtime | None = None
        self._lock = threading.Lock()

    def get(self) -> Runtime:
        with self._lock:
            if self._context is None:
                self._context = self._build()
            return self._context


def make_celery(settings: Settings, *, context: Callable[[], Runtime] | None = None) -> Celery:
    """A Celery app for `settings.broker_url`; `context` builds the workers' job context (default:
    from the settings, with the installed model)."""
    if not settings.broker_url:
        raise ValueError("expected PATROL_BROKER_URL (redis://host:6379/0) for Celery, got none")
    app = Celery("patrol", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=settings.job_queue,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # state and progress live in the jobs table
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a job can take an hour; do not hoard the next ones
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        task_publish_retry=True,
        task_publish_retry_policy=PUBLISH_RETRY_POLICY,
        # Redis redelivers unacknowledged messages after this; the lease makes a duplicate harmless.
        broker_transport_options={"visibility_timeout": 6 * 3600},
    )
    contexts = _LazyContext(context or (lambda: Runtime.build(settings)))

    # shared=False: each app keeps its own task (and context); Celery would otherwise hand every
    # app created later the task of the first.
    @app.task(name=TASK_NAME, bind=True, max_retries=None, shared=False)
    def run_job(self: Any, job_id: str) -> str:
        ctx = contexts.get()
        _, outcome = claim_and_execute(ctx, job_id=job_id)
        if outcome is RunOutcome.released or (
            outcome is RunOutcome.not_claimed and _may_need_a_runner(ctx, job_id)
        ):
            # Held by a live worker (or handed back): look again once its lease could have run out.
            raise self.retry(countdown=settings.job_lease_seconds)
        return outcome.value

    return app


def _may_need_a_runner(ctx: Runtime, job_id: str) -> bool:
    with ctx.session_factory() as session:
        job = session.get(Job, job_id)
    if job is None:
        logger.warning("job %s is not in the database; message dropped", job_id)
        return False
    return JobState(job.state) not in FINAL_STATES


@cache
def _default_app() -> Celery:
    return make_celery(Settings())


def __getattr__(name: str) -> Celery:
    # `celery -A service.jobs.celery_app` looks up `app`; building it lazily keeps importing
    # this module free of settings and broker connections.
    if name in ("app", "celery"):
        return _default_app()
    raise AttributeError(name)
