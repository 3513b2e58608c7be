"""API keys and regions (villages and grids)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.migrations.columns import bbox, create_keyed_table, foreign_key, one_of, unique

revision = "0001"
down_revision = None

# Migrations keep their own copies of enumerations: later code changes must not rewrite history.
ROLES = ("citizen", "worker", "reviewer", "ingest", "admin")
REGION_KINDS = ("village", "grid")


def upgrade() -> None:
    create_keyed_table(
        "api_keys",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("lookup", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        one_of("api_keys", "role", ROLES),
        unique("api_keys", "key_hash"),
    )
    op.create_index(op.f("ix_api_keys_lookup"), "api_keys", ["lookup"])

    create_keyed_table(
        "regions",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("geometry", sa.Text(), nullable=False),
        *bbox("", nullable=False),
        sa.Column("area_m2", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        one_of("regions", "kind", REGION_KINDS),
        foreign_key("regions", "parent_id", "regions", ondelete="SET NULL"),
    )
    op.create_index("ix_regions_bbox", "regions", ["min_lon", "max_lon", "min_lat", "max_lat"])
    op.create_index(op.f("ix_regions_parent_id"), "regions", ["parent_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_regions_parent_id"), table_name="regions")
    op.drop_index("ix_regions_bbox", table_name="regions")
    op.drop_table("regions")
    op.drop_index(op.f("ix_api_keys_lookup"), table_name="api_keys")
    op.drop_table("api_keys")
