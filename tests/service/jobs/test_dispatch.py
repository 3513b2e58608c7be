"""PATROL_BROKER_URL picks the runner: unset, the in-process thread; set, Celery (no broker needed here)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.jobs.dispatch import (
    CeleryDispatcher,
    InProcessDispatcher,
    NoDispatcher,
    _redacted,
    make_dispatcher,
)
from service.settings import Settings


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database work here
def test_the_broker_url_chooses_the_dispatcher(job_ctx):
    settings = job_ctx.settings
    assert isinstance(make_dispatcher(settings, job_ctx, job_ctx.session_factory), InProcessDispatcher)
    assert isinstance(make_dispatcher(settings, None, job_ctx.session_factory), NoDispatcher)
    scaled = settings.model_copy(update={"broker_url": "redis://127.0.0.1:6379/0", "job_queue": "surveys"})
    celery = make_dispatcher(scaled, job_ctx, job_ctx.session_factory)
    assert isinstance(celery, CeleryDispatcher)
    conf = celery.app.conf
    assert (conf.task_default_queue, conf.task_acks_late, conf.task_reject_on_worker_lost) == (
        "surveys",
        True,
        True,
    )
    assert conf.worker_prefetch_multiplier == 1
    celery.close()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@broker:6379/0", "redis://***@broker:6379/0"),
        ("redis://user:s3cret@broker:6379/0", "redis://***@broker:6379/0"),
        ("redis://broker:6379/0", "redis://broker:6379/0"),
    ],
)
def test_broker_passwords_never_reach_messages(url, shown):
    assert _redacted(url) == shown


@pytest.mark.parametrize("queue", ["", "two words", "x" * 101, "queue;rm"])
def test_job_queue_names_are_checked(queue):
    with pytest.raises(ValidationError, match="job_queue"):
        Settings(job_queue=queue)
