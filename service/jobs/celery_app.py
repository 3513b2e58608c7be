"""Celery on Redis, used when PATROL_BROKER_URL is set: the API sends job ids, workers run them.

The database stays the source of truth: a task carries only a job id, claims a job with
the same lease (and the same fair order across keys) as the in-process runner and runs the
same job function. Messages are acknowledged after the task (`acks_late`) and requeued when
a pool child dies mid-task; the lease keeps a redelivered message from running a job twice:
a task that finds nothing runnable (its job finished, or held by a live worker) does
nothing. A job whose worker died is resent by the API's sweeper once its lease runs out
(`dispatch.CeleryDispatcher`). SIGTERM hands running jobs back: they stop after the
current photo or tile, are queued again and resent at once.

Workers (same settings as the API, same installed model):

    PATROL_DATABASE_URL=postgresql+psycopg://... PATROL_BROKER_URL=redis://host:6379/0 \\
        celery -A service.jobs.celery_app worker -Q patrol-jobs --concurrency 1

One process per CPU socket or GPU is enough: inference inside a task is already batched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from functools import cache
from types import FrameType
from typing import Any

from celery import Celery, signals

from service.jobs import queue
from service.jobs.work import RunOutcome, claim_and_execute
from service.runtime import Runtime
from service.settings import Settings

logger = logging.getLogger(__name__)

TASK_NAME = "patrol.run_job"
VISIBILITY_TIMEOUT_S = 3600
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
        # Redis gives an unacknowledged message to another worker after this. It is no longer how a
        # crashed job comes back (the API's sweeper resends it within ~1.5 leases); it is the
        # backstop when no API runs. Redelivering a job that is still running costs one claim
        # (the live lease refuses it; the message is dropped), so an hour is short enough to
        # matter and long enough not to churn. Countdowns here are 0, never near it (ETA tasks
        # beyond the visibility timeout would be delivered twice).
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
    )
    contexts = _LazyContext(context or (lambda: Runtime.build(settings)))

    # shared=False: each app keeps its own task (and context); Celery would otherwise hand every
    # app created later the task of the first.
    @app.task(name=TASK_NAME, bind=True, max_retries=None, shared=False)
    def run_job(self: Any, job_id: str) -> str:
        _hand_back_on_sigterm()
        if _STOPPING.is_set():  # this worker is shutting down: leave the job to another one
            raise self.retry(countdown=0)
        ctx = contexts.get()
        # A pool child killed on this host (OOM, kill -9) held its job under a lease nobody renews;
        # end it now rather than a lease later. The message names a job, but a worker takes the
        # fairest runnable one (queue.fair_order): each runnable job has a message, so all run.
        queue.end_dead_local_leases(ctx.session_factory, now=ctx.lease_clock())
        _, outcome = claim_and_execute(ctx, stopping=_STOPPING)
        if outcome is RunOutcome.released:
            # Handed back by a shutting-down worker: a fresh message lets another worker take it now.
            raise self.retry(countdown=0)
        if outcome is RunOutcome.not_claimed:
            # Nothing runnable: the job is finished, or a live runner holds it (if that runner dies,
            # the API's sweeper requeues and resends the job once its lease runs out).
            logger.info("job %s: nothing to run; message dropped", job_id)
        return outcome.value

    return app


# Set when this worker process is asked to stop (SIGTERM): the running job stops after its
# current photo or tile and goes back to the queue (work.execute releases it), instead of
# the worker either waiting for an hour-long job (warm shutdown) or dying in it.
_STOPPING = threading.Event()


_IN_POOL_CHILD = threading.Event()


@signals.worker_process_init.connect(weak=False, dispatch_uid="patrol-jobs-pool-child")
def _on_pool_child_start(**_: Any) -> None:
    _STOPPING.clear()
    _IN_POOL_CHILD.set()


def _hand_back_on_sigterm() -> None:
    """In a prefork pool child: SIGTERM (from the main process below, or a service manager that
    signals the whole group) hands the job back instead of killing the child mid-photo.

    Installed when a task starts, not at the child's init signal: billiard resets SIGTERM to its
    own exit handler right after that signal. The child still ends with its main process,
    whatever happens here: the pool sets PR_SET_PDEATHSIG to SIGKILL."""
    if (
        _IN_POOL_CHILD.is_set()
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) is not _on_child_sigterm
    ):
        signal.signal(signal.SIGTERM, _on_child_sigterm)


def _on_child_sigterm(signum: int, frame: FrameType | None) -> None:
    _STOPPING.set()


@signals.worker_shutting_down.connect(weak=False, dispatch_uid="patrol-jobs-warm-shutdown")
def _on_worker_shutting_down(sig: str, how: str, exitcode: int, **_: Any) -> None:
    """The worker's main process got SIGTERM/SIGINT: its jobs stop after the current step."""
    if how != "Warm" or _STOPPING.is_set():
        return  # a cold shutdown kills the pool (the sweeper resends its jobs); a repeat adds nothing
    _STOPPING.set()  # solo and threads pools run the task in this process
    from billiard.process import active_children

    for child in active_children():  # prefork: the pool children run the tasks
        if child.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)


@cache
def _default_app() -> Celery:
    return make_celery(Settings())


def __getattr__(name: str) -> Celery:
    # `celery -A service.jobs.celery_app` looks up `app`; building it lazily keeps importing
    # this module free of settings and broker connections.
    if name in ("app", "celery"):
        return _default_app()
    raise AttributeError(name)
