"""Alembic environment: runs on the connection the runner hands over in `config.attributes`."""

from __future__ import annotations

from alembic import context

from service.db.base import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations through service.migrations.runner.upgrade(), which passes a connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things; batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
