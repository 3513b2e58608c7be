"""Fixtures for the ledger service: a database per backend, an app with a real analyzer, keys per role.

Backends: every API test runs on SQLite (a file per test, copied from one migrated
template) and on a real PostgreSQL (marked `server`; the machine's at 127.0.0.1:5432, the one
PATROL_TEST_POSTGRES_URL names, or a throwaway one: see tests/servers): one fresh
database per test session (`patrol_test_<random>`, created from the `test` database and
dropped at the end, so parallel CI runs never share tables), emptied between tests.

The analyzer is the production `PipelineAnalyzer` (real image loading, pipeline, card
thresholds, label map and geotagging) over the painted-box detector of tests/vision: a
real detector whose right answers are known (red paint = garbage -> garbage_pile, blue =
smoke -> straw_burning, green = garbage_bin, a helper label that is no violation).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from service.api.app import create_app
from service.auth import Role, create_key
from service.db.session import make_engine, make_session_factory, session_scope
from service.migrations import runner
from service.photo_analyzer import PipelineAnalyzer
from service.settings import Settings
from tests.vision.fakes import FAKE_LABELS, TINY_LABEL_MAP, PaintedBoxDetector
from vision.batcher import BatcherConfig
from vision.model_card import ModelCard
from vision.pipeline import Pipeline

LEDGER_TABLES = (
    "review_labels",
    "review_deliveries",
    "review_tasks",
    "alert_delivery_attempts",
    "alert_deliveries",
    "alerts",
    "camera_states",
    "cameras",
    "job_items",
    "jobs",
    "issue_events",
    "observations",
    "issues",
    "frames",
    "sources",
    "regions",
    "api_keys",
)
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.server)]


# -- databases -------------------------------------------------------------------------------------


def _sqlalchemy_url(libpq_url: str, database: str) -> str:
    base = libpq_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{database}"


@dataclass
class PostgresServer:
    admin_url: str

    def create_database(self) -> str:
        name = f"patrol_test_{uuid.uuid4().hex[:12]}"
        try:
            with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.OperationalError as exc:
            pytest.fail(
                f"PostgreSQL at {self.admin_url} is not reachable ({exc}); start it, set "
                f"PATROL_TEST_POSTGRES_URL, or deselect with -m 'not server'"
            )
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def url(self, name: str) -> str:
        return _sqlalchemy_url(self.admin_url, name)


@pytest.fixture(scope="session")
def postgres(postgres_admin_url: str) -> PostgresServer:
    return PostgresServer(postgres_admin_url)


@pytest.fixture(scope="session")
def postgres_ledger_db(postgres: PostgresServer) -> Iterator[str]:
    """One migrated database for the session's API tests."""
    name = postgres.create_database()
    engine = make_engine(postgres.url(name))
    runner.upgrade(engine)
    engine.dispose()
    yield postgres.url(name)
    postgres.drop_database(name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite_template") / "ledger.db"
    engine = make_engine(f"sqlite:///{path}")
    runner.upgrade(engine)
    engine.dispose()  # closing the last connection checkpoints the WAL into the file
    return path


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "ledger.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("postgres_ledger_db")
    _empty(url)
    yield url
    _empty(url)


def _empty(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(LEDGER_TABLES)} RESTART IDENTITY CASCADE"))
    engine.dispose()


# -- time, analyzer, app ---------------------------------------------------------------------------


class FakeClock:
    """The app's clock, moved by tests (verification and reports depend on time)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))


def painted_card() -> ModelCard:
    return ModelCard(
        name="painted",
        version="1",
        sha256="0" * 64,
        input_size=640,
        labels=list(FAKE_LABELS),
        label_map=dict(TINY_LABEL_MAP),
        thresholds={"garbage": 0.5, "smoke": 0.5},
    )


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, data_dir=tmp_path / "data", verification_min_gap_minutes=30)


@pytest.fixture
def analyzer(settings: Settings) -> Iterator[PipelineAnalyzer]:
    pipeline = Pipeline(
        PaintedBoxDetector(input_size=640), painted_card(), batcher=BatcherConfig(max_batch=2, max_wait_ms=1)
    )
    yield PipelineAnalyzer(settings, pipeline=pipeline)
    pipeline.close()


@pytest.fixture
def app(settings: Settings, analyzer: PipelineAnalyzer, clock: FakeClock):  # type: ignore[no-untyped-def]
    return create_app(settings, analyzer=analyzer, clock=clock)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app) as test_client:
        yield test_client


@dataclass(frozen=True)
class Keys:
    """A bearer token per role, plus a second citizen (a second source)."""

    tokens: dict[str, str]

    def headers(self, who: str | None) -> dict[str, str]:
        return {} if who is None else {"Authorization": f"Bearer {self.tokens[who]}"}


@pytest.fixture
def keys_factory(settings: Settings, clock: FakeClock):  # type: ignore[no-untyped-def]
    """Creates a key per role (and a second citizen) in the test database, on demand."""

    def make() -> Keys:
        engine = make_engine(settings.database_url)
        tokens = {}
        with session_scope(make_session_factory(engine)) as session:
            for role in Role:
                tokens[role.value] = create_key(session, role=role, name=f"test {role.value}", now=clock())[1]
            tokens["citizen2"] = create_key(session, role=Role.citizen, name="second citizen", now=clock())[1]
        engine.dispose()
        return Keys(tokens)

    return make


@pytest.fixture
def keys(client: TestClient, keys_factory) -> Keys:  # type: ignore[no-untyped-def]
    return keys_factory()
