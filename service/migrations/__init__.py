"""Alembic migrations, run in code at start (`service.migrations.runner`)."""
