"""Celery survey jobs survive what production does to workers and brokers, with real processes.

Workers are real `celery worker` processes (prefork pool, one child) running the production
task over the painted-box detector (tests/service/jobs/painted_worker.py), slowed down so a
survey is half done when the test strikes; the API runs in this process with its sweeper;
PostgreSQL is the database. What is struck: the worker's main process (kill -9: its pool
child dies with it and the message stays unacknowledged until Redis's visibility timeout),
the pool child alone (kill -9), the worker's SIGTERM (hand the job back, do not sit on it),
and the broker itself (stopped while a job is saved; restarted, losing its messages).
Each test is bounded: every wait has a deadline.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.api.app import create_app
from service.db.models import Frame
from service.db.session import make_engine, make_session_factory
from service.jobs.models import Job
from service.settings import Settings
from tests.servers import redis_server
from tests.servers.core import Registry, Throwaway, free_port
from tests.service.jobs.surveys import drone_zip, submit, wait_for_job
from tests.service.jobs.test_celery import worker_app

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.parametrize("database_url", ["postgresql"],
                                                                               indirect=True)]

REPO = Path(__file__).resolve().parents[3]
PHOTOS = 10
LEASE_S = 2.0  # the sweeper runs every half lease
START_TIMEOUT_S = 60.0
RECOVERY_TIMEOUT_S = 60.0


def scaled(settings: Settings, broker_url: str, queue: str) -> Settings:
    return settings.model_copy(update={
        "broker_url": broker_url, "job_queue": queue, "job_lease_seconds": LEASE_S,
        "max_survey_members": 100, "max_survey_uncompressed_bytes": 100_000_000,
        "max_survey_bytes": 100_000_000,
    })


class WorkerProcess:
    """`celery worker` as a deployment runs it, with the settings in PATROL_* variables."""

    def __init__(self, registry: Registry, settings: Settings, *, seconds_per_image: float) -> None:
        self.throwaway = Throwaway(registry, "celery-worker")
        self.env = {
            "PATROL_DATABASE_URL": settings.database_url,
            "PATROL_BROKER_URL": str(settings.broker_url),
            "PATROL_JOB_QUEUE": settings.job_queue,
            "PATROL_DATA_DIR": str(settings.data_dir),
            "PATROL_JOB_LEASE_SECONDS": str(settings.job_lease_seconds),
            "PATROL_TEST_SECONDS_PER_IMAGE": str(seconds_per_image),
            "PYTHONPATH": str(REPO),
        }

    def start(self) -> None:
        self.throwaway.log_path.write_bytes(b"")
        self.throwaway.spawn(
            [sys.executable, "-m", "celery", "-A", "tests.service.jobs.painted_worker", "worker",
             "-Q", self.env["PATROL_JOB_QUEUE"], "--concurrency", "1", "--pool", "prefork",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO",
             "--hostname", f"patrol-test-{uuid.uuid4().hex[:8]}@%h"],
            env=self.env,
        )
        self.throwaway.wait_ready(lambda: b" ready." in self.throwaway.log_path.read_bytes(), START_TIMEOUT_S)

    @property
    def pid(self) -> int:
        assert self.throwaway.process is not None
        return self.throwaway.process.pid

    def pool_child(self) -> int:
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        assert len(children) == 1, children  # --concurrency 1
        return int(children[0])

    def signal_and_wait(self, sig: int, timeout_s: float) -> float:
        """Sends `sig` to the main process; the seconds it took to exit."""
        assert self.throwaway.process is not None
        started = time.monotonic()
        os.kill(self.pid, sig)
        self.throwaway.process.wait(timeout_s)
        return time.monotonic() - started


@contextmanager
def worker_process(
    registry: Registry, settings: Settings, *, seconds_per_image: float
) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(registry, settings, seconds_per_image=seconds_per_image)
    try:
        yield worker
    finally:
        worker.throwaway.stop()


def wait_until(condition, what: str, timeout_s: float = RECOVERY_TIMEOUT_S):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.1)
    return result


def job_row(settings: Settings, job_id: str) -> Job:
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as session:
        job = session.get(Job, job_id)
    engine.dispose()
    assert job is not None
    return job


def frames_in_ledger(settings: Settings) -> int:
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as session:
        frames = session.scalar(select(func.count()).select_from(Frame)) or 0
    engine.dispose()
    return frames


def progress(client: TestClient, keys, job_id: str) -> int:  # type: ignore[no-untyped-def]
    return int(client.get(f"/v1/jobs/{job_id}", headers=keys.headers("ingest")).json()["progress"]["done"])


@pytest.fixture
def queue_name(celery_broker_url: str) -> Iterator[str]:
    name = f"patrol-test-{uuid.uuid4().hex[:12]}"
    yield name
    with redis.Redis.from_url(celery_broker_url, socket_connect_timeout=5) as client:
        for key in client.scan_iter(match=f"*{name}*"):
            client.delete(key)


@contextmanager
def survey_half_done(settings, analyzer, clock, keys_factory, registry, broker_url, queue,  # type: ignore[no-untyped-def]
                     *, seconds_per_image: float):
    """The API (with its sweeper) and a worker process that is two photos into a survey of PHOTOS."""
    config = scaled(settings, broker_url, queue)
    with (
        TestClient(create_app(config, analyzer=analyzer, clock=clock)) as client,
        worker_process(registry, config, seconds_per_image=seconds_per_image) as worker,
    ):
        keys = keys_factory()
        job_id = submit(client, keys, drone_zip(PHOTOS)).json()["id"]
        worker.start()
        wait_until(lambda: progress(client, keys, job_id) >= 2, "the survey got going")
        yield client, keys, worker, job_id


@pytest.mark.parametrize("victim", ["main process", "pool child"])
def test_a_survey_finishes_after_its_worker_is_killed(victim, settings, analyzer, clock, keys_factory,
                                                      real_servers, celery_broker_url, queue_name):
    with survey_half_done(settings, analyzer, clock, keys_factory, real_servers, celery_broker_url,
                          queue_name, seconds_per_image=0.3) as (client, keys, worker, job_id):
        if victim == "main process":
            worker.signal_and_wait(signal.SIGKILL, 10)  # its pool child gets SIGKILL too (pdeathsig)
            worker.start()
        else:
            os.kill(worker.pool_child(), signal.SIGKILL)
        job = wait_for_job(client, keys, job_id, timeout_s=RECOVERY_TIMEOUT_S)
    assert job["state"] == "succeeded", job
    assert job["attempts"] == 2 and job["summary"]["recorded"] == PHOTOS, job
    assert frames_in_ledger(settings) == PHOTOS  # resumed, nothing recorded twice


def test_sigterm_hands_the_running_survey_back_and_another_worker_finishes_it(
    settings, analyzer, clock, keys_factory, real_servers, celery_broker_url, queue_name
):
    with survey_half_done(settings, analyzer, clock, keys_factory, real_servers, celery_broker_url,
                          queue_name, seconds_per_image=0.5) as (client, keys, worker, job_id):
        worker.signal_and_wait(signal.SIGTERM, 30)
        handed_back = job_row(settings, job_id)
        assert handed_back.state == "queued" and handed_back.lease_owner is None, handed_back.state
        assert handed_back.attempts == 0  # a stop on request is no failed attempt
        assert handed_back.progress_done < PHOTOS  # it stopped between photos, not after the survey
        worker.start()  # the message it sent back is waiting for the next worker
        job = wait_for_job(client, keys, job_id, timeout_s=RECOVERY_TIMEOUT_S)
    assert job["state"] == "succeeded" and job["summary"]["recorded"] == PHOTOS, job
    assert frames_in_ledger(settings) == PHOTOS


class Broker:
    """A throwaway redis-server of this test's own, which the test stops and starts (no persistence)."""

    def __init__(self, registry: Registry) -> None:
        self.throwaway = Throwaway(registry, "broker")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.throwaway.spawn([
            str(redis_server.find_binary()), "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.throwaway.folder),
        ])
        self.throwaway.wait_ready(lambda: redis_server.probe(self.url, 1) is None, 30)

    def stop(self) -> None:
        assert self.throwaway.process is not None
        self.throwaway.process.terminate()
        self.throwaway.process.wait(10)

    def queued_messages(self, queue: str) -> int:
        with redis.Redis.from_url(self.url, socket_connect_timeout=5) as client:
            return int(client.llen(queue))


