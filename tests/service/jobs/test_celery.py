"""With PATROL_BROKER_URL set, the API sends survey jobs to Celery on a real Redis (tests/servers).

A real Celery worker consumes them (in a thread of this process, so it can share the
painted-box analyzer); PostgreSQL is the database, as in a scaled-out deployment. Each
test session uses its own queue on Redis database 11 and deletes its keys afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.api.app import create_app
from service.db.session import make_engine, make_session_factory
from service.jobs.celery_app import make_celery
from service.jobs.dispatch import CeleryDispatcher
from service.jobs.models import Job
from tests.service.jobs.surveys import drone_zip, submit, wait_for_job


def worker_app(settings, context):  # type: ignore[no-untyped-def]
    app = make_celery(settings, context=lambda: context)
    app.conf.worker_enable_remote_control = False  # no pidbox keys left behind on the shared Redis
    return app


@contextmanager
def api_and_worker(settings, analyzer, clock) -> Iterator[tuple[FastAPI, TestClient]]:  # type: ignore[no-untyped-def]
    """The API and a real Celery worker in a thread, sharing the app's runtime (analyzer, clock)."""
    app = create_app(settings, analyzer=analyzer, clock=clock)
    with (
        TestClient(app) as client,
        start_worker(worker_app(settings, app.state.service), perform_ping_check=False, shutdown_timeout=30),
    ):
        yield app, client


@pytest.fixture(scope="session")
def celery_queue(celery_broker_url: str) -> Iterator[str]:
    name = f"patrol-test-{uuid.uuid4().hex[:12]}"
    client = redis.Redis.from_url(celery_broker_url, socket_connect_timeout=5)
    yield name
    for key in client.scan_iter(match=f"*{name}*"):
        client.delete(key)
    client.close()


@pytest.mark.server
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_survey_runs_on_a_celery_worker(settings, analyzer, clock, keys_factory, celery_queue,
                                          celery_broker_url):
    scaled = settings.model_copy(update={"broker_url": celery_broker_url, "job_queue": celery_queue})
    with api_and_worker(scaled, analyzer, clock) as (app, client):
        assert isinstance(app.state.jobs.dispatcher, CeleryDispatcher)  # no runner thread in the API
        keys = keys_factory()
        response = submit(client, keys, drone_zip(3))
        assert response.status_code == 202, response.text
        job = wait_for_job(client, keys, response.json()["id"], timeout_s=60)
        assert job["state"] == "succeeded", job
        assert job["summary"]["recorded"] == 3 and job["summary"]["issues_opened"] == 3

        again = submit(client, keys, drone_zip(3))  # the same survey: its job, nothing sent or added
        assert again.status_code == 200 and again.json()["id"] == job["id"], again.json()
        issues = client.get("/v1/issues", headers=keys.headers("reviewer")).json()["features"]
        assert len(issues) == 3
    with redis.Redis.from_url(celery_broker_url) as r:
        assert r.llen(celery_queue) == 0  # the message was consumed and acknowledged


@pytest.mark.server
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_job_saved_while_the_broker_was_down_is_sent_at_the_next_start(
    settings, analyzer, clock, keys_factory, celery_queue, celery_broker_url
):
    dead = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0", "job_queue": celery_queue})
    with TestClient(create_app(dead, analyzer=analyzer, clock=clock)) as client:
        keys = keys_factory()
        response = submit(client, keys, drone_zip(2))
        assert response.status_code == 503, response.text
        assert "unreachable" in response.json()["detail"] and response.headers["retry-after"] == "30"
        (job_id,) = _queued_job_ids(settings)

    live = settings.model_copy(update={"broker_url": celery_broker_url, "job_queue": celery_queue})
    with api_and_worker(live, analyzer, clock) as (_, client):
        job = wait_for_job(client, keys, job_id, timeout_s=60)
        assert job["state"] == "succeeded" and job["summary"]["recorded"] == 2, job["error"]


def _queued_job_ids(settings) -> list[str]:  # type: ignore[no-untyped-def]
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as session:
        ids = list(session.scalars(select(Job.id).where(Job.state == "queued")))
    engine.dispose()
    return ids
