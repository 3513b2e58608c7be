"""Job tests: small survey limits (refused archives stay small), a job context without an app."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from service.auth import Role, create_key
from service.db.models import ApiKey, Frame, Issue, IssueEvent, Observation
from service.db.session import session_scope
from service.jobs.dispatch import InProcessDispatcher
from service.jobs.inputs import sniff_kind
from service.jobs.models import Job, JobItem
from service.jobs.runner import JobRunner
from service.jobs.store import HashingWriter, JobInputStore
from service.jobs.submit import JobServices
from service.runtime import Runtime
from service.settings import Settings

REDIS_DB = 11  # the Celery tests' database on the session's Redis


@pytest.fixture(scope="session")
def celery_broker_url(redis_url: str) -> str:
    """Database 11 of the session's Redis (the machine's at 127.0.0.1:6379, or a throwaway one)."""
    return f"{redis_url}/{REDIS_DB}"


SURVEY_LIMITS = {
    "max_survey_members": 6,
    "max_survey_uncompressed_bytes": 200_000,
    "max_survey_bytes": 2_000_000,
}


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        verification_min_gap_minutes=30,
        **SURVEY_LIMITS,
    )


@pytest.fixture
def job_ctx(settings: Settings, analyzer, clock) -> Iterator[Runtime]:  # type: ignore[no-untyped-def]
    """A job context on the test database with the painted-box analyzer (no app, no runner thread)."""
    ctx = Runtime.build(settings, analyzer=analyzer, clock=clock)
    yield ctx
    ctx.close()


def enqueue(ctx: Runtime, data: bytes, *, key_name: str = "drone team") -> str:
    """Submit a survey as the API does (stored input, job row), as the ingest key `key_name`,
    without starting a runner."""
    store = JobInputStore(ctx.settings.data_dir)
    writer = HashingWriter(store.incoming_path())
    writer.write(data)
    upload = writer.close()
    with session_scope(ctx.session_factory) as session:
        key = session.scalars(select(ApiKey).where(ApiKey.name == key_name)).first()
        if key is None:
            key, _ = create_key(session, role=Role.ingest, name=key_name, now=ctx.clock())
    services = JobServices(ctx.settings, ctx.session_factory, ctx, InProcessDispatcher(JobRunner(ctx)), store)
    submission = services.submit(
        upload,
        kind=sniff_kind(data[:8]),
        model_version=ctx.model_version(),
        key=key,
        note="",
        now=ctx.clock(),
    )
    return submission.job.id


def job_row(ctx: Runtime, job_id: str) -> Job:
    with ctx.session_factory() as session:
        job = session.get(Job, job_id)
    assert job is not None
    return job


def ledger_counts(ctx: Runtime) -> dict[str, int]:
    with ctx.session_factory() as session:
        return {
            name: session.scalar(select(func.count()).select_from(model)) or 0
            for name, model in (
                ("frames", Frame),
                ("observations", Observation),
                ("issues", Issue),
                ("events", IssueEvent),
                ("items", JobItem),
            )
        }


class HookedAnalyzer:
    """The real analyzer, with `before(n)` run before its n-th analysis (from 1): a test's cancel,
    crash or count at a known photo. `calls` is how many analyses were asked for."""

    def __init__(self, analyzer: Any, before: Callable[[int], None] = lambda n: None) -> None:
        self.analyzer = analyzer
        self.before = before
        self.calls = 0

    def pipeline(self) -> Any:
        return self.analyzer.pipeline()

    def analyze(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        self.before(self.calls)
        return self.analyzer.analyze(*args, **kwargs)
