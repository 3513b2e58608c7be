"""What several migrations write alike: a table keyed by `id`, an enumeration's CHECK, column groups.

A migration that has run must build the same tables forever, so these helpers are history as much as
the migrations that call them: never change what one builds; a new shape is a new helper. Like the
migrations, this module imports no app code, and each migration keeps its own enumeration values.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op


def create_keyed_table(
    name: str, *elements: sa.schema.SchemaItem, id_type: sa.types.TypeEngine[Any] | None = None
) -> sa.Table:
    """`op.create_table` with an `id` column first (an integer unless `id_type`) as the primary key."""
    return op.create_table(
        name,
        sa.Column("id", id_type if id_type is not None else sa.Integer(), nullable=False),
        *elements,
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
    )


def in_values(column: str, values: tuple[str, ...]) -> str:
    """The condition `column IN ('a', 'b')`."""
    listed = ", ".join(repr(value) for value in values)
    return f"{column} IN ({listed})"


def one_of(table: str, column: str, values: tuple[str, ...]) -> sa.CheckConstraint:
    """`column IN (...)`, named `ck_<table>_<column>` as the models' naming convention names it."""
    return sa.CheckConstraint(in_values(column, values), name=op.f(f"ck_{table}_{column}"))


def replace_one_of(table: str, column: str, values: tuple[str, ...]) -> None:
    """Swap the `one_of` CHECK on `table.column` for one allowing `values` (a kind added or taken
    back). Dropped and created in one batch: SQLite has no ALTER of a constraint, so the batch
    rebuilds the table there, and PostgreSQL gets DROP CONSTRAINT and ADD CONSTRAINT."""
    name = op.f(f"ck_{table}_{column}")
    with op.batch_alter_table(table) as batch:
        batch.drop_constraint(name, type_="check")
        batch.create_check_constraint(name, in_values(column, values))


def created_updated_at() -> list[sa.Column[Any]]:
    return [
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    ]


BBOX_EDGES = ("min_lon", "min_lat", "max_lon", "max_lat")


def bbox(prefix: str, *, nullable: bool) -> list[sa.Column[Any]]:
    """The bounding box beside a GeoJSON column: `<prefix>min_lon`, min_lat, max_lon, max_lat."""
    return [sa.Column(f"{prefix}{edge}", sa.Float(), nullable=nullable) for edge in BBOX_EDGES]


ANALYSIS_KEY = ("content_hash", "model_version")


def analysis_key() -> list[sa.Column[Any]]:
    """What was analysed by which model. A table keeps the pair `unique(table, *ANALYSIS_KEY)`,
    so analysing twice adds nothing; the migrations list that after their foreign keys."""
    return [
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=120), nullable=False),
    ]


def unique(table: str, *columns: str) -> sa.UniqueConstraint:
    """UNIQUE (columns), named `uq_<table>_<column>_<column>...` as the naming convention names it.

    A table lists its constraints in the order they were built, so where it stands among the
    other constraints is part of the DDL a migration emits."""
    return sa.UniqueConstraint(*columns, name=op.f(f"uq_{table}_{'_'.join(columns)}"))


def located(*, with_reason: bool) -> list[sa.Column[Any]]:
    """A ground point and how far off it may be, [why there is none,] the footprint polygon and its area."""
    reason = [sa.Column("location_reason", sa.String(length=300), nullable=True)] if with_reason else []
    return [
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("location_uncertainty_m", sa.Float(), nullable=True),
        *reason,
        sa.Column("footprint", sa.Text(), nullable=True),
        sa.Column("area_m2", sa.Float(), nullable=True),
    ]


def box_xyxy(*, nullable: bool) -> list[sa.Column[Any]]:
    """A box in image pixels: x1, y1, x2, y2."""
    return [sa.Column(name, sa.Float(), nullable=nullable) for name in ("x1", "y1", "x2", "y2")]


def foreign_key(
    table: str, column: str, target: str, *, ondelete: str | None = None
) -> sa.ForeignKeyConstraint:
    """`column` references `target`.id, named `fk_<table>_<column>_<target>` by the naming convention."""
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )
