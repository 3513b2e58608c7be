"""Migrations: upgrade from empty, match the models, emit the DDL they first emitted, downgrade one
step keeping data, upgrade again."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, event, inspect, select

from service.auth import Role, create_key
from service.cameras import models as camera_models  # noqa: F401  # its tables into Base.metadata
from service.db.base import Base
from service.db.models import ApiKey, LedgerLock
from service.db.session import make_engine, make_session_factory, session_scope
from service.migrations import runner
from service.review import models as review_models  # noqa: F401  # its tables into Base.metadata
from tests.service.conftest import BACKENDS

LEDGER = {"sources", "frames", "issues", "observations", "issue_events", "ledger_locks"}
JOBS = {"jobs", "job_items"}  # 0003
CAMERAS = {"cameras", "camera_states", "alerts", "alert_deliveries", "alert_delivery_attempts"}  # 0004
REVIEW = {"review_tasks", "review_deliveries", "review_labels"}  # 0006
FIRST = {"api_keys", "regions"}
DDL_DIR = Path(__file__).parent / "migration_ddl"
# SQLite rebuilds a table to alter it (batch mode, 0005 on) and lists the copy's foreign keys
# and indexes in an order that varies with the hash seed; the plain CREATEs before are fixed.
DDL_UPTO = {"sqlite": "0004", "postgresql": "head"}


@pytest.fixture(params=BACKENDS)
def empty_engine(request, tmp_path) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
        yield engine
        engine.dispose()
        return
    server = request.getfixturevalue("postgres")
    name = server.create_database()
    engine = make_engine(server.url(name))
    yield engine
    engine.dispose()
    server.drop_database(name)


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_from_empty_matches_the_models(empty_engine):
    assert _tables(empty_engine) == set()
    runner.upgrade(empty_engine)
    assert runner.current_revision(empty_engine) == runner.head_revision()
    assert _tables(empty_engine) == LEDGER | FIRST | JOBS | CAMERAS | REVIEW
    with empty_engine.connect() as connection:
        diff = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata
        )
    assert diff == []
    with make_session_factory(empty_engine)() as session:
        assert session.scalars(select(LedgerLock.name)).all() == ["ledger"]


def test_downgrade_one_step_keeps_earlier_data_and_upgrades_again(empty_engine):
    runner.upgrade(empty_engine)
    with session_scope(make_session_factory(empty_engine)) as session:
        create_key(session, role=Role.admin, name="kept", now=datetime(2026, 11, 1, tzinfo=UTC))
    runner.downgrade(empty_engine, "0001")
    assert runner.current_revision(empty_engine) == "0001"
    assert _tables(empty_engine) == FIRST
    runner.upgrade(empty_engine)
    assert _tables(empty_engine) == LEDGER | FIRST | JOBS | CAMERAS | REVIEW
    with make_session_factory(empty_engine)() as session:
        assert session.scalars(select(ApiKey.name)).all() == ["kept"]
    runner.downgrade(empty_engine, "base")
    assert _tables(empty_engine) == set()


def test_migrations_are_found_from_any_working_directory(tmp_path):
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        engine = make_engine(f"sqlite:///{tmp_path / 'elsewhere.db'}")
        runner.upgrade(engine)
        assert runner.current_revision(engine) == runner.head_revision()
        engine.dispose()
    finally:
        os.chdir(here)
    assert (runner.MIGRATIONS_DIR / "env.py").is_file() and (
        runner.MIGRATIONS_DIR / "script.py.mako"
    ).is_file()


def _emitted_ddl(engine: Engine, upto: str) -> list[list[str]]:
    """Every CREATE, ALTER and DROP that upgrading to `upto` and downgrading to base send, in
    order, each as its lines."""
    statements: list[list[str]] = []

    def keep(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().startswith(("CREATE", "ALTER", "DROP")):
            statements.append(statement.strip().split("\n"))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        runner.upgrade(engine, upto)
        runner.downgrade(engine, "base")
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    return statements


def test_migrations_emit_the_ddl_they_first_emitted(empty_engine):
    """A migration that has run must build the same tables forever: the helpers in
    service/migrations/columns.py may not change the DDL, not even a constraint's place. The files
    hold what the migrations emitted as first written (before they shared helpers), as data; after
    an SQLAlchemy or Alembic upgrade that changes only the rendering, write the new statements
    there and check that the diff is rendering alone."""
    backend = empty_engine.dialect.name
    expected = json.loads((DDL_DIR / f"{backend}.json").read_text("utf-8"))
    assert _emitted_ddl(empty_engine, DDL_UPTO[backend]) == expected