@pytest.fixture
def broker(real_servers: Registry) -> Iterator[Broker]:
    broker = Broker(real_servers)
    broker.start()
    yield broker
    broker.throwaway.stop()


def test_a_job_saved_while_the_broker_is_down_is_sent_when_it_is_back(
    settings, analyzer, clock, keys_factory, broker
):
    config = scaled(settings, broker.url, "patrol-jobs")
    with TestClient(create_app(config, analyzer=analyzer, clock=clock)) as client:
        keys = keys_factory()
        broker.stop()
        response = submit(client, keys, drone_zip(2))
        assert response.status_code == 503 and "sent once the broker is back" in response.json()["detail"]
        broker.start()
        wait_until(lambda: broker.queued_messages("patrol-jobs") == 1, "the sweeper sent the saved job")
        with start_worker(worker_app(config, client.app.state.service), perform_ping_check=False,
                          shutdown_timeout=30):
            job = wait_for_job(client, keys, _only_job(settings), timeout_s=RECOVERY_TIMEOUT_S)
    assert job["state"] == "succeeded" and job["summary"]["recorded"] == 2, job


def test_a_reupload_resends_a_job_whose_message_the_broker_lost(
    settings, analyzer, clock, keys_factory, broker
):
    config = scaled(settings, broker.url, "patrol-jobs")
    data = drone_zip(2)
    with TestClient(create_app(config, analyzer=analyzer, clock=clock)) as client:
        keys = keys_factory()
        first = submit(client, keys, data)
        assert first.status_code == 202 and broker.queued_messages("patrol-jobs") == 1
        broker.stop()
        broker.start()  # saves nothing: the message is gone, the job still says queued
        assert broker.queued_messages("patrol-jobs") == 0
        time.sleep(LEASE_S)  # resends are rate-limited to one per lease
        again = submit(client, keys, data)
        assert again.status_code == 202 and again.json()["id"] == first.json()["id"], again.text
        assert again.json()["state"] == "queued" and broker.queued_messages("patrol-jobs") == 1
        with start_worker(worker_app(config, client.app.state.service), perform_ping_check=False,
                          shutdown_timeout=30):
            job = wait_for_job(client, keys, first.json()["id"], timeout_s=RECOVERY_TIMEOUT_S)
    assert job["state"] == "succeeded" and job["summary"]["recorded"] == 2, job


def _only_job(settings: Settings) -> str:
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as session:
        (job_id,) = session.scalars(select(Job.id))
    engine.dispose()
    return job_id
